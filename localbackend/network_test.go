package localbackend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// netRuntime is the fake runtime in a tier with network namespaces: the
// backend offers network.egress on it.
func netRuntime() *fakeRuntime {
	return &fakeRuntime{report: &sandbox.Report{Tier: sandbox.TierNamespaces, Isolated: true, Notes: []string{"test double"}}}
}

// netSetup starts a backend on netRuntime in dir (a fresh one when empty).
func netSetup(t *testing.T, dir string, mod func(*Config)) *testEnv {
	t.Helper()
	c := testConfig(t)
	if dir != "" {
		c.DataDir = dir
	}
	if mod != nil {
		mod(&c)
	}
	e := start(t, c, netRuntime())
	e.t = t
	return e
}

// network is the backend's driver.Network; it fails the test without one.
func (e *testEnv) network() driver.Network {
	e.t.Helper()
	n, ok := e.b.Driver().(driver.Network)
	if !ok {
		e.t.Fatal("the backend's driver is no driver.Network")
	}
	return n
}

// boxGateway returns sandbox id's gateway (nil: none).
func (e *testEnv) boxGateway(id string) *gateway {
	e.b.store.mu.Lock()
	defer e.b.store.mu.Unlock()
	return e.b.store.boxes[id].gw
}

var allowTest = driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"allowed.test"}}

func TestEgressConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if want := []string{api.EgressNone, api.EgressAllowlist, api.EgressOpen}; !slices.Equal(c.EgressModes, want) {
		t.Errorf("EgressModes %v, want %v", c.EgressModes, want)
	}
	if c.MaxEgressRules != 64 || c.MaxEgressConnections != 256 {
		t.Errorf("MaxEgressRules %d, MaxEgressConnections %d; want 64, 256", c.MaxEgressRules, c.MaxEgressConnections)
	}
}

func TestEgressConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "": valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no open", func(c *Config) { c.EgressModes = []string{"none", "allowlist"} }, ""},
		{"none only", func(c *Config) { c.EgressModes = []string{"none"} }, ""},
		{"unknown mode", func(c *Config) { c.EgressModes = []string{"none", "all"} }, `field EgressModes: unknown mode "all"`},
		{"twice", func(c *Config) { c.EgressModes = []string{"none", "open", "open"} }, `mode "open" listed twice`},
		{"without none", func(c *Config) { c.EgressModes = []string{"allowlist"} }, `must contain "none"`},
		{"negative rules", func(c *Config) { c.MaxEgressRules = -1 }, "field MaxEgressRules: must not be negative"},
		{"negative conns", func(c *Config) { c.MaxEgressConnections = -1 }, "field MaxEgressConnections: must not be negative"},
		{"invalid prefix", func(c *Config) { c.EgressOpen = []netip.Prefix{{}} }, "field EgressOpen"},
		{"open", func(c *Config) { c.EgressOpen = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, ""},
		{"relative netns", func(c *Config) { c.EgressNetns = "run/netns/x" }, "field EgressNetns"},
		{"missing netns", func(c *Config) { c.EgressNetns = filepath.Join(t.TempDir(), "nope") }, "field EgressNetns"},
		{"netns", func(c *Config) { c.EgressNetns = "/proc/self/ns/net" }, ""},
		{"resolver", func(c *Config) { c.EgressResolver = "192.0.2.53:53" }, ""},
		{"resolver without port", func(c *Config) { c.EgressResolver = "192.0.2.53" }, "field EgressResolver"},
		{"resolver name", func(c *Config) { c.EgressResolver = "dns.example:53" }, "field EgressResolver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			tc.mod(&c)
			c.applyDefaults()
			_, err := c.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestEgressNotOffered: a tier sharing the host's network has no
// network.egress, no driver.Network, no network in a sandbox's status,
// and refuses every policy but none.
func TestEgressNotOffered(t *testing.T) {
	e := setup(t, nil)
	d := e.b.Driver()
	info := d.Info()
	if slices.Contains(info.Extensions, api.ExtNetworkEgress) {
		t.Errorf("extensions %v list %s", info.Extensions, api.ExtNetworkEgress)
	}
	if l := info.Limits; l.EgressModes != nil || l.MaxEgressRules != 0 || l.MaxEgressConnections != 0 {
		t.Errorf("egress limits advertised: %v %d %d", l.EgressModes, l.MaxEgressRules, l.MaxEgressConnections)
	}
	if _, ok := d.(driver.Network); ok {
		t.Error("the driver is a driver.Network")
	}
	if m := e.b.Info().EgressModes; m != nil {
		t.Errorf("banner info: egress modes %v", m)
	}
	ctx := context.Background()
	sb, err := d.Create(ctx, "plain", driver.CreateRequest{Network: &driver.NetworkPolicy{Egress: api.EgressNone}})
	if err != nil || sb.Network != nil {
		t.Errorf("create with mode none: %+v, %v; want no network and no error", sb.Network, err)
	}
	_, err = d.Create(ctx, "out", driver.CreateRequest{Network: &allowTest})
	if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "network.egress") {
		t.Errorf("create with mode allowlist: %v, want ErrInvalidArgument naming network.egress", err)
	}
	if _, err := d.Get(ctx, "out"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("the refused create left a sandbox: %v", err)
	}
}

func TestEgressInfo(t *testing.T) {
	e := netSetup(t, "", func(c *Config) {
		c.EgressModes = []string{api.EgressNone, api.EgressAllowlist}
		c.MaxEgressRules, c.MaxEgressConnections = 8, 32
	})
	info := e.b.Driver().Info()
	if !slices.Contains(info.Extensions, api.ExtNetworkEgress) || !slices.Contains(info.Extensions, api.ExtPorts) {
		t.Errorf("extensions %v lack %s or %s", info.Extensions, api.ExtNetworkEgress, api.ExtPorts)
	}
	l := info.Limits
	if !slices.Equal(l.EgressModes, []string{api.EgressNone, api.EgressAllowlist}) || l.MaxEgressRules != 8 || l.MaxEgressConnections != 32 {
		t.Errorf("limits %v %d %d, want [none allowlist] 8 32", l.EgressModes, l.MaxEgressRules, l.MaxEgressConnections)
	}
	e.network()
	if m := e.b.Info().EgressModes; !slices.Equal(m, []string{api.EgressNone, api.EgressAllowlist}) {
		t.Errorf("banner info: egress modes %v", m)
	}
	// A sandbox created without a policy reports none, and gets no
	// gateway.
	sb, err := e.b.Driver().Create(context.Background(), "nopol", driver.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Network == nil || sb.Network.Egress != api.EgressNone {
		t.Errorf("network %+v, want mode none", sb.Network)
	}
	if e.boxGateway("nopol") != nil {
		t.Error("a sandbox with policy none has a gateway")
	}
}

func TestCommandEnvProxy(t *testing.T) {
	env := commandEnv(map[string]string{"HTTP_PROXY": "http://gw", "NO_PROXY": "localhost"}, map[string]string{"NO_PROXY": "mine", "X": "1"})
	for _, want := range []string{"HTTP_PROXY=http://gw", "NO_PROXY=mine", "X=1", "HOME=/workspace"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if !slices.IsSorted(env) {
		t.Errorf("env %v not sorted", env)
	}
}

// TestEgressPolicyPersists: the policy of a create is reported by create,
// get and list, kept by a later ensure, replaced by SetNetwork, and
// survives a restart.
func TestEgressPolicyPersists(t *testing.T) {
	dir := t.TempDir()
	e := netSetup(t, dir, nil)
	d := e.b.Driver()
	ctx := context.Background()
	check := func(when string, want driver.NetworkPolicy) {
		t.Helper()
		sb, err := d.Get(ctx, "keep")
		if err != nil {
			t.Fatalf("%s: get: %v", when, err)
		}
		if sb.Network == nil || sb.Network.Egress != want.Egress || !slices.Equal(sb.Network.Allow, want.Allow) || !slices.Equal(sb.Network.Deny, want.Deny) {
			t.Errorf("%s: network %+v, want %+v", when, sb.Network, want)
		}
		page, _, err := d.List(ctx, "", 10)
		if err != nil || len(page) != 1 || page[0].Network == nil || page[0].Network.Egress != want.Egress {
			t.Errorf("%s: list %+v, %v", when, page, err)
		}
	}
	pol := driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"allowed.test", "*.pkg.test"}, Deny: []string{"bad.pkg.test"}}
	sb, err := d.Create(ctx, "keep", driver.CreateRequest{Network: &pol})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Network == nil || sb.Network.Egress != api.EgressAllowlist || !slices.Equal(sb.Network.Allow, pol.Allow) {
		t.Errorf("create answered network %+v, want %+v", sb.Network, pol)
	}
	check("created", pol)
	if _, err := d.Create(ctx, "keep", driver.CreateRequest{Network: &driver.NetworkPolicy{Egress: api.EgressOpen}}); err != nil {
		t.Fatal(err)
	}
	check("ensured", pol)

	e.b.Close()
	e = netSetup(t, dir, nil)
	d = e.b.Driver()
	check("restarted", pol)
	open := driver.NetworkPolicy{Egress: api.EgressOpen, Deny: []string{"203.0.113.0/24"}}
	got, err := e.network().SetNetwork(ctx, "keep", open)
	if err != nil || got.Egress != api.EgressOpen || !slices.Equal(got.Deny, open.Deny) {
		t.Fatalf("SetNetwork: %+v, %v", got, err)
	}
	check("set", open)
	e.b.Close()
	e = netSetup(t, dir, nil)
	d = e.b.Driver()
	check("set and restarted", open)

	// An operator who no longer permits the mode: none after a restart.
	e.b.Close()
	e = netSetup(t, dir, func(c *Config) { c.EgressModes = []string{api.EgressNone, api.EgressAllowlist} })
	d = e.b.Driver()
	check("mode no longer permitted", driver.NetworkPolicy{Egress: api.EgressNone})
}

// TestEgressValidation: policies beyond the operator's bounds are
// ErrInvalidArgument naming the field, on create (network.*) and on
// SetNetwork; a refused SetNetwork changes nothing.
func TestEgressValidation(t *testing.T) {
	e := netSetup(t, "", func(c *Config) {
		c.EgressModes = []string{api.EgressNone, api.EgressAllowlist}
		c.MaxEgressRules = 2
		c.EgressPermit = []string{"*.corp.test"}
	})
	d := e.b.Driver()
	ctx := context.Background()
	for _, tc := range []struct {
		pol  driver.NetworkPolicy
		want string
	}{
		{driver.NetworkPolicy{Egress: api.EgressOpen}, "egress"},
		{driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"a.corp.test", "*.*.test"}}, "allow[1]"},
		{driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"a.corp.test", "other.test"}}, "allow[1]"},
		{driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"a.corp.test", "b.corp.test"}, Deny: []string{"c.corp.test"}}, "deny"},
	} {
		_, err := d.Create(ctx, "bad", driver.CreateRequest{Network: &tc.pol})
		if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "network."+tc.want) {
			t.Errorf("create %+v: %v, want ErrInvalidArgument naming network.%s", tc.pol, err, tc.want)
		}
		if _, err := d.Get(ctx, "bad"); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("create %+v left a sandbox: %v", tc.pol, err)
		}
	}
	ok := driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"a.corp.test"}}
	if _, err := d.Create(ctx, "good", driver.CreateRequest{Network: &ok}); err != nil {
		t.Fatal(err)
	}
	_, err := e.network().SetNetwork(ctx, "good", driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"x.test"}})
	if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "allow[0]") || strings.Contains(err.Error(), "network.") {
		t.Errorf("SetNetwork beyond Permit: %v, want ErrInvalidArgument naming allow[0]", err)
	}
	if sb, _ := d.Get(ctx, "good"); sb.Network == nil || !slices.Equal(sb.Network.Allow, ok.Allow) {
		t.Errorf("a refused SetNetwork changed the policy: %+v", sb.Network)
	}
	if _, err := e.network().SetNetwork(ctx, "nope", ok); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("SetNetwork of an unknown sandbox: %v, want ErrNotFound", err)
	}
}

// lastEnv returns the last environment started.
func (e *testEnv) lastEnv() *fakeEnv {
	e.rt.mu.Lock()
	defer e.rt.mu.Unlock()
	return e.rt.envs[len(e.rt.envs)-1]
}

// proxyReachable reports whether something accepts connections at addr.
func proxyReachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestEgressGatewayLifecycle: a sandbox has a gateway exactly while its
// environment runs with a policy other than none; commands then get the
// proxy variables.
func TestEgressGatewayLifecycle(t *testing.T) {
	e := netSetup(t, "", nil)
	d, n := e.b.Driver(), e.network()
	ctx := context.Background()
	if _, err := d.Create(ctx, "gw", driver.CreateRequest{Network: &allowTest}); err != nil {
		t.Fatal(err)
	}
	g1 := e.boxGateway("gw")
	env1 := e.lastEnv()
	if g1 == nil || len(env1.proxies) != 1 || !proxyReachable(env1.proxies[0]) {
		t.Fatalf("no gateway serving after create (gateway %v, sockets %v)", g1, env1.proxies)
	}
	r := e.exec("gw", map[string]any{"cmd": []string{"sh", "-c", "echo $HTTP_PROXY $https_proxy $ALL_PROXY; echo $NO_PROXY"}, "env": map[string]string{"NO_PROXY": "mine"}})
	if lines := strings.Split(r.Stdout, "\n"); !strings.Contains(lines[0], "127.0.0.53:3128") || lines[1] != "mine" {
		t.Errorf("command environment %q: want the proxy variables, the request's NO_PROXY", r.Stdout)
	}

	// allowlist -> open: the same gateway, a new policy.
	if _, err := n.SetNetwork(ctx, "gw", driver.NetworkPolicy{Egress: api.EgressOpen}); err != nil {
		t.Fatal(err)
	}
	if g := e.boxGateway("gw"); g != g1 {
		t.Errorf("a change between allowlist and open replaced the gateway")
	}
	// -> none: no gateway, no proxy variables.
	if _, err := n.SetNetwork(ctx, "gw", driver.NetworkPolicy{Egress: api.EgressNone}); err != nil {
		t.Fatal(err)
	}
	if e.boxGateway("gw") != nil || proxyReachable(env1.proxies[0]) {
		t.Error("the gateway survived SetNetwork(none)")
	}
	if r := e.exec("gw", map[string]any{"cmd": []string{"sh", "-c", "echo $HTTP_PROXY"}}); r.Stdout != "\n" {
		t.Errorf("HTTP_PROXY %q with policy none", r.Stdout)
	}
	// -> allowlist again, while a process of the sandbox holds the
	// address: 409 naming it, nothing changed.
	env1.mu.Lock()
	env1.listenErr = sandbox.ErrAddrInUse
	env1.mu.Unlock()
	_, err := n.SetNetwork(ctx, "gw", allowTest)
	if !errors.Is(err, driver.ErrConflict) || !strings.Contains(err.Error(), "127.0.0.53:") {
		t.Errorf("SetNetwork with the address in use: %v, want ErrConflict naming it", err)
	}
	if sb, _ := d.Get(ctx, "gw"); sb.Network.Egress != api.EgressNone || e.boxGateway("gw") != nil {
		t.Errorf("a refused SetNetwork changed the sandbox: %+v", sb.Network)
	}
	env1.mu.Lock()
	env1.listenErr = nil
	env1.mu.Unlock()
	if _, err := n.SetNetwork(ctx, "gw", allowTest); err != nil {
		t.Fatal(err)
	}
	g2 := e.boxGateway("gw")
	if g2 == nil || !proxyReachable(env1.proxies[len(env1.proxies)-1]) {
		t.Fatal("no gateway after SetNetwork(allowlist)")
	}

	// The environment dies: the next command rebuilds it with a new
	// gateway, and the old one is closed.
	_ = env1.Stop()
	e.exec("gw", map[string]any{"cmd": []string{"true"}})
	env2 := e.lastEnv()
	if env2 == env1 || e.boxGateway("gw") == g2 || e.boxGateway("gw") == nil || len(env2.proxies) != 1 {
		t.Fatalf("rebuilt environment without a new gateway")
	}
	if proxyReachable(env1.proxies[len(env1.proxies)-1]) {
		t.Error("the dead environment's gateway still serves")
	}

	// A stopped sandbox takes a policy change without starting.
	_ = env2.Stop()
	starts := e.rt.starts.Load()
	if _, err := n.SetNetwork(ctx, "gw", driver.NetworkPolicy{Egress: api.EgressOpen}); err != nil {
		t.Fatal(err)
	}
	if e.rt.starts.Load() != starts {
		t.Error("SetNetwork started the environment")
	}

	// Delete closes the gateway.
	e.exec("gw", map[string]any{"cmd": []string{"true"}})
	env3 := e.lastEnv()
	if err := d.Delete(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	if proxyReachable(env3.proxies[0]) {
		t.Error("the gateway survived the delete")
	}
}

// TestEgressGatewayClosed: expiry and Close close gateways.
func TestEgressGatewayClosed(t *testing.T) {
	e := netSetup(t, "", nil)
	d := e.b.Driver()
	ctx := context.Background()
	if _, err := d.Create(ctx, "exp", driver.CreateRequest{TTL: time.Second, Network: &allowTest}); err != nil {
		t.Fatal(err)
	}
	envExp := e.lastEnv()
	if _, err := d.Create(ctx, "cl", driver.CreateRequest{Network: &allowTest}); err != nil {
		t.Fatal(err)
	}
	envCl := e.lastEnv()
	deadline := time.Now().Add(10 * time.Second)
	for proxyReachable(envExp.proxies[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the expired sandbox's gateway still serves")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !proxyReachable(envCl.proxies[0]) {
		t.Fatal("the live sandbox's gateway does not serve")
	}
	if gatewayGoroutines() == "" {
		t.Fatal("gatewayGoroutines sees no goroutine while a gateway serves")
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if proxyReachable(envCl.proxies[0]) {
		t.Error("the gateway survived Close")
	}
	if g := gatewayGoroutines(); g != "" {
		t.Errorf("gateway goroutines left after Close:\n%s", g)
	}
}

// gatewayGoroutines returns the stacks of the goroutines of egress
// gateways ("" when there are none).
func gatewayGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:goruntime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/egress.") || strings.Contains(g, "localbackend.(*gateway)") {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}
