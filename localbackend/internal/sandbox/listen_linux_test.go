package sandbox

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/egress"
	"golang.org/x/net/dns/dnsmessage"
)

// listenIn is Listen that fails the test on an error.
func listenIn(t *testing.T, s *Sandbox, network, addr string) *os.File {
	t.Helper()
	f, err := s.Listen(context.Background(), network, netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatalf("Listen(%s %s): %v", network, addr, err)
	}
	return f
}

// TestListenTCP: a listener of the sandbox's namespace, served by the
// test, answers a command of the sandbox.
func TestListenTCP(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		f := listenIn(t, s, "tcp", "127.0.0.53:3128")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("hello from outside\n"))
		}()
		r := run(t, s, 20*time.Second, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.53/3128 && read -r line <&3 && echo "$line"`)
		if r.ExitCode != 0 || r.stdout != "hello from outside\n" {
			t.Fatalf("command: %v", r)
		}
		if got := ln.Addr().String(); got != "127.0.0.53:3128" {
			t.Errorf("listener address %s", got)
		}
	})
}

// TestListenUDP: a datagram of a command reaches a socket of the
// sandbox's namespace bound at port 53 (below 1024), and the answer
// comes back.
func TestListenUDP(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		f := listenIn(t, s, "udp", "127.0.0.53:53")
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 512)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("pong to "), buf[:n]...), from)
		}()
		// (Not bash's /dev/udp: it reads a datagram a byte at a time,
		// which drops all but the first.)
		r := run(t, s, 20*time.Second, "python3", "-c", `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
s.sendto(b"ping", ("127.0.0.53", 53)); sys.stdout.write(s.recv(100).decode())`)
		if r.ExitCode != 0 || r.stdout != "pong to ping" {
			t.Fatalf("command: %v", r)
		}
	})
}

// TestListenAddrInUse: an address a command of the sandbox listens on,
// or the server already does, is ErrAddrInUse.
func TestListenAddrInUse(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		startCmd(t, s, ExecSpec{Dir: "/workspace"}, &out, "python3", "-c",
			"import socket, time\nl = socket.socket(); l.bind(('127.0.0.53', 3128)); l.listen(1); print('listening', flush=True); time.sleep(600)")
		awaitOutput(t, &out, "listening")
		_, err := s.Listen(context.Background(), "tcp", netip.MustParseAddrPort("127.0.0.53:3128"))
		if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "127.0.0.53:3128") {
			t.Fatalf("Listen on the command's address: %v, want ErrAddrInUse naming it", err)
		}
		f := listenIn(t, s, "udp", "127.0.0.53:53")
		defer f.Close()
		if _, err := s.Listen(context.Background(), "udp", netip.MustParseAddrPort("127.0.0.53:53")); !errors.Is(err, ErrAddrInUse) {
			t.Fatalf("Listen twice: %v, want ErrAddrInUse", err)
		}
		// Nor can a command take it over, SO_REUSEADDR or not.
		r := run(t, s, 20*time.Second, "python3", "-c",
			"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.53', 53))")
		if r.ExitCode == 0 || !strings.Contains(r.stderr, "in use") {
			t.Fatalf("a command bound the server's address: %v", r)
		}
	})
}

// TestListenBadRequests: neither tcp nor udp, no address, the sandbox's
// own errors (an address it does not have) come back as errors.
func TestListenBadRequests(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("listen-bad"), Limits{Pids: 64})
	ctx := context.Background()
	if _, err := s.Listen(ctx, "unix", netip.MustParseAddrPort("127.0.0.1:1")); err == nil {
		t.Error("Listen(unix) succeeded")
	}
	if _, err := s.Listen(ctx, "tcp", netip.AddrPort{}); err == nil {
		t.Error("Listen without an address succeeded")
	}
	_, err := s.Listen(ctx, "tcp", netip.MustParseAddrPort("192.0.2.1:80"))
	if err == nil || errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "bind") {
		t.Errorf("Listen on an address the sandbox lacks: %v", err)
	}
	// The request loop still works.
	f := listenIn(t, s, "tcp", "[::1]:8080")
	f.Close()
}

// TestListenStop: the socket outlives Stop until the server closes it,
// and closes cleanly; a blocked Accept returns. Listen is then
// ErrStopped.
func TestListenStop(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		f := listenIn(t, s, "tcp", "127.0.0.53:3128")
		ln, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("close the file: %v", err)
		}
		if err := ln.Close(); err != nil {
			t.Errorf("close the listener: %v", err)
		}
		select {
		case err := <-accepted:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept: %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Accept still blocked after Close")
		}
		if _, err := s.Listen(context.Background(), "udp", netip.MustParseAddrPort("127.0.0.53:53")); !errors.Is(err, ErrStopped) {
			t.Fatalf("Listen after Stop: %v, want ErrStopped", err)
		}
	})
}

func TestListenHostTiers(t *testing.T) {
	for _, tier := range []Tier{TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			m := newManager(t, tier)
			s, _ := start(t, m, key("listen-host"), Limits{})
			f, err := s.Listen(context.Background(), "tcp", netip.MustParseAddrPort("127.0.0.53:3128"))
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, ErrNoNetwork) {
				t.Fatalf("Listen: %v, want ErrNoNetwork", err)
			}
		})
	}
}

// TestEtcResolvConf: the namespace tiers' /etc/resolv.conf names the
// egress gateway's resolver: without one a lookup fails at once; with a
// resolver listening there (Listen), the sandbox's lookups reach it.
// /etc/hosts still names localhost, and the sandbox's hostname.
func TestEtcResolvConf(t *testing.T) {
	netTiers(t, func(t *testing.T, s *Sandbox) {
		if r := sh(t, s, "cat /etc/resolv.conf"); r.stdout != egress.ResolvConf {
			t.Fatalf("/etc/resolv.conf: %v", r)
		}
		// (getent hosts, not ahostsv4: getaddrinfo's AI_ADDRCONFIG finds
		// no IPv4 address in a namespace with a loopback only.)
		for _, c := range []struct{ name, want string }{{"localhost", "localhost"}, {"sbx", "127.0.1.1"}} {
			if r := sh(t, s, "getent hosts "+c.name); r.ExitCode != 0 || !strings.Contains(r.stdout, c.want) {
				t.Errorf("getent %s: %v", c.name, r)
			}
		}
		begin := time.Now()
		if r := sh(t, s, "getent hosts nothing.example"); r.ExitCode != 2 {
			t.Errorf("lookup without a resolver: %v", r)
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("lookup without a resolver took %v", d)
		}
		f := listenIn(t, s, "udp", "127.0.0.53:53")
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go answerA(pc, netip.MustParseAddr("192.0.2.7"))
		if r := sh(t, s, "getent hosts service.example"); r.ExitCode != 0 || !strings.HasPrefix(r.stdout, "192.0.2.7 ") {
			t.Fatalf("lookup through the resolver: %v", r)
		}
	})
}

// answerA answers every DNS query on pc with one A record of addr (and
// no record for other types) until pc is closed.
func answerA(pc net.PacketConn, addr netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true})
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
				dnsmessage.AResource{A: addr.As4()})
		}
		msg, err := b.Finish()
		if err == nil {
			_, _ = pc.WriteTo(msg, from)
		}
	}
}

// TestEtcTarget: what the generated /etc files are bound over, symlinks
// resolved within the new root, never on the host.
func TestEtcTarget(t *testing.T) {
	root := t.TempDir()
	mk := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc/regular", "x")
	mk("etc/real/file", "x")
	link("etc/rel", "real/file")
	// Absolute: within the root, not the host's /etc/hostname.
	mk("etc/hostname", "x")
	link("etc/abs", "/etc/hostname")
	link("etc/escape", "../../../../../../etc/real/file")
	link("etc/stub", "../run/resolve/stub.conf") // /run: not in the root
	mk("usr/keep", "x")
	link("etc/intousr", "/usr/missing") // /usr exists: leave it
	link("etc/toproc", "/proc/missing") // the sandbox's own
	mk("etc/dir/x", "x")
	link("etc/todir", "dir")
	for _, c := range []struct{ path, want string }{
		{"/etc/regular", "/etc/regular"},
		{"/etc/rel", "/etc/real/file"},
		{"/etc/abs", "/etc/hostname"},
		{"/etc/escape", "/etc/real/file"},
		{"/etc/stub", "/run/resolve/stub.conf"},
		{"/etc/intousr", ""},
		{"/etc/toproc", ""},
		{"/etc/todir", ""},
		{"/etc/missing", ""},
	} {
		got, err := etcTarget(root, c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		want := c.want
		if want != "" {
			want = root + want
		}
		if got != want {
			t.Errorf("%s: %q, want %q", c.path, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "run/resolve/stub.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the dangling link's target was not created: %v", err)
	}
}
