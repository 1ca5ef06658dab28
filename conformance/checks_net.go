package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// The anchors of the network checks.
const (
	anchorNetPolicy  = contractDoc + "/components/schemas/NetworkPolicy"
	anchorNetGet     = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1network/get"
	anchorNetSet     = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1network/put"
	anchorNetBad     = contractDoc + "/components/responses/BadNetworkRequest"
	anchorEgressMode = anchorLimits + "egressModes"
)

// netChecks are the checks of the network.egress extension, skipped when
// the backend does not advertise it. The checks that look from inside a
// sandbox run a probe with python3 (skipped without it); the ones that
// need a destination the backend may reach take it from
// Config.EgressTarget (skipped without one).
func netChecks() []Check {
	c := func(id string, ops []string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtNetworkEgress, Parallel: true, Requirement: Must,
			Operations: ops, Extensions: []string{api.ExtNetworkEgress}, Anchor: anchor, Spec: spec, Run: run}
	}
	get, both := []string{"getNetwork"}, []string{"getNetwork", "setNetwork"}
	withCreate := []string{"createSandbox", "getNetwork", "setNetwork"}
	return []Check{
		c("net/default-none", append([]string{"createSandbox"}, get...), anchorNetGet,
			"GET .../network of a sandbox created without a policy: egress none",
			checkNetDefaultNone),
		c("net/policy-roundtrip", withCreate, anchorNetPolicy,
			"a policy given on create, then one set with PUT .../network, is answered by PUT and GET as sent (and by the sandbox's status with sandboxes.get)",
			checkNetRoundTrip),
		c("net/policy-invalid-400", withCreate, anchorNetBad,
			"malformed entries and modes, on create and PUT, are 400 JSON Errors naming the field; unknown sandboxes 404",
			checkNetInvalid),
		c("net/policy-bounds-400", both, anchorEgressMode,
			"a mode outside Info.limits.egressModes and more entries than maxEgressRules are 400 JSON Errors naming the field",
			checkNetBounds),
		c("net/none-reaches-nothing", []string{"createSandbox", "execInSandbox"}, anchorNetPolicy,
			"a sandbox with egress none reaches neither the backend's own address nor the egress target, and resolves no name",
			checkNetNone),
		c("net/backend-unreachable", withCreate, anchorNetPolicy,
			"whatever the policy allows (open, or an allowlist naming it), the API server's own address is not reachable from inside",
			checkNetBackendUnreachable),
		c("net/metadata-unreachable", withCreate, anchorNetPolicy,
			"whatever the policy allows, the cloud metadata address 169.254.169.254 is not reachable from inside",
			checkNetMetadata),
		c("net/allowlist", withCreate, anchorNetPolicy,
			"an allowlist naming the egress target's host reaches it and resolves it; one naming another host does not; deny wins over open",
			checkNetAllowlist),
		c("net/change-running", withCreate, anchorNetSet,
			"PUT .../network on a running sandbox takes effect for the next command: none, then allowlist (reached), then none again (not reached)",
			checkNetChange),
	}
}

// netFinding is a misbehaviour of the check's own subject seen in x.
func netFinding(x *Exchange, observed, expected string, err error) error {
	return ownFinding(x, aspectNone, observed, expected, fmt.Errorf("%w\n%s", err, x))
}

// networkPath is the network path of sandbox id.
func networkPath(id string) string {
	return "/v1/sandboxes/" + url.PathEscape(id) + "/network"
}

// policy is a NetworkPolicy read leniently.
type policy struct {
	Egress string   `json:"egress"`
	Allow  []string `json:"allow"`
	Deny   []string `json:"deny"`
}

// mode is the policy's mode, none when absent.
func (p policy) mode() string {
	if p.Egress == "" {
		return api.EgressNone
	}
	return p.Egress
}

// same reports whether p states what want does.
func (p policy) same(want policy) bool {
	return p.mode() == want.mode() && slices.Equal(p.Allow, want.Allow) && slices.Equal(p.Deny, want.Deny)
}

func (p policy) String() string {
	return fmt.Sprintf("egress %s, allow %q, deny %q", p.mode(), p.Allow, p.Deny)
}

// wire is p as a request body.
func (p policy) wire() noxapi.NetworkPolicy {
	out := noxapi.NetworkPolicy{}
	if p.Egress != "" {
		m := noxapi.NetworkPolicyEgress(p.Egress)
		out.Egress = &m
	}
	out.Allow, out.Deny = p.Allow, p.Deny
	return out
}

// getNetwork asks for sandbox id's policy.
func (e *Env) getNetwork(ctx context.Context, id string) (*Exchange, error) {
	return e.send(ctx, "get the network policy of "+id, func() (*http.Response, error) { return e.Client.GetNetwork(ctx, id) })
}

// setNetwork replaces sandbox id's policy with p.
func (e *Env) setNetwork(ctx context.Context, id string, p policy) (*Exchange, error) {
	return e.send(ctx, "set the network policy of "+id, func() (*http.Response, error) { return e.Client.SetNetwork(ctx, id, p.wire()) })
}

// setNetworkRaw sends body as the policy of sandbox id.
func (e *Env) setNetworkRaw(ctx context.Context, id string, body string) (*Exchange, error) {
	return e.Raw(ctx, http.MethodPut, networkPath(id), "application/json", []byte(body), true)
}

// policyOK decodes a 200 policy answer; judge makes x the check's subject.
func policyOK(x *Exchange, judge bool) (policy, error) {
	var p policy
	if judge {
		x.judge()
	}
	if err := expectJSON(x, http.StatusOK, &p); err != nil {
		return p, err
	}
	return p, nil
}

// newNetSandbox creates a sandbox with policy p (nil: none given).
func (e *Env) newNetSandbox(ctx context.Context, name string, p *policy) (string, *Exchange, error) {
	id := e.ID(name)
	body := noxapi.CreateSandboxRequest{}
	if p != nil {
		w := p.wire()
		body.Network = &w
	}
	x, err := e.Create(ctx, id, body)
	if err != nil {
		return "", x, err
	}
	if err := expectSuccess(x); err != nil {
		return "", x, err
	}
	return id, x, nil
}

// setPolicyOK sets p on sandbox id and expects it back.
func (e *Env) setPolicyOK(ctx context.Context, id string, p policy) error {
	x, err := e.setNetwork(ctx, id, p)
	if err != nil {
		return err
	}
	got, err := policyOK(x, false)
	if err != nil {
		return err
	}
	if !got.same(p) {
		return netFinding(x, got.String(), p.String(), errors.New("PUT .../network did not answer the policy it was sent"))
	}
	return nil
}

// permits reports whether the backend permits egress mode m.
func (e *Env) permits(m string) bool {
	if e.Info == nil || e.Info.Limits == nil || e.Info.Limits.EgressModes == nil {
		return true
	}
	for _, x := range e.Info.Limits.EgressModes {
		if string(x) == m {
			return true
		}
	}
	return false
}

func checkNetDefaultNone(ctx context.Context, env *Env) error {
	id, _, err := env.newNetSandbox(ctx, "net-default", nil)
	if err != nil {
		return err
	}
	x, err := env.getNetwork(ctx, id)
	if err != nil {
		return err
	}
	p, err := policyOK(x, true)
	if err != nil {
		return err
	}
	if p.mode() != api.EgressNone {
		return netFinding(x, p.String(), "egress none", errors.New("a sandbox created without a policy does not have egress none"))
	}
	return nil
}

func checkNetRoundTrip(ctx context.Context, env *Env) error {
	first := policy{Egress: api.EgressAllowlist, Allow: []string{"pypi.org", "*.example.com", "192.0.2.0/24", "2001:db8::/32"}, Deny: []string{"bad.example.com"}}
	id, _, err := env.newNetSandbox(ctx, "net-roundtrip", &first)
	if err != nil {
		return err
	}
	var errs []error
	x, err := env.getNetwork(ctx, id)
	if err != nil {
		return err
	}
	if got, err := policyOK(x, true); err != nil {
		errs = append(errs, err)
	} else if !got.same(first) {
		errs = append(errs, netFinding(x, got.String(), first.String(), errors.New("GET .../network does not answer the policy given on create")))
	}
	if env.Has(api.ExtSandboxesGet) {
		x, err := env.send(ctx, "get "+id, func() (*http.Response, error) { return env.Client.GetSandbox(ctx, id) })
		if err != nil {
			return err
		}
		var st struct {
			Network *policy `json:"network"`
		}
		if err := expectJSON(x, http.StatusOK, &st); err != nil {
			errs = append(errs, err)
		} else if st.Network == nil || !st.Network.same(first) {
			x.judge()
			errs = append(errs, netFinding(x, fmt.Sprintf("network %+v", st.Network), first.String(), errors.New("the sandbox's status does not report its policy")))
		}
	}
	modes := []string{api.EgressOpen, api.EgressAllowlist, api.EgressNone}
	second := policy{Deny: []string{"192.0.2.7"}}
	for _, m := range modes {
		if env.permits(m) && m != api.EgressAllowlist {
			second.Egress = m
			break
		}
	}
	x, err = env.setNetwork(ctx, id, second)
	if err != nil {
		return err
	}
	if got, err := policyOK(x, true); err != nil {
		errs = append(errs, err)
	} else if !got.same(second) {
		errs = append(errs, netFinding(x, got.String(), second.String(), errors.New("PUT .../network did not answer the policy it was sent")))
	}
	x, err = env.getNetwork(ctx, id)
	if err != nil {
		return err
	}
	if got, err := policyOK(x, true); err != nil {
		errs = append(errs, err)
	} else if !got.same(second) {
		errs = append(errs, netFinding(x, got.String(), second.String(), errors.New("GET .../network after a PUT does not answer the new policy")))
	}
	return errors.Join(errs...)
}

func checkNetInvalid(ctx context.Context, env *Env) error {
	id, _, err := env.newNetSandbox(ctx, "net-invalid", nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, tc := range []struct{ body, field string }{
		{`{"egress": "sometimes"}`, "egress"},
		{`{"egress": "allowlist", "allow": ["*.*.org"]}`, "allow[0]"},
		{`{"egress": "allowlist", "allow": ["pypi.org", "10.0.0.0/33"]}`, "allow[1]"},
		{`{"egress": "open", "deny": ["exa mple.com"]}`, "deny[0]"},
		{`{"egress": "allowlist", "allow": ["http://pypi.org/"]}`, "allow[0]"},
	} {
		x, err := env.setNetworkRaw(ctx, id, tc.body)
		if err != nil {
			return err
		}
		x.judge()
		if err := expectErrorNamingAny(x, http.StatusBadRequest, tc.field); err != nil {
			errs = append(errs, err)
		}
	}
	// On create, the field is named inside network.
	bad := policy{Egress: api.EgressAllowlist, Allow: []string{"a..b"}}
	x, err := env.Create(ctx, env.ID("net-invalid-create"), noxapi.CreateSandboxRequest{Network: ptr(bad.wire())})
	if err != nil {
		return err
	}
	x.judge()
	if err := expectErrorNamingAny(x, http.StatusBadRequest, "allow[0]"); err != nil {
		errs = append(errs, err)
	}
	// Unknown sandboxes.
	ghost := env.ID("net-ghost")
	for _, send := range []func() (*Exchange, error){
		func() (*Exchange, error) { return env.getNetwork(ctx, ghost) },
		func() (*Exchange, error) { return env.setNetwork(ctx, ghost, policy{Egress: api.EgressNone}) },
	} {
		x, err := send()
		if err != nil {
			return err
		}
		x.judge()
		if err := expectError(x, http.StatusNotFound); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkNetBounds(ctx context.Context, env *Env) error {
	if env.Info == nil || env.Info.Limits == nil {
		return SkipUnclaimed("the backend advertises no limits")
	}
	l := env.Info.Limits
	var forbidden string
	for _, m := range []string{api.EgressOpen, api.EgressAllowlist} {
		if !env.permits(m) {
			forbidden = m
			break
		}
	}
	if forbidden == "" && l.MaxEgressRules == nil {
		return SkipUnclaimed("the backend permits every egress mode and advertises no maxEgressRules")
	}
	id, _, err := env.newNetSandbox(ctx, "net-bounds", nil)
	if err != nil {
		return err
	}
	var errs []error
	if forbidden != "" {
		x, err := env.setNetwork(ctx, id, policy{Egress: forbidden})
		if err != nil {
			return err
		}
		x.judge()
		if err := expectErrorNamingAny(x, http.StatusBadRequest, "egress"); err != nil {
			errs = append(errs, err)
		}
	}
	if l.MaxEgressRules != nil {
		n := int(*l.MaxEgressRules) + 1
		p := policy{Egress: api.EgressAllowlist}
		for i := range n {
			p.Allow = append(p.Allow, "h"+strconv.Itoa(i)+".example.com")
		}
		if !env.permits(api.EgressAllowlist) {
			p.Egress = api.EgressNone
		}
		x, err := env.setNetwork(ctx, id, p)
		if err != nil {
			return err
		}
		x.judge()
		if err := expectErrorNamingAny(x, http.StatusBadRequest, "allow", "maxEgressRules"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
