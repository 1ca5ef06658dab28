package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// fakePortsBackend serves the ports extension as the contract has it,
// dialling 127.0.0.1:port itself as membackend does: a server on
// loopback stands for a server inside sandbox "demo". exts are the
// extensions its /v1/info advertises.
func fakePortsBackend(t *testing.T, exts ...string) string {
	t.Helper()
	mux := http.NewServeMux()
	writeErr := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1",
			"backend": map[string]string{"name": "fake", "version": "1"}, "extensions": exts})
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/tunnel/{port}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "demo" {
			writeErr(w, http.StatusNotFound, "sandbox not found")
			return
		}
		port := r.PathValue("port")
		tcp, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			writeErr(w, http.StatusBadGateway, "port "+port+": nothing is listening in the sandbox")
			return
		}
		defer tcp.Close()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := websocket.NetConn(r.Context(), ws, websocket.MessageBinary)
		defer c.Close()
		go func() { _, _ = io.Copy(tcp, c); _ = tcp.Close() }()
		_, _ = io.Copy(c, tcp)
	})
	mux.HandleFunc("POST /v1/sandboxes/{id}/previews", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Port       int `json:"port"`
			TTLSeconds int `json:"ttlSeconds"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"url":"http://%s/preview/p%d-t%d/","expiresAt":"2030-01-02T03:04:05Z"}`, r.Host, req.Port, req.TTLSeconds)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestParseForwardSpec(t *testing.T) {
	for _, tc := range []struct {
		in, listen string
		port       int
		err        string
	}{
		{in: "8000", listen: "127.0.0.1:8000", port: 8000},
		{in: "9000:80", listen: "127.0.0.1:9000", port: 80},
		{in: ":80", listen: "127.0.0.1:0", port: 80},
		{in: "0:80", listen: "127.0.0.1:0", port: 80},
		{in: "0.0.0.0:8080:80", listen: "0.0.0.0:8080", port: 80},
		{in: "localhost:8080:80", listen: "localhost:8080", port: 80},
		{in: "[::1]:8080:80", listen: "[::1]:8080", port: 80},
		{in: "0", err: "the sandbox's port: 0 is not between"},
		{in: "80:", err: `the sandbox's port: "" is not a number`},
		{in: "x:80", err: `the local port: "x" is not a number`},
		{in: "70000:80", err: "the local port: 70000 is not between"},
		{in: ":8080:80", err: "empty local address"},
		{in: "::1:8080:80", err: "too many colons"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseForwardSpec(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseForwardSpec(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != (forwardSpec{listen: tc.listen, port: tc.port}) {
				t.Fatalf("parseForwardSpec(%q) = %+v, %v; want listen %s port %d", tc.in, got, err, tc.listen, tc.port)
			}
		})
	}
}

// startForward runs nox port-forward in process until the test ends
// (then checks that Ctrl-C ends it with 0) and returns the local
// addresses it printed, in order, and its stderr.
func startForward(t *testing.T, baseURL string, specs ...string) ([]string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		args := append([]string{"nox", "--base-url", baseURL, "port-forward", "demo"}, specs...)
		code <- run(ctx, args, strings.NewReader(""), pw, stderr)
		_ = pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("port-forward exited %d after Ctrl-C, want 0; stderr: %s", c, stderr.String())
		}
	})
	line := regexp.MustCompile(`^Forwarding from (\S+) -> \d+\n$`)
	out := bufio.NewReader(pr)
	var addrs []string
	for range specs {
		l, err := out.ReadString('\n')
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("port-forward printed %q (%v), want %s; stderr: %s", l, err, line, stderr.String())
		}
		addrs = append(addrs, m[1])
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return addrs, stderr
}

// TestPortForward forwards two local ports to two servers "inside the
// sandbox", and a third to a port where nothing listens: its connections
// fail on their own and the others go on.
func TestPortForward(t *testing.T) {
	base := fakePortsBackend(t, "info", "ports")
	var servers []*httptest.Server
	for i := range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "server %d: %s %s", i, r.Method, r.URL)
		}))
		t.Cleanup(srv.Close)
		servers = append(servers, srv)
	}
	deadPort := freePort(t)
	specs := []string{":" + port(t, servers[0].URL), ":" + port(t, servers[1].URL), ":" + deadPort}
	addrs, stderr := startForward(t, base, specs...)

	// A fresh transport per request: every request opens a connection.
	get := func(addr, path string) (string, error) {
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if _, err := get(addrs[2], "/"); err == nil {
		t.Errorf("a request through the forward to port %s, where nothing listens, succeeded", deadPort)
	}
	for round := range 3 {
		for i, addr := range addrs[:2] {
			got, err := get(addr, fmt.Sprintf("/r%d?x=1", round))
			if want := fmt.Sprintf("server %d: GET /r%d?x=1", i, round); err != nil || got != want {
				t.Errorf("GET through %s = %q, %v; want %q", addr, got, err, want)
			}
		}
	}
	// The failed connection is reported, naming the port, and not fatal.
	if want := "to port " + deadPort + ": "; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want a line saying %q", stderr.String(), want)
	}
	if !strings.Contains(stderr.String(), "nothing is listening") {
		t.Errorf("stderr = %q, want the backend's reason", stderr.String())
	}
}

// TestPortForwardLongStream checks that a forwarded connection carries
// a large body both ways intact (several WebSocket messages).
func TestPortForwardLongStream(t *testing.T) {
	base := fakePortsBackend(t, "info", "ports")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	addrs, _ := startForward(t, base, "0:"+port(t, srv.URL))
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	resp, err := http.Post("http://"+addrs[0]+"/echo", "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != body {
		t.Fatalf("echo through the forward: %d bytes, %v; want the %d bytes sent", len(got), err, len(body))
	}
}

func TestPortForwardErrors(t *testing.T) {
	ports := fakePortsBackend(t, "info", "ports")
	noPorts := fakePortsBackend(t, "info")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no port", []string{"--base-url", ports, "port-forward", "demo"}, exitUsage, "want a sandbox ID and at least one port"},
		{"bad spec", []string{"--base-url", ports, "port-forward", "demo", "1:2:3:4"}, exitUsage, "too many colons"},
		{"unsupported", []string{"--base-url", noPorts, "port-forward", "demo", ":80"}, exitError, "extension ports"},
		{"port in use", []string{"--base-url", ports, "port-forward", "demo", port(t, ports) + ":80"}, exitError, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNox(t, tc.code, "", tc.args...)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.want)
			}
		})
	}
}

func TestPreviewCommand(t *testing.T) {
	ports := fakePortsBackend(t, "info", "ports")
	noPorts := fakePortsBackend(t, "info")
	host := strings.TrimPrefix(ports, "http://")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // stdout
		err  string // in stderr
	}{
		{"default ttl", []string{"--base-url", ports, "preview", "demo", "8000"}, 0, "http://" + host + "/preview/p8000-t0/\n", ""},
		{"ttl", []string{"--base-url", ports, "preview", "demo", "8000", "--ttl", "15m"}, 0, "http://" + host + "/preview/p8000-t900/\n", ""},
		{"json", []string{"--base-url", ports, "--json", "preview", "demo", "8000", "--ttl", "60"}, 0,
			`{"sessionId":"demo","expiresAt":"2030-01-02T03:04:05Z","port":8000,"url":"http://` + host + `/preview/p8000-t60/"}`, ""},
		{"bad port", []string{"--base-url", ports, "preview", "demo", "0"}, exitUsage, "", "PORT: 0 is not between 1 and 65535"},
		{"fractional ttl", []string{"--base-url", ports, "preview", "demo", "80", "--ttl", "1.5s"}, exitUsage, "", "whole seconds"},
		{"local", []string{"--local", "preview", "demo", "80"}, exitError, "", "nox serve"},
		{"unsupported", []string{"--base-url", noPorts, "preview", "demo", "80"}, exitError, "", "extension ports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNox(t, tc.code, "", tc.args...)
			if strings.HasPrefix(tc.out, "{") {
				var got, want any
				if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
					t.Fatalf("stdout is not JSON: %v", err)
				}
				_ = json.Unmarshal([]byte(tc.out), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("stdout = %s, want %s", r.stdout, tc.out)
				}
			} else if r.stdout != tc.out {
				t.Errorf("stdout = %q, want %q", r.stdout, tc.out)
			}
			if !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.err)
			}
		})
	}
}

// port returns the port of a URL's host.
func port(t *testing.T, rawURL string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a loopback port where nothing listens (it did a moment
// ago).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	return p
}
