package localbackend

// End-to-end tests of network.egress: real sandboxes running curl and
// getent, a gateway per sandbox, and a stand-in internet (networld) in a
// network namespace of the test's own, where every upstream connection
// and lookup of the gateways goes.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/networld"
)

// egressWorld is a backend on the real runtime whose gateways reach only
// a world of the test's own: allowed.test and denied.test serve HTTP on
// port 80, and so does the metadata address 169.254.169.254.
type egressWorld struct {
	*testEnv
	w               *networld.World
	allowed, denied netip.Addr
}

func newEgressWorld(t *testing.T) *egressWorld {
	t.Helper()
	if _, err := os.Stat("/usr/bin/curl"); err != nil {
		t.Skip("no /usr/bin/curl")
	}
	w := networld.New(t)
	e := realEnv(t, func(c *Config) {
		c.EgressNetns = w.NetnsPath()
		c.EgressResolver = w.DNSAddr().String()
	})
	e.t = t
	if e.b.egress == nil {
		t.Skipf("tier %s has no network namespaces: no network.egress", e.b.Info().Tier)
	}
	ew := &egressWorld{testEnv: e, w: w, allowed: w.Host("allowed.test"), denied: w.Host("denied.test")}
	for name, addr := range map[string]netip.Addr{"allowed.test": ew.allowed, "denied.test": ew.denied, "metadata": networld.Metadata} {
		err := w.ServeHTTP(netip.AddrPortFrom(addr, 80), http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/stream" {
				// A long answer, a line every 100ms: an open tunnel.
				f, _ := rw.(http.Flusher)
				for i := 0; i < 600 && r.Context().Err() == nil; i++ {
					fmt.Fprintf(rw, "line %d\n", i)
					if f != nil {
						f.Flush()
					}
					time.Sleep(100 * time.Millisecond)
				}
				return
			}
			fmt.Fprintf(rw, "hello from %s\n", name)
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	return ew
}

// createNet makes sandbox id through the API with policy p (nil: none)
// and checks the policy it reports.
func (ew *egressWorld) createNet(id string, p *driver.NetworkPolicy) {
	ew.t.Helper()
	body := map[string]any{"ttlSeconds": 600}
	want := api.EgressNone
	if p != nil {
		body["network"] = policyBody(*p)
		want = p.Egress
	}
	ew.create(id, body)
	resp, data := ew.do("GET", "/v1/sandboxes/"+id, nil)
	var st struct{ Network *struct{ Egress string } }
	if err := json.Unmarshal(data, &st); err != nil || resp.StatusCode != 200 || st.Network == nil || st.Network.Egress != want {
		ew.t.Errorf("GET %s: %d %s, want network mode %s", id, resp.StatusCode, data, want)
	}
}

// sh runs script in sandbox id and returns its result.
func (ew *egressWorld) sh(id, script string) (code int, stdout, stderr string) {
	ew.t.Helper()
	r := ew.exec(id, map[string]any{"cmd": []string{"sh", "-c", script}, "timeoutSeconds": 60})
	return int(r.ExitCode), r.Stdout, r.Stderr
}

// policyBody is p as a NetworkPolicy JSON object.
func policyBody(p driver.NetworkPolicy) map[string]any {
	body := map[string]any{"egress": p.Egress}
	if p.Allow != nil {
		body["allow"] = p.Allow
	}
	if p.Deny != nil {
		body["deny"] = p.Deny
	}
	return body
}

// setNetwork replaces sandbox id's policy through the API (PUT, then
// GET to check).
func (ew *egressWorld) setNetwork(id string, p driver.NetworkPolicy) {
	ew.t.Helper()
	path := "/v1/sandboxes/" + id + "/network"
	if resp, data := ew.do("PUT", path, policyBody(p)); resp.StatusCode != 200 {
		ew.t.Fatalf("PUT %s %+v: %d %s", path, p, resp.StatusCode, data)
	}
	var got struct{ Egress string }
	if resp, data := ew.do("GET", path, nil); resp.StatusCode != 200 || json.Unmarshal(data, &got) != nil || got.Egress != p.Egress {
		ew.t.Fatalf("GET %s: %d %s, want mode %s", path, resp.StatusCode, data, p.Egress)
	}
}

// expectOut checks that script exits 0 printing want.
func (ew *egressWorld) expectOut(id, script, want string) {
	ew.t.Helper()
	if code, out, errs := ew.sh(id, script); code != 0 || !strings.Contains(out, want) {
		ew.t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 printing %q", script, code, out, errs, want)
	}
}

// expectFail checks that script fails without printing notWant.
func (ew *egressWorld) expectFail(id, script, notWant string) {
	ew.t.Helper()
	if code, out, errs := ew.sh(id, script); code == 0 || (notWant != "" && strings.Contains(out, notWant)) {
		ew.t.Errorf("%s: exit %d, stdout %q, stderr %q; want a failure", script, code, out, errs)
	}
}

func TestEgressAllowlistReal(t *testing.T) {
	ew := newEgressWorld(t)
	ew.createNet("al", &driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"allowed.test"}})
	ew.expectOut("al", "curl -sS -m 20 http://allowed.test/", "hello from allowed.test")
	ew.expectOut("al", "curl -sS -m 20 --noproxy '' --socks5-hostname 127.0.0.53:3128 http://allowed.test/", "hello from allowed.test")
	ew.expectFail("al", "curl -sS -f -m 20 http://denied.test/", "hello")
	ew.expectOut("al", "curl -sS -m 20 -o /dev/null -w '%{http_code}' http://denied.test/", "403")
	ew.expectOut("al", "getent hosts allowed.test", ew.allowed.String())
	ew.expectFail("al", "getent hosts denied.test", "")
}

// TestEgressForbiddenReal: the nox server, the host's loopback and the
// metadata address stay out of reach even when the policy allows them.
func TestEgressForbiddenReal(t *testing.T) {
	ew := newEgressWorld(t)
	ew.createNet("fb", &driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"127.0.0.1", "169.254.169.254", "allowed.test"}})
	server := strings.TrimPrefix(ew.url, "http://") // an httptest server on the host's 127.0.0.1
	for _, target := range []string{"http://" + server + "/healthz", "http://169.254.169.254/", "http://127.0.0.1:80/"} {
		ew.expectFail("fb", "curl -sS -f -m 20 "+target, "")
		ew.expectFail("fb", "curl -sS -f -m 20 --noproxy '' -x http://127.0.0.53:3128 "+target, "")
		ew.expectFail("fb", "curl -sS -f -m 20 --noproxy '' --socks5-hostname 127.0.0.53:3128 "+target, "")
	}
	// Direct connections have no route out.
	ew.expectFail("fb", "curl -sS -f -m 10 --noproxy '*' http://"+ew.allowed.String()+"/", "hello")
	ew.expectOut("fb", "curl -sS -m 20 http://allowed.test/", "hello from allowed.test")
}

func TestEgressNoneReal(t *testing.T) {
	ew := newEgressWorld(t)
	ew.createNet("no", nil)
	ew.expectFail("no", "curl -sS -f -m 10 http://allowed.test/", "hello")
	ew.expectFail("no", "curl -sS -f -m 10 --noproxy '' -x http://127.0.0.53:3128 http://allowed.test/", "hello")
	ew.expectFail("no", "getent hosts allowed.test", "")
	ew.expectOut("no", "getent hosts localhost", "localhost")
}

// TestEgressChangeReal: a policy change takes effect on a running
// sandbox, and closes the tunnels opened under the old one.
func TestEgressChangeReal(t *testing.T) {
	ew := newEgressWorld(t)
	ew.createNet("ch", nil)
	ew.expectFail("ch", "curl -sS -f -m 10 http://allowed.test/", "hello")
	ew.setNetwork("ch", driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"allowed.test"}})
	ew.expectOut("ch", "curl -sS -m 20 http://allowed.test/", "hello from allowed.test")

	p := startProc(t, ew.testEnv, "ch", driver.ProcessRequest{Argv: []string{"curl", "-sS", "-N", "http://allowed.test/stream"}})
	r := p.Output(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := r.Next(ctx); err != nil || !strings.Contains(string(c.Data), "line") {
		t.Fatalf("the tunnel brought %+v, %v; want a line", c, err)
	}
	changed := time.Now()
	ew.setNetwork("ch", driver.NetworkPolicy{Egress: api.EgressNone})
	info, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("the process's tunnel stayed open after the change: %v", err)
	}
	if info.ExitCode == 0 {
		t.Errorf("curl ended %+v, want a failure (its connection cut)", info)
	}
	t.Logf("tunnel closed %v after the change", time.Since(changed).Round(time.Millisecond))
	ew.expectFail("ch", "curl -sS -f -m 10 http://allowed.test/", "hello")
	ew.expectFail("ch", "curl -sS -f -m 10 --noproxy '' -x http://127.0.0.53:3128 http://allowed.test/", "hello")

	// Back to allowlist, then delete: no goroutine of the gateway stays.
	ew.setNetwork("ch", driver.NetworkPolicy{Egress: api.EgressAllowlist, Allow: []string{"allowed.test"}})
	ew.expectOut("ch", "curl -sS -m 20 http://allowed.test/", "hello from allowed.test")
	if err := ew.b.Driver().Delete(context.Background(), "ch"); err != nil {
		t.Fatal(err)
	}
	if g := gatewayGoroutines(); g != "" {
		t.Errorf("gateway goroutines left after the delete:\n%s", g)
	}
}
