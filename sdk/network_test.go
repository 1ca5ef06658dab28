package sdk

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var networkExts = []string{ExtInfo, ExtSandboxesGet, ExtNetworkEgress}

// networkServer is a procServer with the network endpoints: it keeps one
// policy, answered as a backend would, and records the request bodies.
func networkServer(t *testing.T, exts []string) (*procServer, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var bodies []string
	policy := `{"egress":"none"}`
	keep := func(r *http.Request) string {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, string(b))
		return string(b)
	}
	ps := newProcServer(t, exts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/network": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") != "demo" {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": `sandbox "` + r.PathValue("id") + `" not found`})
				return
			}
			mu.Lock()
			defer mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, policy)
		},
		"PUT /v1/sandboxes/{id}/network": func(w http.ResponseWriter, r *http.Request) {
			b := keep(r)
			if strings.Contains(b, "bad host") {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": `allow[0]: "bad host" is not a domain name`})
				return
			}
			mu.Lock()
			policy = b
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, b)
		},
		"PUT /v1/sandboxes/{id}": func(w http.ResponseWriter, r *http.Request) {
			keep(r)
			writeJSON(w, http.StatusOK, map[string]any{"podName": "p", "expiresAt": "2030-01-02T03:04:05Z"})
		},
		"GET /v1/sandboxes/{id}": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"sessionId":"demo","podName":"p","state":"ready","createdAt":"2030-01-02T03:04:05Z",`+
				`"lastActiveAt":"2030-01-02T03:04:05Z","expiresAt":"2030-01-02T03:04:05Z","ttlSeconds":60,`+
				`"network":{"allow":["pypi.org"],"egress":"allowlist"}}`)
		},
	})
	ps.limits["egressModes"] = []string{"none", "allowlist"}
	ps.limits["maxEgressRules"] = 64
	ps.limits["maxEgressConnections"] = 128
	return ps, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), bodies...)
	}
}

func TestNetworkCalls(t *testing.T) {
	t.Parallel()
	ps, bodies := networkServer(t, networkExts)
	ctx := context.Background()
	sb := ps.client().Sandbox("demo")

	got, err := sb.Network(ctx)
	assertNoErr(t, err)
	if !reflect.DeepEqual(got, NetworkPolicy{Egress: EgressNone}) {
		t.Errorf("Network = %+v, want mode none", got)
	}
	want := NetworkPolicy{Egress: EgressAllowlist, Allow: []string{"pypi.org", "*.pythonhosted.org"}, Deny: []string{"192.0.2.0/24"}}
	got, err = sb.SetNetwork(ctx, want)
	assertNoErr(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SetNetwork = %+v, want %+v", got, want)
	}
	got, err = sb.Network(ctx)
	assertNoErr(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Network after SetNetwork = %+v, want %+v", got, want)
	}
	// The zero policy is sent as {}: mode none, empty lists.
	got, err = sb.SetNetwork(ctx, NetworkPolicy{})
	assertNoErr(t, err)
	assertEq(t, "mode after SetNetwork({})", got.Egress, EgressNone)
	assertEq(t, "PUT bodies", strings.Join(bodies(), " "),
		`{"allow":["pypi.org","*.pythonhosted.org"],"deny":["192.0.2.0/24"],"egress":"allowlist"} {}`)

	_, err = sb.SetNetwork(ctx, NetworkPolicy{Egress: EgressAllowlist, Allow: []string{"bad host"}})
	assertIs(t, err, ErrInvalidArgument)
	if err == nil || !strings.Contains(err.Error(), "allow[0]") {
		t.Errorf("error %v does not name allow[0]", err)
	}
	_, err = ps.client().Sandbox("nope").Network(ctx)
	assertIs(t, err, ErrNotFound)

	st, err := sb.Get(ctx)
	assertNoErr(t, err)
	if st.Network == nil || !reflect.DeepEqual(*st.Network, NetworkPolicy{Egress: EgressAllowlist, Allow: []string{"pypi.org"}}) {
		t.Errorf("status network = %+v", st.Network)
	}
	info, err := ps.client().Info(ctx)
	assertNoErr(t, err)
	l := info.Limits
	if !reflect.DeepEqual(l.EgressModes, []EgressMode{EgressNone, EgressAllowlist}) || l.MaxEgressRules != 64 || l.MaxEgressConnections != 128 {
		t.Errorf("limits = %+v", l)
	}
}

func TestCreateNetwork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	allow := &NetworkPolicy{Egress: EgressAllowlist, Allow: []string{"pypi.org"}}
	for _, tc := range []struct {
		name     string
		exts     []string
		network  *NetworkPolicy
		wantErr  error
		wantBody string // "" when no request is sent
	}{
		{"no policy", []string{ExtInfo}, nil, nil, `{}`},
		{"allowlist", networkExts, allow, nil, `{"network":{"allow":["pypi.org"],"egress":"allowlist"}}`},
		{"open", networkExts, &NetworkPolicy{Egress: EgressOpen}, nil, `{"network":{"egress":"open"}}`},
		{"allowlist, unsupported", []string{ExtInfo}, allow, ErrUnsupported, ""},
		{"open, plain v1", nil, &NetworkPolicy{Egress: EgressOpen}, ErrUnsupported, ""},
		{"none, unsupported: sent, ignored", []string{ExtInfo}, &NetworkPolicy{Egress: EgressNone}, nil, `{"network":{"egress":"none"}}`},
		{"zero, unsupported", []string{ExtInfo}, &NetworkPolicy{}, nil, `{"network":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps, bodies := networkServer(t, tc.exts)
			if tc.exts == nil {
				ps.mux = http.NewServeMux() // no GET /v1/info
				ps.mux.HandleFunc("PUT /v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
					t.Errorf("the create was sent")
				})
			}
			_, err := ps.client().Create(ctx, "demo", CreateOptions{Network: tc.network})
			if tc.wantErr != nil {
				assertIs(t, err, tc.wantErr)
				if !strings.Contains(err.Error(), "network") {
					t.Errorf("error %q does not name the network extension", err)
				}
			} else {
				assertNoErr(t, err)
			}
			got := strings.Join(bodies(), " ")
			assertEq(t, "create body", strings.TrimSpace(got), tc.wantBody)
		})
	}
}

func TestNetworkUnsupported(t *testing.T) {
	t.Parallel()
	ps, _ := networkServer(t, []string{ExtInfo, ExtSandboxesGet})
	ctx := context.Background()
	sb := ps.client().Sandbox("demo")
	_, err := sb.Network(ctx)
	assertIs(t, err, ErrUnsupported)
	_, err = sb.SetNetwork(ctx, NetworkPolicy{Egress: EgressOpen})
	assertIs(t, err, ErrUnsupported)
	if reqs := ps.requests(); len(reqs) != 0 {
		t.Errorf("requests sent to a backend without the extension: %v", reqs)
	}
}
