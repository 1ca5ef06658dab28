package nsdial

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// newNetns returns the path of a fresh network namespace with lo up,
// gone at the end of the test. It is made on a locked thread that goes
// back to its namespace (or, failing that, ends locked).
func newNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer home.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		err = loUp()
		var f *os.File
		if err == nil {
			f, err = os.Open("/proc/thread-self/ns/net")
		}
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Skipf("no network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.f.Close() })
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(r.f.Fd()))
}

func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// greeter serves "from the namespace\n" on every connection of ln.
func greeter(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("from the namespace\n"))
		c.Close()
	}
}

func TestDialTCP(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	ln, err := (&ListenConfig{Netns: ns}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go greeter(ln)
	addr := ln.Addr().String()
	d := &Dialer{Netns: ns, Timeout: 10 * time.Second}
	for i := range 3 {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "from the namespace\n" {
			t.Fatalf("dial %d: read %q, %v", i, line, err)
		}
		if c.RemoteAddr().String() != addr {
			t.Errorf("remote address %v, want %s", c.RemoteAddr(), addr)
		}
		c.Close()
	}
	// The same address of the host's namespace is another place: refused,
	// or something else answers.
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if line == "from the namespace\n" {
			t.Fatalf("the namespace's listener answered in the host's namespace")
		}
	}
}

func TestDialRefusedAndUnreachable(t *testing.T) {
	ns := newNetns(t)
	d := &Dialer{Netns: ns}
	ln, err := (&ListenConfig{Netns: ns}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = d.DialContext(context.Background(), "tcp", addr)
	var oe *net.OpError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("dial a closed port: %v, want a dial *net.OpError with ECONNREFUSED", err)
	}
	// A namespace with a loopback only has no route elsewhere.
	if _, err := d.DialContext(context.Background(), "tcp", "192.0.2.1:80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial outside: %v, want ENETUNREACH", err)
	}
}

func TestDialErrors(t *testing.T) {
	ns := newNetns(t)
	ctx := context.Background()
	for _, c := range []struct {
		d                *Dialer
		network, address string
	}{
		{&Dialer{}, "tcp", "127.0.0.1:1"},
		{&Dialer{Netns: filepath.Join(t.TempDir(), "missing")}, "tcp", "127.0.0.1:1"},
		{&Dialer{Netns: ns}, "tcp", "localhost:1"},
		{&Dialer{Netns: ns}, "ip", "127.0.0.1:1"},
		{&Dialer{Netns: ns}, "tcp6", "127.0.0.1:1"},
		{&Dialer{Netns: ns}, "udp4", "[::1]:1"},
	} {
		if conn, err := c.d.DialContext(ctx, c.network, c.address); err == nil {
			conn.Close()
			t.Errorf("%+v %s %s: no error", c.d, c.network, c.address)
		}
	}
	if _, err := (&Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:1"); !errors.Is(err, ErrNoNetns) {
		t.Errorf("no namespace: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&Dialer{Netns: ns}).DialContext(cctx, "tcp", "127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestDialTimeout: a connection that is never accepted (the listener's
// backlog is full, so the kernel drops the handshake) ends with the
// Dialer's Timeout.
func TestDialTimeout(t *testing.T) {
	ns := newNetns(t)
	fd, err := socketIn(ns, unix.AF_INET, unix.SOCK_STREAM)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 9}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Netns: ns, Timeout: 300 * time.Millisecond}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 5 {
		begin := time.Now()
		c, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:9")
		if err == nil {
			conns = append(conns, c) // fills the backlog
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial: %v, want a deadline", err)
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Fatalf("dial gave up after %v", d)
		}
		return
	}
	t.Fatal("every dial connected although nothing accepts")
}

// TestResolver: queries go over UDP to a DNS server inside the namespace.
func TestResolver(t *testing.T) {
	ns := newNetns(t)
	pc, err := (&ListenConfig{Netns: ns}).ListenPacket(context.Background(), "udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveDNS(pc, netip.MustParseAddr("192.0.2.9"))
	r := (&Dialer{Netns: ns, Timeout: 5 * time.Second}).Resolver("127.0.0.1:53")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip4", "service.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("lookup: %v, %v", addrs, err)
	}
	// Not the host's resolver: its namespace has no such server.
	if _, err := (&Dialer{Netns: ns}).Resolver("127.0.0.2:53").LookupNetIP(ctx, "ip4", "service.test"); err == nil {
		t.Error("a lookup through an address without a server succeeded")
	}
}

// serveDNS answers every A query on pc with addr.
func serveDNS(pc net.PacketConn, addr netip.Addr) {
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
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: addr.As4()})
		}
		if msg, err := b.Finish(); err == nil {
			_, _ = pc.WriteTo(msg, from)
		}
	}
}

// TestThreadsStayHome: after many dials from many goroutines, every
// thread of the process is still in the process's network namespace.
func TestThreadsStayHome(t *testing.T) {
	ns := newNetns(t)
	ln, err := (&ListenConfig{Netns: ns}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go greeter(ln)
	errs := make(chan error, 50)
	for range 50 {
		go func() {
			c, err := (&Dialer{Netns: ns}).DialContext(context.Background(), "tcp", ln.Addr().String())
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && got != home {
			t.Errorf("thread %s is in %s, not %s", task.Name(), got, home)
		}
	}
}
