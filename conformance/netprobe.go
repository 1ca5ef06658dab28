package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// netProbeScript is the Python program the network checks run inside a
// sandbox: "fetch URL" GETs the URL with the standard library (which
// honours the proxy variables a backend may set), "resolve NAME" looks
// the name up. It prints one JSON object: ok, and status and body, or
// addrs, or error.
const netProbeScript = `import json, socket, sys, urllib.error, urllib.request
kind, arg = sys.argv[1], sys.argv[2]
try:
    if kind == "fetch":
        with urllib.request.urlopen(arg, timeout=10) as r:
            out = {"ok": True, "status": r.status, "body": r.read(512).decode("utf-8", "replace")}
    else:
        out = {"ok": True, "addrs": sorted({a[4][0] for a in socket.getaddrinfo(arg, None)})}
except urllib.error.HTTPError as e:
    out = {"ok": False, "status": e.code, "error": "HTTP %d" % e.code}
except Exception as e:
    out = {"ok": False, "error": type(e).__name__ + ": " + str(e)}
print(json.dumps(out))
`

// probeResult is what netProbeScript printed.
type probeResult struct {
	OK     bool     `json:"ok"`
	Status int      `json:"status"`
	Body   string   `json:"body"`
	Addrs  []string `json:"addrs"`
	Error  string   `json:"error"`
	x      *Exchange
}

// String says what the probe saw.
func (r probeResult) String() string {
	switch {
	case r.OK && r.Addrs != nil:
		return "resolved to " + strings.Join(r.Addrs, ", ")
	case r.OK:
		return fmt.Sprintf("status %d %q", r.Status, clip(r.Body, 60))
	}
	return "failed: " + clip(r.Error, 160)
}

// needPython skips the check when sandbox id has no python3, which it
// needs for what (the skip's reason says).
func (e *Env) needPython(ctx context.Context, id, what string) error {
	out, err := e.Sh(ctx, id, "command -v python3 >/dev/null && echo yes || echo no")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "yes" {
		return Skip("the sandbox has no python3 " + what)
	}
	return nil
}

// probe runs netProbeScript kind arg in sandbox id.
func (e *Env) probe(ctx context.Context, id, kind, arg string) (probeResult, error) {
	t := int32(40)
	res, x, err := e.ExecOK(ctx, id, noxapi.ExecRequest{Cmd: []string{"python3", "-c", netProbeScript, kind, arg}, TimeoutSeconds: &t})
	if err != nil {
		return probeResult{}, err
	}
	var r probeResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.Stdout)), &r); err != nil {
		return r, fmt.Errorf("the network probe printed %q (stderr %q): %w: %w", clip(res.Stdout, 200), clip(res.Stderr, 200), ErrSuite, err)
	}
	r.x = x
	return r, nil
}

// fetched reports whether a fetch probe reached a server that answered
// 200 (a proxy's refusal is not one).
func (r probeResult) fetched() bool { return r.OK && r.Status == 200 }

// expectUnreached checks that a fetch of rawURL from sandbox id does not
// get a 200 (for the backend's /healthz: its "OK"), and says why in what.
func (e *Env) expectUnreached(ctx context.Context, id, rawURL, what string) error {
	r, err := e.probe(ctx, id, "fetch", rawURL)
	if err != nil {
		return err
	}
	if r.fetched() {
		r.x.judge()
		return netFinding(r.x, "GET "+rawURL+" from inside: "+r.String(), "no answer from it",
			fmt.Errorf("%s: a command in the sandbox reached %s", what, rawURL))
	}
	return nil
}

// expectReached checks that a fetch of rawURL from sandbox id gets a 200.
func (e *Env) expectReached(ctx context.Context, id, rawURL, what string) error {
	r, err := e.probe(ctx, id, "fetch", rawURL)
	if err != nil {
		return err
	}
	if !r.fetched() {
		r.x.judge()
		return netFinding(r.x, "GET "+rawURL+" from inside: "+r.String(), "status 200",
			fmt.Errorf("%s: a command in the sandbox did not reach %s", what, rawURL))
	}
	return nil
}

// egressTarget is Config.EgressTarget and its host, or a skip.
func (e *Env) egressTarget() (string, string, error) {
	t := e.cfg.EgressTarget
	if t == "" {
		return "", "", Skip("needs a destination the backend's sandboxes may reach: set the egress target (nox conformance --egress-target URL)")
	}
	u, err := url.Parse(t)
	if err != nil || u.Hostname() == "" {
		return "", "", fmt.Errorf("egress target %q is not an absolute URL: %w", t, ErrSuite)
	}
	return t, u.Hostname(), nil
}

// backendHost is the host of the backend's base URL.
func (e *Env) backendHost() string {
	u, err := url.Parse(e.BaseURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func checkNetNone(ctx context.Context, env *Env) error {
	id, _, err := env.newNetSandbox(ctx, "net-none", nil)
	if err != nil {
		return err
	}
	if err := env.needPython(ctx, id, "to probe the network with"); err != nil {
		return err
	}
	errs := []error{env.expectUnreached(ctx, id, strings.TrimRight(env.BaseURL, "/")+"/healthz", "egress none")}
	target, host, err := env.egressTarget()
	if err != nil {
		env.Notef("the egress target parts were not run: %v", err)
		return errors.Join(errs...)
	}
	errs = append(errs, env.expectUnreached(ctx, id, target, "egress none"))
	if r, err := env.probe(ctx, id, "resolve", host); err != nil {
		errs = append(errs, err)
	} else if r.OK {
		r.x.judge()
		errs = append(errs, netFinding(r.x, host+" "+r.String(), "no answer", errors.New("egress none: a name resolved inside the sandbox")))
	}
	return errors.Join(errs...)
}

// widest is the most open policy the backend permits that allows hosts.
func (e *Env) widest(hosts ...string) policy {
	if e.permits(api.EgressOpen) {
		return policy{Egress: api.EgressOpen}
	}
	return policy{Egress: api.EgressAllowlist, Allow: hosts}
}

func checkNetBackendUnreachable(ctx context.Context, env *Env) error {
	host := env.backendHost()
	var errs []error
	for _, p := range []policy{env.widest(host), {Egress: api.EgressAllowlist, Allow: []string{host}}} {
		if !env.permits(p.mode()) {
			continue
		}
		id, _, err := env.newNetSandbox(ctx, "net-backend", &p)
		if err != nil {
			return err
		}
		if err := env.needPython(ctx, id, "to probe the network with"); err != nil {
			return err
		}
		errs = append(errs, env.expectUnreached(ctx, id, strings.TrimRight(env.BaseURL, "/")+"/healthz", p.String()))
	}
	return errors.Join(errs...)
}

func checkNetMetadata(ctx context.Context, env *Env) error {
	const metadata = "169.254.169.254"
	var errs []error
	for _, p := range []policy{env.widest(metadata), {Egress: api.EgressAllowlist, Allow: []string{metadata}}} {
		if !env.permits(p.mode()) {
			continue
		}
		id, _, err := env.newNetSandbox(ctx, "net-metadata", &p)
		if err != nil {
			return err
		}
		if err := env.needPython(ctx, id, "to probe the network with"); err != nil {
			return err
		}
		errs = append(errs, env.expectUnreached(ctx, id, "http://"+metadata+"/latest/meta-data/", p.String()))
	}
	return errors.Join(errs...)
}

func checkNetAllowlist(ctx context.Context, env *Env) error {
	target, host, err := env.egressTarget()
	if err != nil {
		return err
	}
	if !env.permits(api.EgressAllowlist) {
		return SkipUnclaimed("the backend does not permit egress allowlist")
	}
	allowed := policy{Egress: api.EgressAllowlist, Allow: []string{host}}
	id, _, err := env.newNetSandbox(ctx, "net-allow", &allowed)
	if err != nil {
		return err
	}
	if err := env.needPython(ctx, id, "to probe the network with"); err != nil {
		return err
	}
	errs := []error{env.expectReached(ctx, id, target, allowed.String())}
	if _, err := netip.ParseAddr(host); err != nil { // a name
		if r, err := env.probe(ctx, id, "resolve", host); err != nil {
			errs = append(errs, err)
		} else if !r.OK {
			r.x.judge()
			errs = append(errs, netFinding(r.x, host+" "+r.String(), "its addresses", fmt.Errorf("%s: the allowed name did not resolve inside the sandbox", allowed)))
		}
	}
	other := policy{Egress: api.EgressAllowlist, Allow: []string{"nox-conformance-other.example"}}
	if err := env.setPolicyOK(ctx, id, other); err != nil {
		return err
	}
	errs = append(errs, env.expectUnreached(ctx, id, target, other.String()))
	if env.permits(api.EgressOpen) {
		denied := policy{Egress: api.EgressOpen, Deny: []string{host}}
		if err := env.setPolicyOK(ctx, id, denied); err != nil {
			return err
		}
		errs = append(errs, env.expectUnreached(ctx, id, target, denied.String()))
	}
	return errors.Join(errs...)
}

func checkNetChange(ctx context.Context, env *Env) error {
	target, host, err := env.egressTarget()
	if err != nil {
		return err
	}
	if !env.permits(api.EgressAllowlist) {
		return SkipUnclaimed("the backend does not permit egress allowlist")
	}
	id, _, err := env.newNetSandbox(ctx, "net-change", nil)
	if err != nil {
		return err
	}
	if err := env.needPython(ctx, id, "to probe the network with"); err != nil {
		return err
	}
	if err := env.expectUnreached(ctx, id, target, "egress none"); err != nil {
		return err
	}
	allowed := policy{Egress: api.EgressAllowlist, Allow: []string{host}}
	if err := env.setPolicyOK(ctx, id, allowed); err != nil {
		return err
	}
	if err := env.expectReached(ctx, id, target, "after PUT "+allowed.String()); err != nil {
		return err
	}
	if err := env.setPolicyOK(ctx, id, policy{Egress: api.EgressNone}); err != nil {
		return err
	}
	return env.expectUnreached(ctx, id, target, "after PUT egress none")
}
