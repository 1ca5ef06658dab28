package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// portsBackend is the reference backend with driver.Ports: DialPort
// dials the host's loopback, where the tests run the "server inside the
// sandbox".
type portsBackend struct{ *membackend.Backend }

func (b portsBackend) Info() driver.Info {
	i := b.Backend.Info()
	i.Extensions = append(slices.Clone(i.Extensions), api.ExtPorts)
	i.Limits.MaxPreviewTTL = 24 * time.Hour
	return i
}

func (b portsBackend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if _, err := b.Get(ctx, id); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("port %d: nothing listens: %w", port, driver.ErrUnreachable)
	}
	return c, nil
}

// portsEnv is a server of portsBackend with sandbox a.
type portsEnv struct {
	t     *testing.T
	url   string
	token string
}

func setupPorts(t *testing.T, token string) *portsEnv {
	t.Helper()
	return setupPortsOpts(t, server.Options{Token: token})
}

// setupPortsOpts is setupPorts with options (the logger is discarded).
func setupPortsOpts(t *testing.T, opts server.Options) *portsEnv {
	t.Helper()
	token := opts.Token
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := membackend.New(membackend.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(portsBackend{b}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &portsEnv{t: t, url: srv.URL, token: token}
	if resp, body := e.send("PUT", "/v1/sandboxes/a", strings.NewReader("{}"), nil); resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return e
}

// send makes a request with the token (when the env has one) and hdr.
func (e *portsEnv) send(method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

// upstream runs h on loopback and returns its port.
func upstream(t *testing.T, h http.Handler) int {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	n, _ := strconv.Atoi(port)
	return n
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// seen is what the upstream echo handler reports of a request.
type seen struct {
	Method, Path, RawPath, Query, Host, Body string
	Header                                   http.Header
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Upstream", "yes")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTeapot)
	_ = json.NewEncoder(w).Encode(seen{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host, Body: string(body), Header: r.Header})
}

func TestProxyPortForwards(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	prefix := fmt.Sprintf("/v1/sandboxes/a/ports/%d", port)
	tests := []struct {
		name, method, path, body string
		want                     seen
	}{
		{"get root", "GET", "/", "", seen{Method: "GET", Path: "/"}},
		{"post body query", "POST", "/api/v1/items?x=1&y=a%20b", "hello", seen{Method: "POST", Path: "/api/v1/items", Query: "x=1&y=a%20b", Body: "hello"}},
		{"slashes", "PUT", "/a/b/c/", "", seen{Method: "PUT", Path: "/a/b/c/"}},
		{"escaped slash", "DELETE", "/a%2Fb/c", "", seen{Method: "DELETE", Path: "/a/b/c", RawPath: "/a%2Fb/c"}},
		{"access_token stripped", "GET", "/q?access_token=secret&k=v", "", seen{Method: "GET", Path: "/q", Query: "k=v"}},
		{"patch", "PATCH", "/p", "{}", seen{Method: "PATCH", Path: "/p", Body: "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp, data := e.send(tt.method, prefix+tt.path, body, map[string]string{"X-Custom": "c1", "Content-Type": "text/plain"})
			if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Upstream") != "yes" {
				t.Fatalf("status %d, headers %v: %s", resp.StatusCode, resp.Header, data)
			}
			var got seen
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.want.Method || got.Path != tt.want.Path || got.RawPath != tt.want.RawPath || got.Query != tt.want.Query || got.Body != tt.want.Body {
				t.Errorf("upstream saw %+v, want %+v", got, tt.want)
			}
			if got.Host != fmt.Sprintf("127.0.0.1:%d", port) {
				t.Errorf("Host %q", got.Host)
			}
			h := got.Header
			if h.Get("Authorization") != "" {
				t.Errorf("Authorization forwarded: %q", h.Get("Authorization"))
			}
			if h.Get("X-Custom") != "c1" {
				t.Errorf("X-Custom %q", h.Get("X-Custom"))
			}
			if h.Get("X-Forwarded-For") == "" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != strings.TrimPrefix(e.url, "http://") || h.Get("X-Forwarded-Prefix") != prefix {
				t.Errorf("X-Forwarded-*: %v", h)
			}
		})
	}
}

func TestProxyPortErrors(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	free := freePort(t)
	tests := []struct {
		name, path string
		status     int
		msg        string
	}{
		{"nothing listens", fmt.Sprintf("/v1/sandboxes/a/ports/%d/", free), 502, strconv.Itoa(free)},
		{"port zero", "/v1/sandboxes/a/ports/0/", 400, "port"},
		{"port too big", "/v1/sandboxes/a/ports/65536/x", 400, "port"},
		{"port not a number", "/v1/sandboxes/a/ports/http/x", 400, "port"},
		{"port leading zero", "/v1/sandboxes/a/ports/080/x", 400, "port"},
		{"bad session", "/v1/sandboxes/-x/ports/80/", 400, "sessionId"},
		{"unknown sandbox", fmt.Sprintf("/v1/sandboxes/zz/ports/%d/", port), 404, "not found"},
		{"tunnel not websocket", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d", port), 426, "WebSocket"},
		{"tunnel bad port", "/v1/sandboxes/a/tunnel/0", 400, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := e.send("GET", tt.path, nil, nil)
			var body noxapi.Error
			if resp.StatusCode != tt.status || json.Unmarshal(data, &body) != nil || !strings.Contains(body.Error, tt.msg) {
				t.Fatalf("got %d %s, want %d naming %q", resp.StatusCode, data, tt.status, tt.msg)
			}
		})
	}
}

func TestProxyPortNeedsToken(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	e.token = ""
	for _, path := range []string{fmt.Sprintf("/v1/sandboxes/a/ports/%d/", port), fmt.Sprintf("/v1/sandboxes/a/ports/%d/x?access_token=secret", port)} {
		if resp, data := e.send("GET", path, nil, nil); resp.StatusCode != 401 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, data)
		}
	}
}

func TestProxyPortBrowserGuard(t *testing.T) {
	e := setupPorts(t, "")
	port := upstream(t, http.HandlerFunc(echoHandler))
	resp, data := e.send("GET", fmt.Sprintf("/v1/sandboxes/a/ports/%d/", port), nil, map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != 403 {
		t.Fatalf("cross-origin: %d %s", resp.StatusCode, data)
	}
}

func TestProxyPortStreamsEvents(t *testing.T) {
	e := setupPorts(t, "secret")
	next := make(chan struct{})
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/sandboxes/a/ports/%d/events", e.url, port), nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	for i := range 3 {
		// Each event arrives before the upstream writes the next one.
		line, err := rd.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = rd.ReadString('\n')
		next <- struct{}{}
	}
}

func TestProxyPortWebSocket(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/v1/sandboxes/a/ports/%d/ws", strings.TrimPrefix(e.url, "http"), port), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, m := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo:"+m {
			t.Fatalf("got %q %v", got, err)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// tcpEcho runs a raw TCP echo server on loopback and returns its port.
func tcpEcho(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestOpenTunnel(t *testing.T) {
	e := setupPorts(t, "secret")
	port := tcpEcho(t)
	wsURL := "ws" + strings.TrimPrefix(e.url, "http")
	tests := []struct {
		name string
		path string
		opts *websocket.DialOptions
	}{
		{"header token", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d", port), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer secret"}}}},
		{"access_token", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d?access_token=secret", port), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, wsURL+tt.path, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
			defer nc.Close()
			payload := []byte{0, 1, 2, 0xff, '\n', 'x'}
			if _, err := nc.Write(payload); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(nc, got); err != nil || string(got) != string(payload) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
}

func TestOpenTunnelRefusals(t *testing.T) {
	e := setupPorts(t, "secret")
	free := freePort(t)
	port := tcpEcho(t)
	wsURL := "ws" + strings.TrimPrefix(e.url, "http")
	tests := []struct {
		name   string
		path   string
		hdr    http.Header
		status int
	}{
		{"nothing listens", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d", free), http.Header{"Authorization": {"Bearer secret"}}, 502},
		{"unknown sandbox", fmt.Sprintf("/v1/sandboxes/zz/tunnel/%d", port), http.Header{"Authorization": {"Bearer secret"}}, 404},
		{"no token", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d", port), nil, 401},
		{"wrong access_token", fmt.Sprintf("/v1/sandboxes/a/tunnel/%d?access_token=nope", port), nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, wsURL+tt.path, &websocket.DialOptions{HTTPHeader: tt.hdr})
			if err == nil || resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("got %v %v, want %d", resp, err, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestPortsAdvertised(t *testing.T) {
	e := setupPorts(t, "")
	resp, data := e.send("GET", "/v1/info", nil, nil)
	var info noxapi.Info
	if err := json.Unmarshal(data, &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	if !slices.Contains(info.Extensions, api.ExtPorts) || info.Limits.MaxPreviewTTLSeconds == nil || *info.Limits.MaxPreviewTTLSeconds != 86400 {
		t.Fatalf("info: %s", data)
	}
}

func TestPortsAbsentWithoutDriver(t *testing.T) {
	e := setupMemWith(t, membackend.Config{Extensions: []string{api.ExtSandboxesGet, api.ExtSandboxesList}})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1/sandboxes/a/ports/8000/x/y"},
		{"GET", "/v1/sandboxes/a/tunnel/8000"},
		{"POST", "/v1/sandboxes/a/previews"},
	} {
		if resp, data := e.do(tt.method, tt.path, map[string]any{"port": 8000}); resp.StatusCode != 404 {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, resp.StatusCode, data)
		}
	}
}

// A response or a tunnel that outlasts the stall timeout is not cut: the
// deadline follows progress, and an idle tunnel has none.
func TestPortsOutlastStallTimeout(t *testing.T) {
	const stall = time.Second
	e := setupPortsOpts(t, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond})
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(stall / 4)
		}
	}))
	start := time.Now()
	resp, data := e.send("GET", fmt.Sprintf("/v1/sandboxes/a/ports/%d/slow", port), nil, nil)
	t.Logf("streamed for %s", time.Since(start))
	if resp.StatusCode != 200 || !strings.HasSuffix(string(data), "chunk 7\n") {
		t.Fatalf("%d %q", resp.StatusCode, data)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/v1/sandboxes/a/tunnel/%d", strings.TrimPrefix(e.url, "http"), tcpEcho(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
	defer nc.Close()
	for i := range 2 {
		if i > 0 {
			time.Sleep(stall + stall/2) // idle past the stall timeout
		}
		if _, err := nc.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != "ping" {
			t.Fatalf("round %d: %q %v", i, got, err)
		}
	}
}

// Closing the WebSocket closes the TCP connection in the sandbox.
func TestOpenTunnelClosePropagates(t *testing.T) {
	e := setupPorts(t, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ended := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ended <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		ended <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/v1/sandboxes/a/tunnel/%d", strings.TrimPrefix(e.url, "http"), l.Addr().(*net.TCPAddr).Port), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("upstream read: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the TCP connection stayed open after the WebSocket closed")
	}
}

// The TCP connection closing in the sandbox closes the WebSocket.
func TestOpenTunnelUpstreamClosePropagates(t *testing.T) {
	e := setupPorts(t, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = c.Write([]byte("bye"))
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/v1/sandboxes/a/tunnel/%d", strings.TrimPrefix(e.url, "http"), l.Addr().(*net.TCPAddr).Port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	got, err := io.ReadAll(websocket.NetConn(ctx, c, websocket.MessageBinary))
	if string(got) != "bye" || err != nil || ctx.Err() != nil {
		t.Fatalf("read %q, %v (the WebSocket must end with the TCP connection)", got, err)
	}
}
