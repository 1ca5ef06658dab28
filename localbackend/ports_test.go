package localbackend

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

func TestHasNetworkNamespace(t *testing.T) {
	for _, tc := range []struct {
		tier sandbox.Tier
		want bool
	}{
		{sandbox.TierNamespaces, true}, {sandbox.TierRootNamespaces, true},
		{sandbox.TierLandlock, false}, {sandbox.TierNoneUnsafe, false}, {"fake", false},
	} {
		if got := hasNetworkNamespace(tc.tier); got != tc.want {
			t.Errorf("hasNetworkNamespace(%s) = %v, want %v", tc.tier, got, tc.want)
		}
	}
}

// TestDialPortFake covers what needs no real sandbox: unknown sandboxes,
// a stopped environment (not started again), a runtime that cannot
// dial, the limit and the extension list.
func TestDialPortFake(t *testing.T) {
	e := setup(t, func(c *Config) { c.MaxPreviewTTL = 2 * time.Hour })
	d := driverBackend{e.b}
	info := d.Info()
	if slices.Contains(info.Extensions, api.ExtPorts) {
		t.Errorf("extensions %v list %s in a tier without a network namespace", info.Extensions, api.ExtPorts)
	}
	if info.Limits.MaxPreviewTTL != 2*time.Hour {
		t.Errorf("MaxPreviewTTL %v, want 2h", info.Limits.MaxPreviewTTL)
	}
	e.create("fk", nil)
	ctx := context.Background()
	if _, err := d.DialPort(ctx, "nope", 8000); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("unknown sandbox: %v, want ErrNotFound", err)
	}
	if _, err := d.DialPort(ctx, "fk", 8000); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("runtime without DialPort: %v, want ErrUnavailable", err)
	}
	e.rt.mu.Lock()
	env := e.rt.envs[0]
	e.rt.mu.Unlock()
	_ = env.Stop()
	starts := e.rt.starts.Load()
	_, err := d.DialPort(ctx, "fk", 8000)
	if !errors.Is(err, driver.ErrUnreachable) || !strings.Contains(err.Error(), "not running") {
		t.Errorf("stopped sandbox: %v, want ErrUnreachable (not running)", err)
	}
	if n := e.rt.starts.Load(); n != starts {
		t.Errorf("DialPort started the sandbox's environment (%d starts, was %d)", n, starts)
	}
	// The failed dials released the sandbox: it can still be deleted and
	// reaped (busy back to zero).
	e.b.store.mu.Lock()
	busy := e.b.store.boxes["fk"].busy
	e.b.store.mu.Unlock()
	if busy != 0 {
		t.Errorf("busy %d after failed dials, want 0", busy)
	}
}

func TestDefaultMaxPreviewTTL(t *testing.T) {
	if got := DefaultConfig().MaxPreviewTTL; got != 24*time.Hour {
		t.Errorf("default MaxPreviewTTL %v, want 24h", got)
	}
	c := testConfig(t)
	c.MaxPreviewTTL = -time.Second
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "MaxPreviewTTL") {
		t.Errorf("negative MaxPreviewTTL: %v", err)
	}
}

// echoServer is a python3 TCP echo server of one connection at a time.
const echoServer = `
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(8)
while True:
    c, _ = l.accept()
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
`

// dialEcho starts the echo server in sandbox id and dials it once it
// listens (a generous bound: it fails only when the server never starts).
func dialEcho(t *testing.T, e *testEnv, id string, port int) net.Conn {
	t.Helper()
	d := driverBackend{e.b}
	startProc(t, e, id, driver.ProcessRequest{Argv: []string{"python3", "-c", echoServer, "9000"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := d.DialPort(context.Background(), id, port)
		if err == nil {
			return c
		}
		if !errors.Is(err, driver.ErrUnreachable) || time.Now().After(deadline) {
			t.Fatalf("DialPort(%s, %d): %v", id, port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echo checks a round trip through c.
func echo(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
}

// awaitClosed checks that a read of c ends (not by its deadline, which
// only stops a hung test).
func awaitClosed(t *testing.T, c net.Conn, after string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	begin := time.Now()
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read after %s: %d bytes, %v", after, n, err)
	}
	t.Logf("connection ended %v after %s: %v", time.Since(begin), after, err)
}

func TestRealDialPort(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	d := driverBackend{e.b}
	ctx := context.Background()
	info := d.Info()
	if !hasNetworkNamespace(sandbox.Tier(info.Isolation.Tier)) {
		if slices.Contains(info.Extensions, api.ExtPorts) {
			t.Fatalf("tier %s lists %s", info.Isolation.Tier, api.ExtPorts)
		}
		t.Skipf("tier %s has no network namespace", info.Isolation.Tier)
	}
	if !slices.Contains(info.Extensions, api.ExtPorts) {
		t.Fatalf("extensions %v lack %s", info.Extensions, api.ExtPorts)
	}
	if info.Limits.MaxPreviewTTL != 24*time.Hour {
		t.Errorf("MaxPreviewTTL %v, want 24h", info.Limits.MaxPreviewTTL)
	}

	t.Run("refused", func(t *testing.T) {
		e.create("dp-refused", nil)
		_, err := d.DialPort(ctx, "dp-refused", 8000)
		if !errors.Is(err, driver.ErrUnreachable) || !strings.Contains(err.Error(), "port 8000: nothing is listening in the sandbox") {
			t.Fatalf("DialPort: %v, want ErrUnreachable naming the port", err)
		}
	})
	t.Run("unknown sandbox", func(t *testing.T) {
		if _, err := d.DialPort(ctx, "dp-nope", 8000); !errors.Is(err, driver.ErrNotFound) {
			t.Fatalf("DialPort: %v, want ErrNotFound", err)
		}
	})
	t.Run("delete cuts", func(t *testing.T) {
		e.create("dp-del", nil)
		c := dialEcho(t, e, "dp-del", 9000)
		defer c.Close()
		echo(t, c)
		if err := d.Delete(ctx, "dp-del"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		awaitClosed(t, c, "delete")
	})
	t.Run("expiry cuts and is not held off", func(t *testing.T) {
		e.create("dp-ttl", map[string]any{"ttlSeconds": 1})
		c := dialEcho(t, e, "dp-ttl", 9000)
		defer c.Close()
		echo(t, c)
		// The open connection does not keep the sandbox: it expires about
		// a second after the dial and the reaper cuts the connection.
		awaitClosed(t, c, "expiry")
		// The cuts run first; the removal follows.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := d.Get(ctx, "dp-ttl")
			if errors.Is(err, driver.ErrNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
