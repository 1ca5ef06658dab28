package sdk

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// ExtNetworkEgress is Sandbox.Network and SetNetwork, CreateOptions.Network
// and SandboxStatus.Network: a per-sandbox egress policy.
const ExtNetworkEgress = api.ExtNetworkEgress

// EgressMode is the mode of a NetworkPolicy.
type EgressMode string

// The egress modes.
const (
	// EgressNone: nothing outside the sandbox is reachable and no name
	// resolves (the default; the empty mode means it too).
	EgressNone EgressMode = api.EgressNone
	// EgressAllowlist: only the destinations Allow names, minus those
	// Deny names.
	EgressAllowlist EgressMode = api.EgressAllowlist
	// EgressOpen: every destination except those Deny names.
	EgressOpen EgressMode = api.EgressOpen
)

// NetworkPolicy is a sandbox's egress policy (extension
// ExtNetworkEgress): what the sandbox may connect to outside itself. Its
// own loopback always works, and the port proxy (Dial, PortURL) reaches
// it whatever the policy. Entries of Allow and Deny are a domain name
// ("pypi.org"), a wildcard ("*.github.com": names under github.com, not
// github.com itself), an IP address or a CIDR prefix; Deny wins over
// Allow. Private, loopback, link-local and metadata addresses stay
// unreachable unless the operator opened them. The backend checks the
// entries, its permitted modes (Limits.EgressModes) and the number of
// entries (Limits.MaxEgressRules): a policy it refuses is an error
// matching ErrInvalidArgument that names the field.
type NetworkPolicy struct {
	// Egress is the mode; empty means EgressNone.
	Egress EgressMode `json:"egress"`
	// Allow lists the destinations of mode EgressAllowlist.
	Allow []string `json:"allow,omitempty"`
	// Deny lists the destinations refused in modes EgressAllowlist and
	// EgressOpen.
	Deny []string `json:"deny,omitempty"`
}

// mode is p's mode, EgressNone when empty.
func (p NetworkPolicy) mode() EgressMode {
	if p.Egress == "" {
		return EgressNone
	}
	return p.Egress
}

// Network returns the sandbox's egress policy (extension
// ExtNetworkEgress; ErrUnsupported without it). An unknown sandbox is an
// error matching ErrNotFound. It does not count as activity.
//
//meta:operation GET /v1/sandboxes/{sessionId}/network
func (s *Sandbox) Network(ctx context.Context) (NetworkPolicy, error) {
	const op = "getNetwork"
	if err := checkID(op, s.id); err != nil {
		return NetworkPolicy{}, err
	}
	if err := s.c.requireExt(ctx, op, ExtNetworkEgress); err != nil {
		return NetworkPolicy{}, err
	}
	resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.GetNetwork(ctx, s.id)
	})
	if err != nil {
		return NetworkPolicy{}, err
	}
	var g noxapi.NetworkPolicy
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return NetworkPolicy{}, err
	}
	return fromGenNetwork(&g), nil
}

// SetNetwork replaces the sandbox's egress policy with p (extension
// ExtNetworkEgress; ErrUnsupported without it) and returns the policy
// now in force. It takes effect at once for new connections; commands
// and processes started while the policy was EgressNone lack the proxy
// settings the backend may give them, so start them again. A policy the
// backend refuses is an error matching ErrInvalidArgument that names the
// field ("allow[2]"); an unknown sandbox matches ErrNotFound.
//
//meta:operation PUT /v1/sandboxes/{sessionId}/network
func (s *Sandbox) SetNetwork(ctx context.Context, p NetworkPolicy) (NetworkPolicy, error) {
	const op = "setNetwork"
	if err := checkID(op, s.id); err != nil {
		return NetworkPolicy{}, err
	}
	if err := s.c.requireExt(ctx, op, ExtNetworkEgress); err != nil {
		return NetworkPolicy{}, err
	}
	body := toGenNetwork(p)
	// The whole policy is replaced: sending it again changes nothing more.
	resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.SetNetwork(ctx, s.id, body)
	})
	if err != nil {
		return NetworkPolicy{}, err
	}
	var g noxapi.NetworkPolicy
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return NetworkPolicy{}, err
	}
	return fromGenNetwork(&g), nil
}

// checkCreateNetwork fails with an error matching ErrUnsupported, before
// any request, when a create asks for a policy other than EgressNone of
// a backend that does not advertise ExtNetworkEgress (which would ignore
// it and leave the sandbox without the access asked for).
func (c *Client) checkCreateNetwork(ctx context.Context, op string, p *NetworkPolicy) error {
	if p == nil || p.mode() == EgressNone {
		return nil
	}
	if err := c.requireExt(ctx, op, ExtNetworkEgress); err != nil {
		return fmt.Errorf("%w (network: mode %s asked for)", err, p.mode())
	}
	return nil
}

func toGenNetwork(p NetworkPolicy) noxapi.NetworkPolicy {
	g := noxapi.NetworkPolicy{Allow: slices.Clone(p.Allow), Deny: slices.Clone(p.Deny)}
	if p.Egress != "" {
		mode := noxapi.NetworkPolicyEgress(p.Egress)
		g.Egress = &mode
	}
	return g
}

// fromGenNetwork converts a policy of an answer; an absent mode is
// EgressNone.
func fromGenNetwork(g *noxapi.NetworkPolicy) NetworkPolicy {
	p := NetworkPolicy{Egress: EgressNone, Allow: g.Allow, Deny: g.Deny}
	if g.Egress != nil && *g.Egress != "" {
		p.Egress = EgressMode(*g.Egress)
	}
	return p
}
