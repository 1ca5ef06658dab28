package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeNetworkBackend serves the network.egress extension for sandbox
// "demo" as the contract has it, keeping one policy, and records the
// bodies of creates and policy changes. exts are the extensions its
// /v1/info advertises.
func fakeNetworkBackend(t *testing.T, exts ...string) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var bodies []string
	policy := `{"egress":"none"}`
	keep := func(r *http.Request) string {
		var v any
		_ = json.NewDecoder(r.Body).Decode(&v)
		b, _ := json.Marshal(v) // keys sorted
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+string(b))
		return string(b)
	}
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "backend": map[string]string{"name": "fake", "version": "1"},
			"extensions": exts, "limits": map[string]any{"egressModes": []string{"none", "allowlist", "open"}, "maxEgressRules": 64, "maxEgressConnections": 128}})
		answer(w, 200, string(b))
	})
	mux.HandleFunc("PUT /v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		keep(r)
		answer(w, 200, `{"podName":"p","expiresAt":"2030-01-02T03:04:05Z"}`)
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		answer(w, 200, `{"sessionId":"demo","podName":"p","state":"ready","createdAt":"2030-01-02T03:04:05Z",`+
			`"lastActiveAt":"2030-01-02T03:04:05Z","expiresAt":"2030-01-02T03:04:05Z","ttlSeconds":60,"runningExecs":0,"network":`+policy+`}`)
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/network", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "demo" {
			answer(w, 404, `{"error":"sandbox \"`+r.PathValue("id")+`\" not found"}`)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		answer(w, 200, policy)
	})
	mux.HandleFunc("PUT /v1/sandboxes/{id}/network", func(w http.ResponseWriter, r *http.Request) {
		b := keep(r)
		if strings.Contains(b, "bad host") {
			answer(w, 400, `{"error":"allow[0]: \"bad host\" is not a domain name, a \"*.\" wildcard of one, an IP address or a CIDR prefix"}`)
			return
		}
		mu.Lock()
		policy = b
		mu.Unlock()
		answer(w, 200, b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := bodies
		bodies = nil
		return out
	}
}

// TestNetworkCommands runs create with a policy, nox network, nox network
// set and nox get against a backend with the extension, and checks what
// was sent and printed. Not parallel: see nox.
func TestNetworkCommands(t *testing.T) {
	url, sent := fakeNetworkBackend(t, "info", "sandboxes.get", "network.egress")
	for _, tc := range []struct {
		name string
		args string
		code int
		out  string // in stdout
		err  string // in stderr
		sent []string
	}{
		{"create allowlist, repeated and comma-separated", "create demo --egress allowlist --allow pypi.org,*.pythonhosted.org --allow 192.0.2.7 --deny gist.github.com", 0, "created", "",
			[]string{`PUT /v1/sandboxes/demo {"network":{"allow":["pypi.org","*.pythonhosted.org","192.0.2.7"],"deny":["gist.github.com"],"egress":"allowlist"}}`}},
		{"create open", "create demo --egress open", 0, "created", "", []string{`PUT /v1/sandboxes/demo {"network":{"egress":"open"}}`}},
		{"create without policy", "create demo", 0, "created", "", []string{`PUT /v1/sandboxes/demo {}`}},
		{"create: unknown mode", "create demo --egress all", exitUsage, "", `--egress "all": want none, allowlist or open`, nil},
		{"create: allow without egress", "create demo --allow pypi.org", exitUsage, "", "--allow and --deny need --egress", nil},
		{"show none", "network demo", 0, "egress: none\nallow:  -\ndeny:   -\n", "", nil},
		{"set", "network set demo --egress allowlist --allow pypi.org --deny 10.0.0.0/8,192.0.2.0/24", 0, "egress: allowlist\nallow:  pypi.org\ndeny:   10.0.0.0/8, 192.0.2.0/24\n", "",
			[]string{`PUT /v1/sandboxes/demo/network {"allow":["pypi.org"],"deny":["10.0.0.0/8","192.0.2.0/24"],"egress":"allowlist"}`}},
		{"show", "network demo", 0, "egress: allowlist\nallow:  pypi.org\n", "", nil},
		{"show json", "--json network demo", 0, `"sessionId": "demo"`, "", nil},
		{"get shows the policy", "get demo", 0, "network:     allowlist (allow pypi.org; deny 10.0.0.0/8, 192.0.2.0/24)\n", "", nil},
		{"info shows the limits", "info", 0, "egress:      modes none, allowlist, open; 64 rules a policy, 128 connections a sandbox\n", "", nil},
		{"set: refused entry", "network set demo --egress allowlist --allow 'bad host'", exitError, "", `allow[0]: "bad host" is not a domain name`,
			[]string{`PUT /v1/sandboxes/demo/network {"allow":["bad host"],"egress":"allowlist"}`}},
		{"set: egress required", "network set demo --allow pypi.org", exitUsage, "", "--egress is required", nil},
		{"set none", "network set demo --egress none", 0, "egress: none\n", "", []string{`PUT /v1/sandboxes/demo/network {"egress":"none"}`}},
		{"unknown sandbox", "network nope", exitError, "", `sandbox "nope" not found`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNox(t, tc.code, "", append([]string{"--base-url", url, "--no-color"}, splitArgs(tc.args)...)...)
			if !strings.Contains(r.stdout, tc.out) {
				t.Errorf("stdout = %q, want it to contain %q", r.stdout, tc.out)
			}
			if !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.err)
			}
			if got := sent(); strings.Join(got, "\n") != strings.Join(tc.sent, "\n") {
				t.Errorf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.sent, "\n"))
			}
		})
	}
}

// TestNetworkUnsupported: on a backend without the extension, nox
// network fails naming it, and create with a policy fails before
// sending anything. Not parallel: see nox.
func TestNetworkUnsupported(t *testing.T) {
	url, sent := fakeNetworkBackend(t, "info", "sandboxes.get")
	for _, tc := range []struct {
		args, err string
	}{
		{"network demo", "network.egress"},
		{"network set demo --egress open", "network.egress"},
		{"create demo --egress allowlist --allow pypi.org", "network.egress"},
	} {
		r := mustNox(t, exitError, "", append([]string{"--base-url", url}, splitArgs(tc.args)...)...)
		if !strings.Contains(r.stderr, tc.err) {
			t.Errorf("nox %s: stderr = %q, want it to name %s", tc.args, r.stderr, tc.err)
		}
	}
	if got := sent(); len(got) != 0 {
		t.Errorf("requests sent: %v", got)
	}
	// Mode none asks for nothing the backend lacks.
	mustNox(t, 0, "", "--base-url", url, "create", "demo", "--egress", "none")
	if got := sent(); len(got) != 1 {
		t.Errorf("create --egress none sent %v", got)
	}
}
