package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var portsExts = []string{ExtInfo, ExtPorts}

// tunnelEcho is an openTunnel handler that checks the token and echoes
// the binary messages it reads, as a tunnel to an echo server would.
func tunnelEcho(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("tunnel Authorization = %q, want the client's token", got)
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		c := websocket.NetConn(r.Context(), ws, websocket.MessageBinary)
		defer c.Close()
		_, _ = io.Copy(c, c)
	}
}

func TestDialTunnel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		inProcess bool
	}{{"socket", false}, {"handler", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := newProcServer(t, portsExts, map[string]http.HandlerFunc{
				"GET /v1/sandboxes/demo/tunnel/8000": tunnelEcho(t),
			})
			c := ps.client(WithToken("tok"))
			if tc.inProcess {
				c = ps.inProcess(WithToken("tok"))
			}
			ctx, cancel := context.WithCancel(context.Background())
			conn, err := c.Sandbox("demo").Dial(ctx, 8000)
			assertNoErr(t, err)
			cancel() // ctx bounds the dial only
			defer conn.Close()
			payload := strings.Repeat("ping\x00\xff", 50_000) // several messages
			go func() { _, _ = io.WriteString(conn, payload) }()
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if string(got) != payload {
				t.Fatalf("echo differs from what was written")
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	unreachable := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, `{"error":"port 8000: nothing is listening in the sandbox"}`)
	}
	for _, tc := range []struct {
		name    string
		exts    []string
		port    int
		want    error
		msg     string
		noCalls bool
	}{
		{name: "unreachable", exts: portsExts, port: 8000, want: ErrUnavailable, msg: "port 8000: nothing is listening"},
		{name: "not advertised", exts: []string{ExtInfo}, port: 8000, want: ErrUnsupported, noCalls: true},
		{name: "port zero", exts: portsExts, port: 0, want: ErrInvalidArgument, msg: "port: 0", noCalls: true},
		{name: "port too big", exts: portsExts, port: 70000, want: ErrInvalidArgument, msg: "port: 70000", noCalls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := newProcServer(t, tc.exts, map[string]http.HandlerFunc{
				"GET /v1/sandboxes/demo/tunnel/8000": unreachable,
			})
			_, err := ps.client().Sandbox("demo").Dial(context.Background(), tc.port)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Dial error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Dial error %q does not say %q", err, tc.msg)
			}
			if got := ps.requests(); tc.noCalls && len(got) != 0 {
				t.Errorf("requests = %v, want none", got)
			}
		})
	}
}

func TestPreview(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		wantTTL any // the ttlSeconds sent; nil: left out
	}{
		{"default", 0, nil},
		{"hour", time.Hour, float64(3600)},
		{"rounded up", 1500 * time.Millisecond, float64(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := newProcServer(t, portsExts, map[string]http.HandlerFunc{
				"POST /v1/sandboxes/demo/previews": func(w http.ResponseWriter, r *http.Request) {
					var body map[string]any
					if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
						t.Errorf("decoding the request: %v", err)
					}
					if body["port"] != float64(8000) || body["ttlSeconds"] != tc.wantTTL {
						t.Errorf("request = %v, want port 8000 and ttlSeconds %v", body, tc.wantTTL)
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"url":"http://x/preview/abc/","expiresAt":"2030-01-02T03:04:05Z"}`)
				},
			})
			p, err := ps.client().Sandbox("demo").Preview(context.Background(), 8000, tc.ttl)
			assertNoErr(t, err)
			want := Preview{URL: "http://x/preview/abc/", ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			if p.URL != want.URL || !p.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("Preview = %+v, want %+v", *p, want)
			}
		})
	}
}

func TestPreviewErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		exts []string
		port int
		ttl  time.Duration
		want error
	}{
		{"not advertised", []string{ExtInfo}, 8000, 0, ErrUnsupported},
		{"negative ttl", portsExts, 8000, -time.Second, ErrInvalidArgument},
		{"bad port", portsExts, -1, 0, ErrInvalidArgument},
		{"ttl too long", portsExts, 8000, time.Duration(1<<62) * time.Nanosecond, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := newProcServer(t, tc.exts, nil)
			_, err := ps.client().Sandbox("demo").Preview(context.Background(), tc.port, tc.ttl)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Preview error = %v, want %v", err, tc.want)
			}
			if got := ps.requests(); len(got) != 0 {
				t.Errorf("requests = %v, want none", got)
			}
		})
	}
}

func TestPortURL(t *testing.T) {
	t.Parallel()
	c, err := New("http://h:1/prefix/")
	assertNoErr(t, err)
	if got, want := c.Sandbox("a b").PortURL(8000), "http://h:1/prefix/v1/sandboxes/a%20b/ports/8000/"; got != want {
		t.Errorf("PortURL = %q, want %q", got, want)
	}
}

func TestPortClient(t *testing.T) {
	t.Parallel()
	// other is a server elsewhere, which must never see the token.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("a request to another host carried Authorization %q", a)
		}
		_, _ = io.WriteString(w, "elsewhere")
	}))
	t.Cleanup(other.Close)
	ps := newProcServer(t, portsExts, map[string]http.HandlerFunc{
		"/v1/sandboxes/demo/ports/8000/{path...}": func(w http.ResponseWriter, r *http.Request) {
			if a := r.Header.Get("Authorization"); a != "Bearer tok" {
				t.Errorf("proxy request Authorization = %q, want the token", a)
			}
			if r.URL.Query().Get("to") == "other" {
				http.Redirect(w, r, other.URL, http.StatusFound)
				return
			}
			_, _ = io.WriteString(w, r.Method+" /"+r.PathValue("path")+"?"+r.URL.RawQuery)
		},
	})
	c := ps.client(WithToken("tok"))
	sb := c.Sandbox("demo")
	hc := sb.PortClient(8000)
	for _, tc := range []struct {
		name, method, url, want string
	}{
		{"relative", "GET", "/api/items?x=1", "GET /api/items?x=1"},
		{"relative root", "POST", "/", "POST /?"},
		{"no slash", "GET", "health", "GET /health?"},
		{"absolute", "PUT", sb.PortURL(8000) + "a%2Fb", "PUT /a/b?"},
		{"redirect elsewhere", "GET", "/?to=other", "elsewhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(context.Background(), tc.method, tc.url, nil)
			assertNoErr(t, err)
			resp, err := hc.Do(req)
			assertNoErr(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Errorf("%s %s answered %q, want %q", tc.method, tc.url, body, tc.want)
			}
		})
	}
}
