package membackend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// echoListener serves one echo connection at a time on the host's
// loopback until the test ends.
func echoListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// freePort returns a loopback port on which nothing listens (any more).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestPortsInfo(t *testing.T) {
	t.Parallel()
	b := newTest(t, Config{})
	info := b.Info()
	if !slices.Contains(info.Extensions, api.ExtPorts) {
		t.Errorf("extensions %v lack %s", info.Extensions, api.ExtPorts)
	}
	if info.Limits.MaxPreviewTTL != 24*time.Hour {
		t.Errorf("MaxPreviewTTL %v, want 24h", info.Limits.MaxPreviewTTL)
	}
	if got := newTest(t, Config{Limits: driver.Limits{MaxPreviewTTL: time.Hour}}).Info().Limits.MaxPreviewTTL; got != time.Hour {
		t.Errorf("configured MaxPreviewTTL %v, want 1h", got)
	}
}

func TestDialPort(t *testing.T) {
	t.Parallel()
	b := newTest(t, Config{})
	ctx := context.Background()
	if _, err := b.Create(ctx, "p", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	port := echoListener(t)
	for _, tc := range []struct {
		name, id string
		port     int
		want     error
		msg      string
	}{
		{"unknown sandbox", "nope", port, driver.ErrNotFound, `sandbox "nope"`},
		{"refused", "p", freePort(t), driver.ErrUnreachable, "nothing is listening in the sandbox"},
		{"bad port", "p", 0, driver.ErrInvalidArgument, "port 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := b.DialPort(ctx, tc.id, tc.port)
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DialPort: %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	t.Run("echo, closed by delete", func(t *testing.T) {
		c, err := b.DialPort(ctx, "p", port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo: %q, %v", line, err)
		}
		if err := b.Delete(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // stops only a hung test
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("read after Delete: %d bytes, %v", n, err)
		}
	})
}
