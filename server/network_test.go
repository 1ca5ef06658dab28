package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// netDouble is a double that also implements driver.Network: it keeps
// each sandbox's policy, set by create or SetNetwork, and reports it in
// the sandbox's status.
type netDouble struct {
	*double

	nmu      sync.Mutex
	policies map[string]driver.NetworkPolicy
	sets     []driver.NetworkPolicy
	setErr   error // returned by SetNetwork when set
}

var _ driver.Network = (*netDouble)(nil)

// netInfo is fullInfo with the network.egress extension and its limits.
func netInfo() driver.Info {
	in := fullInfo()
	in.Extensions = append(in.Extensions, api.ExtNetworkEgress)
	in.Limits.EgressModes = []string{api.EgressNone, api.EgressAllowlist}
	in.Limits.MaxEgressRules, in.Limits.MaxEgressConnections = 3, 64
	return in
}

func newNetDouble(in driver.Info) *netDouble {
	return &netDouble{double: &double{info: in}, policies: map[string]driver.NetworkPolicy{}}
}

func (d *netDouble) Create(ctx context.Context, id string, req driver.CreateRequest) (driver.Sandbox, error) {
	s, err := d.double.Create(ctx, id, req)
	if err != nil {
		return s, err
	}
	d.nmu.Lock()
	defer d.nmu.Unlock()
	if _, ok := d.policies[id]; !ok {
		p := driver.NetworkPolicy{Egress: api.EgressNone}
		if req.Network != nil {
			p = *req.Network
		}
		d.policies[id] = p
	}
	return d.withNetwork(s), nil
}

func (d *netDouble) Get(ctx context.Context, id string) (driver.Sandbox, error) {
	s, err := d.double.Get(ctx, id)
	if err != nil {
		return s, err
	}
	d.nmu.Lock()
	defer d.nmu.Unlock()
	if _, ok := d.policies[id]; !ok {
		return driver.Sandbox{}, fmt.Errorf("sandbox %q: %w", id, driver.ErrNotFound)
	}
	return d.withNetwork(s), nil
}

func (d *netDouble) List(ctx context.Context, after string, n int) ([]driver.Sandbox, bool, error) {
	items, more, err := d.double.List(ctx, after, n)
	d.nmu.Lock()
	defer d.nmu.Unlock()
	for i := range items {
		items[i] = d.withNetwork(items[i])
	}
	return items, more, err
}

// withNetwork sets s.Network from the kept policy; d.nmu is held.
func (d *netDouble) withNetwork(s driver.Sandbox) driver.Sandbox {
	if p, ok := d.policies[s.ID]; ok {
		s.Network = &p
	}
	return s
}

func (d *netDouble) SetNetwork(_ context.Context, id string, p driver.NetworkPolicy) (driver.NetworkPolicy, error) {
	d.nmu.Lock()
	defer d.nmu.Unlock()
	d.sets = append(d.sets, p)
	if d.setErr != nil {
		return driver.NetworkPolicy{}, d.setErr
	}
	if _, ok := d.policies[id]; !ok {
		return driver.NetworkPolicy{}, fmt.Errorf("sandbox %q: %w", id, driver.ErrNotFound)
	}
	d.policies[id] = p
	return p, nil
}

// setsReceived returns a copy of the policies SetNetwork received.
func (d *netDouble) setsReceived() []driver.NetworkPolicy {
	d.nmu.Lock()
	defer d.nmu.Unlock()
	return slices.Clone(d.sets)
}

// setupBackend serves b, whose double is d, with the default options.
func setupBackend(t *testing.T, b driver.Backend, d *double) *env {
	t.Helper()
	logs := &lockedBuffer{}
	h, err := server.New(b, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, d: d, url: srv.URL, logs: logs}
}

// decodePolicy decodes a NetworkPolicy answer.
func decodePolicy(t *testing.T, body []byte) noxapi.NetworkPolicy {
	t.Helper()
	var p noxapi.NetworkPolicy
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("policy %s: %v", body, err)
	}
	return p
}

func TestNetworkAdvertised(t *testing.T) {
	t.Parallel()
	withExt := fullInfo()
	withExt.Extensions = append(withExt.Extensions, api.ExtNetworkEgress)
	withExt.Limits = netInfo().Limits
	cases := []struct {
		name  string
		b     driver.Backend
		serve bool
	}{
		{"implements and lists", newNetDouble(netInfo()), true},
		{"implements, does not list", newNetDouble(fullInfo()), false},
		{"lists, does not implement", &double{info: withExt}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setupBackend(t, c.b, nil)
			resp, body := e.do("GET", "/v1/info", nil)
			var got noxapi.Info
			if err := json.Unmarshal(body, &got); resp.StatusCode != 200 || err != nil {
				t.Fatalf("info: %d %s %v", resp.StatusCode, body, err)
			}
			if has := slices.Contains(got.Extensions, api.ExtNetworkEgress); has != c.serve {
				t.Errorf("extensions = %v; network.egress listed %v, want %v", got.Extensions, has, c.serve)
			}
			l := got.Limits
			advertised := l.EgressModes != nil || l.MaxEgressRules != nil || l.MaxEgressConnections != nil
			if advertised != c.serve {
				t.Errorf("egress limits advertised %v, want %v: %s", advertised, c.serve, body)
			}
			if c.serve && (fmt.Sprint(l.EgressModes) != "[none allowlist]" || *l.MaxEgressRules != 3 || *l.MaxEgressConnections != 64) {
				t.Errorf("egress limits = %s", body)
			}
			resp, body = e.do("GET", "/v1/sandboxes/a/network", nil)
			if !c.serve {
				expectError(t, resp, body, 404, "no such endpoint")
			} else if resp.StatusCode == 404 && strings.Contains(string(body), "no such endpoint") {
				t.Errorf("GET network on a serving backend: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// The checks the server makes before the backend sees a policy; each
// names the field.
func TestNetworkValidation(t *testing.T) {
	t.Parallel()
	tooMany := map[string]any{"egress": "allowlist", "allow": []string{"a.example", "b.example"}, "deny": []string{"c.example", "d.example"}}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"create: mode not permitted", "PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "open"}}, 400, `network.egress: mode "open" is not permitted by this backend; permitted: none, allowlist`},
		{"create: unknown mode", "PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "everything"}}, 400, "network.egress: value is not one of the allowed values"},
		{"create: too many rules", "PUT", "/v1/sandboxes/a", map[string]any{"network": tooMany}, 400, "network.allow: 4 entries in allow and deny together exceed the limit of 3"},
		{"create: empty entry", "PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "allowlist", "allow": []string{""}}}, 400, "network.allow[0]: minimum string length is 1"},
		{"create: null list", "PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "allowlist", "deny": nil}}, 400, "network.deny: Value is not nullable"},
		{"set: mode not permitted", "PUT", "/v1/sandboxes/a/network", map[string]any{"egress": "open"}, 400, `egress: mode "open" is not permitted by this backend; permitted: none, allowlist`},
		{"set: unknown mode", "PUT", "/v1/sandboxes/a/network", map[string]any{"egress": "everything"}, 400, "egress: value is not one of the allowed values"},
		{"set: too many rules", "PUT", "/v1/sandboxes/a/network", tooMany, 400, "allow: 4 entries in allow and deny together exceed the limit of 3"},
		{"set: allow not a list", "PUT", "/v1/sandboxes/a/network", map[string]any{"allow": "a.example"}, 400, "allow: value must be an array"},
		{"set: no body", "PUT", "/v1/sandboxes/a/network", nil, 400, "body"},
		{"set: bad session id", "PUT", "/v1/sandboxes/-a/network", map[string]any{}, 400, "sessionId"},
		{"get: bad session id", "GET", "/v1/sandboxes/-a/network", nil, 400, "sessionId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := newNetDouble(netInfo())
			e := setupBackend(t, d, d.double)
			resp, body := e.do(c.method, c.path, c.body)
			expectError(t, resp, body, c.status, c.want)
			if creates, _, _ := d.requests(); len(creates) != 0 {
				t.Errorf("the backend received create %+v", creates)
			}
			if sets := d.setsReceived(); len(sets) != 0 {
				t.Errorf("the backend received policy %+v", sets)
			}
		})
	}
}

// Entries egress.Validate refuses are 400s naming the entry.
func TestNetworkSyntax(t *testing.T) {
	t.Parallel()
	d := newNetDouble(netInfo())
	e := setupBackend(t, d, d.double)
	resp, body := e.do("PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "allowlist", "allow": []string{"example.com", "not a host!"}}})
	expectError(t, resp, body, 400, "network.allow[1]")
	resp, body = e.do("PUT", "/v1/sandboxes/a/network", map[string]any{"egress": "allowlist", "deny": []string{"not a host!"}})
	expectError(t, resp, body, 400, "deny[0]")
	if strings.Contains(string(body), "network.") {
		t.Errorf("setNetwork names the field with the create prefix: %s", body)
	}
}

func TestNetworkCreate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body map[string]any
		want *driver.NetworkPolicy
	}{
		{"absent", map[string]any{}, nil},
		{"empty: mode none", map[string]any{"network": map[string]any{}}, &driver.NetworkPolicy{Egress: api.EgressNone}},
		{"allowlist", map[string]any{"network": map[string]any{"egress": "allowlist", "allow": []string{"example.com", "192.0.2.7"}, "deny": []string{"10.1.2.0/24"}}},
			&driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"example.com", "192.0.2.7"}, Deny: []string{"10.1.2.0/24"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := newNetDouble(netInfo())
			e := setupBackend(t, d, d.double)
			if resp, body := e.do("PUT", "/v1/sandboxes/a", c.body); resp.StatusCode != 200 {
				t.Fatalf("create: %d %s", resp.StatusCode, body)
			}
			creates, _, _ := d.requests()
			if len(creates) != 1 || !reflect.DeepEqual(creates[0].Network, c.want) {
				t.Errorf("backend received %+v, want network %+v", creates, c.want)
			}
		})
	}
}

// PUT then GET /network, and the policy in the sandbox's status.
func TestNetworkRoundTrip(t *testing.T) {
	t.Parallel()
	d := newNetDouble(netInfo())
	e := setupBackend(t, d, d.double)
	if resp, body := e.do("PUT", "/v1/sandboxes/a", map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	resp, body := e.do("GET", "/v1/sandboxes/a/network", nil)
	if p := decodePolicy(t, body); resp.StatusCode != 200 || p.Egress == nil || *p.Egress != "none" || p.Allow != nil {
		t.Fatalf("GET before any PUT: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("PUT", "/v1/sandboxes/a/network", map[string]any{"egress": "allowlist", "allow": []string{"example.com", "*.example.org"}})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	want := `{"allow":["example.com","*.example.org"],"egress":"allowlist"}`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("PUT answered %s, want %s", got, want)
	}
	if sets := d.setsReceived(); len(sets) != 1 || !reflect.DeepEqual(sets[0], driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"example.com", "*.example.org"}}) {
		t.Errorf("backend received %+v", sets)
	}
	if _, body = e.do("GET", "/v1/sandboxes/a/network", nil); strings.TrimSpace(string(body)) != want {
		t.Errorf("GET after PUT: %s, want %s", body, want)
	}
	_, body = e.do("GET", "/v1/sandboxes/a", nil)
	var st noxapi.SandboxStatus
	if err := json.Unmarshal(body, &st); err != nil || st.Network == nil || *st.Network.Egress != "allowlist" || len(st.Network.Allow) != 2 {
		t.Errorf("status: %s %v", body, err)
	}
	_, body = e.do("GET", "/v1/sandboxes", nil)
	var list noxapi.SandboxList
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != 1 || list.Items[0].Network == nil {
		t.Errorf("list: %s %v", body, err)
	}
	// A PUT without a mode is mode none: the whole policy is replaced.
	if resp, body = e.do("PUT", "/v1/sandboxes/a/network", map[string]any{}); resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"egress":"none"}` {
		t.Errorf("PUT {}: %d %s", resp.StatusCode, body)
	}
}

// The backend's errors keep their categories.
func TestNetworkBackendErrors(t *testing.T) {
	t.Parallel()
	d := newNetDouble(netInfo())
	e := setupBackend(t, d, d.double)
	resp, body := e.do("PUT", "/v1/sandboxes/nope/network", map[string]any{"egress": "none"})
	expectError(t, resp, body, 404, `sandbox "nope" not found`)
	resp, body = e.do("GET", "/v1/sandboxes/nope/network", nil)
	expectError(t, resp, body, 404, `sandbox "nope" not found`)
	d.nmu.Lock()
	d.setErr = fmt.Errorf("a process holds 127.0.0.53:3128: %w", driver.ErrConflict)
	d.nmu.Unlock()
	resp, body = e.do("PUT", "/v1/sandboxes/nope/network", map[string]any{"egress": "none"})
	expectError(t, resp, body, 409, "a process holds 127.0.0.53:3128")
}

// A backend without the extension: its endpoints are absent, create
// ignores mode none and refuses the others.
func TestNetworkUnsupported(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	for _, m := range []string{"GET", "PUT"} {
		resp, body := e.do(m, "/v1/sandboxes/a/network", map[string]any{})
		expectError(t, resp, body, 404, "no such endpoint")
	}
	for _, body := range []map[string]any{{}, {"network": map[string]any{}}, {"network": map[string]any{"egress": "none", "allow": []string{"ignored.example"}}}} {
		if resp, data := e.do("PUT", "/v1/sandboxes/a", body); resp.StatusCode != 200 {
			t.Errorf("create %v: %d %s", body, resp.StatusCode, data)
		}
	}
	creates, _, _ := e.d.requests()
	for _, c := range creates {
		if c.Network != nil {
			t.Errorf("backend without the extension received network %+v", c.Network)
		}
	}
	resp, body := e.do("PUT", "/v1/sandboxes/a", map[string]any{"network": map[string]any{"egress": "allowlist", "allow": []string{"example.com"}}})
	expectError(t, resp, body, 400, "network.egress")
	expectError(t, resp, body, 400, "the backend does not implement network.egress")
	_, body = e.do("GET", "/v1/sandboxes/a", nil)
	if strings.Contains(string(body), "network") {
		t.Errorf("status of a backend without the extension: %s", body)
	}
}
