package sandbox

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// netTiers runs f in a sandbox of each tier with a network namespace.
func netTiers(t *testing.T, f func(t *testing.T, s *Sandbox)) {
	for _, tier := range []Tier{TierNamespaces, TierRootNamespaces} {
		t.Run(string(tier), func(t *testing.T) {
			if tier == TierRootNamespaces && !isRoot() {
				t.Skip("needs root")
			}
			m := newManager(t, tier)
			s, _ := start(t, m, key("dial"), Limits{Pids: 256})
			f(t, s)
		})
	}
}

// dialWhenListening dials port until something listens on it (a
// generous bound: it fails only when the server never starts).
func dialWhenListening(t *testing.T, s *Sandbox, port int, out *lockedBuffer) net.Conn {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := s.DialPort(context.Background(), port)
		if err == nil {
			return c
		}
		if !errors.Is(err, ErrPortRefused) || time.Now().After(deadline) {
			t.Fatalf("DialPort(%d): %v (server output %q)", port, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDialPortHTTP(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		startCmd(t, s, ExecSpec{Dir: "/workspace"}, &out, "python3", "-m", "http.server", "--bind", "127.0.0.1", "8000")
		dialWhenListening(t, s, 8000, &out).Close()
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return s.DialPort(ctx, 8000) },
		}}
		for i := range 3 { // fresh connections each time (HTTP/1.0 server)
			resp, err := client.Get("http://sandbox/")
			if err != nil {
				t.Fatalf("GET %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %d: %s %q", i, resp.Status, body)
			}
		}
	})
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

func TestDialPortEchoEndsWithSandbox(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		startCmd(t, s, ExecSpec{Dir: "/workspace"}, &out, "python3", "-c", echoServer, "9000")
		c := dialWhenListening(t, s, 9000, &out)
		defer c.Close()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("echo: %q, %v", line, err)
		}
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		// The server's end closed with its process: a read ends (the
		// deadline only stops a hung test).
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		begin := time.Now()
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("read after Stop: %d bytes, %v", n, err)
		}
		t.Logf("connection ended %v after Stop: %v", time.Since(begin), err)
		if _, err := s.DialPort(context.Background(), 9000); !errors.Is(err, ErrStopped) {
			t.Fatalf("DialPort after Stop: %v, want ErrStopped", err)
		}
	})
}

func TestDialPortRefused(t *testing.T) {
	// A listener on the host's loopback: the sandbox's loopback is not
	// the host's, so dialing its port must be refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("host secret\n"))
			c.Close()
		}
	}()
	hostPort := ln.Addr().(*net.TCPAddr).Port
	netTiers(t, func(t *testing.T, s *Sandbox) {
		for _, tc := range []struct {
			name string
			port int
			want error
		}{
			{"nothing listening", 8000, ErrPortRefused},
			{"host loopback listener", hostPort, ErrPortRefused},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := s.DialPort(context.Background(), tc.port)
				if err == nil {
					c.Close()
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("DialPort(%d): %v, want %v", tc.port, err, tc.want)
				}
			})
		}
		for _, port := range []int{0, -1, 65536} {
			if _, err := s.DialPort(context.Background(), port); err == nil || errors.Is(err, ErrPortRefused) {
				t.Errorf("DialPort(%d): %v, want a bad-port error", port, err)
			}
		}
	})
}

func TestDialPortHostTiers(t *testing.T) {
	for _, tier := range []Tier{TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			m := newManager(t, tier)
			s, _ := start(t, m, key("dial-host"), Limits{})
			c, err := s.DialPort(context.Background(), 8000)
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, ErrNoNetwork) {
				t.Fatalf("DialPort: %v, want ErrNoNetwork", err)
			}
		})
	}
}

func TestDialPortCancelled(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.DialPort(ctx, 8000); !errors.Is(err, context.Canceled) {
			t.Fatalf("DialPort(cancelled): %v", err)
		}
	})
}

// TestDialPortBacklogFull: a listener that never accepts, with a full
// backlog, drops the handshake; the init gives up after dialWait
// (ErrPortRefused) without blocking its request loop meanwhile.
func TestDialPortBacklogFull(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("dial-backlog"), Limits{Pids: 256})
	var out lockedBuffer
	startCmd(t, s, ExecSpec{Dir: "/workspace"}, &out, "python3", "-c",
		"import socket, time\nl = socket.socket(); l.bind(('127.0.0.1', 9100)); l.listen(0); print('listening', flush=True); time.sleep(600)")
	awaitOutput(t, &out, "listening")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 8 {
		begin := time.Now()
		c, err := s.DialPort(context.Background(), 9100)
		if err == nil {
			conns = append(conns, c)
			continue
		}
		if !errors.Is(err, ErrPortRefused) {
			t.Fatalf("dial %d: %v, want ErrPortRefused", i, err)
		}
		t.Logf("dial %d refused after %v (%d queued before)", i, time.Since(begin), len(conns))
		return
	}
	t.Fatalf("%d connections queued on a listener of backlog 0", len(conns))
}

// TestDialPortConcurrent: dials that wait for a handshake do not hold up
// other requests (commands, other dials).
func TestDialPortConcurrent(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("dial-conc"), Limits{Pids: 256})
	var out lockedBuffer
	startCmd(t, s, ExecSpec{Dir: "/workspace"}, &out, "python3", "-c", echoServer, "9000")
	// The server serves one connection at a time: each dial below is
	// closed at once, and at most 8 (its backlog) wait in its queue.
	dialWhenListening(t, s, 9000, &out).Close()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := s.DialPort(context.Background(), 9000)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	if r := sh(t, s, "echo hi"); r.stdout != "hi\n" {
		t.Errorf("command during dials: %v", r)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent dial: %v", err)
		}
	}
}
