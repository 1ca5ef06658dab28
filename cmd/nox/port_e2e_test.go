package main

import (
	"context"
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

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/sdk"
	"github.com/noxrunner/nox/server"
)

// loopbackPorts is the reference backend with driver.Ports: DialPort
// dials the host's loopback, where the tests run the "server inside the
// sandbox".
type loopbackPorts struct{ *membackend.Backend }

func (b loopbackPorts) Info() driver.Info {
	i := b.Backend.Info()
	i.Extensions = append(slices.Clone(i.Extensions), api.ExtPorts)
	return i
}

func (b loopbackPorts) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if _, err := b.Get(ctx, id); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("port %d: nothing is listening: %w", port, driver.ErrUnreachable)
	}
	return c, nil
}

// servePorts serves loopbackPorts with the server package and token, with
// sandbox "demo", and returns its URL. It skips the test while the
// server's ports handlers are not written (they answer 404).
func servePorts(t *testing.T, token string) string {
	t.Helper()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(loopbackPorts{b}, server.Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := sdk.New(srv.URL, sdk.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	sb := c.Sandbox("demo")
	if _, err := sb.Create(t.Context(), sdk.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// TestPortsEndToEnd runs port-forward and preview, and the SDK's
// PortClient, against the server package and the reference backend.
func TestPortsEndToEnd(t *testing.T) {
	const token = "s3cret"
	base := servePorts(t, token)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("the sandbox's server got Authorization %q", a)
		}
		fmt.Fprintf(w, "hello %s", r.URL)
	}))
	t.Cleanup(app.Close)
	appPort := port(t, app.URL)

	t.Setenv("NOXRUNNER_TOKEN", token)
	addrs, _ := startForward(t, base, ":"+appPort)
	resp, err := http.Get("http://" + addrs[0] + "/fwd?q=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello /fwd?q=1" {
		t.Errorf("through port-forward: %q", body)
	}

	r := mustNox(t, 0, "", "--base-url", base, "preview", "demo", appPort, "--ttl", "10m")
	url := strings.TrimSpace(r.stdout)
	resp, err = http.Get(url + "pv?x=2") // no token
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello /pv?x=2" {
		t.Errorf("GET %spv?x=2 = %d %q", url, resp.StatusCode, body)
	}

	c, err := sdk.New(base, sdk.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(appPort)
	resp, err = c.Sandbox("demo").PortClient(n).Get("/sdk?y=3")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello /sdk?y=3" {
		t.Errorf("through PortClient: %d %q", resp.StatusCode, body)
	}
}
