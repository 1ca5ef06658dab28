package nsdial

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// DialContext connects to address ("host:port" with an IP address: no
// name is resolved) over network ("tcp", "tcp4", "tcp6", "udp", "udp4",
// "udp6") from inside d.Netns. Errors are *net.OpError values: a refused
// connection satisfies errors.Is(err, syscall.ECONNREFUSED).
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	fail := func(err error) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: addrOf(address), Err: err}
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	typ, family, sa, err := parse(network, address)
	if err != nil {
		return fail(err)
	}
	if err := context.Cause(ctx); err != nil {
		return fail(err)
	}
	fd, err := socketIn(d.Netns, family, typ)
	if err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(fd), "nsdial") // non-blocking: in the poller
	defer f.Close()
	if err := connect(ctx, f, fd, sa); err != nil {
		return fail(err)
	}
	c, err := net.FileConn(f) // a dup; f is closed above
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// Listen listens on address (an IP address and port) over network
// ("tcp", "tcp4", "tcp6") inside c.Netns.
func (c *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	f, err := c.bound(ctx, network, address, unix.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addrOf(address), Err: err}
	}
	return ln, nil
}

// ListenPacket binds a socket at address (an IP address and port) over
// network ("udp", "udp4", "udp6") inside c.Netns.
func (c *ListenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	f, err := c.bound(ctx, network, address, unix.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addrOf(address), Err: err}
	}
	return pc, nil
}

// bound makes a socket of type want inside c.Netns, bound at address
// (and listening, for a stream).
func (c *ListenConfig) bound(ctx context.Context, network, address string, want int) (*os.File, error) {
	fail := func(err error) (*os.File, error) {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: addrOf(address), Err: err}
	}
	typ, family, sa, err := parse(network, address)
	if err != nil {
		return fail(err)
	}
	if typ != want {
		return fail(net.UnknownNetworkError(network))
	}
	if err := context.Cause(ctx); err != nil {
		return fail(err)
	}
	fd, err := socketIn(c.Netns, family, typ)
	if err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(fd), "nslisten")
	if err := bindListen(fd, family, typ, sa); err != nil {
		f.Close()
		return fail(err)
	}
	return f, nil
}

// bindListen sets SO_REUSEADDR on a stream (as net.Listen does) and
// IPV6_V6ONLY on an IPv6 socket, binds fd to sa and, for a stream,
// listens.
func bindListen(fd, family, typ int, sa unix.Sockaddr) error {
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	return nil
}

// parse returns the socket type, family and address of network and
// address; address must hold an IP address of the network's family.
func parse(network, address string) (typ, family int, sa unix.Sockaddr, err error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("address %q: an IP address and a port are needed: %w", address, err)
	}
	a := ap.Addr().Unmap()
	switch network {
	case "tcp", "tcp4", "tcp6":
		typ = unix.SOCK_STREAM
	case "udp", "udp4", "udp6":
		typ = unix.SOCK_DGRAM
	default:
		return 0, 0, nil, net.UnknownNetworkError(network)
	}
	last := network[len(network)-1]
	if a.Is4() {
		if last == '6' {
			return 0, 0, nil, fmt.Errorf("address %s: not IPv6", address)
		}
		return typ, unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	if last == '4' {
		return 0, 0, nil, fmt.Errorf("address %s: not IPv4", address)
	}
	var zone uint32
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z) // a zone names an interface of the host's namespace
		if err != nil {
			return 0, 0, nil, fmt.Errorf("address %s: zone: %w", address, err)
		}
		zone = uint32(ifi.Index)
	}
	return typ, unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16(), ZoneId: zone}, nil
}

// addrOf is address as a net.Addr for errors, nil when unparsable.
func addrOf(address string) net.Addr {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// socketIn creates a non-blocking, close-on-exec socket inside the
// network namespace at path. A socket belongs for good to the namespace
// it was created in, so only its creation needs to happen there: on a
// locked thread of a goroutine of its own that enters the namespace and
// comes back. A thread that cannot come back is never unlocked, so that
// it ends with the goroutine instead of running other goroutines in the
// wrong namespace.
func socketIn(path string, family, typ int) (int, error) {
	if path == "" {
		return -1, ErrNoNetns
	}
	target, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err, back := socketOnThread(int(target.Fd()), family, typ)
		if back {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// socketOnThread enters the namespace of nsfd on the locked current
// thread, creates the socket and returns to the thread's namespace; back
// reports whether the thread is where it was.
func socketOnThread(nsfd, family, typ int) (fd int, err error, back bool) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return -1, fmt.Errorf("network namespace: %w", err), true
	}
	defer home.Close()
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("enter the network namespace: %w", os.NewSyscallError("setns", err)), true
	}
	fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		err = os.NewSyscallError("socket", err)
	}
	if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
		if err == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("leave the network namespace: %w", os.NewSyscallError("setns", serr)), false
	}
	return fd, err, true
}

// connect connects the non-blocking socket fd (of f, in the poller) to
// sa, waiting for a connection in progress until ctx ends.
func connect(ctx context.Context, f *os.File, fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	switch err {
	case nil, unix.EISCONN:
		return nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
	default:
		return os.NewSyscallError("connect", err)
	}
	// Only ctx's end stops the wait (so that ctx.Err is set by then).
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	werr := rc.Write(func(uintptr) bool {
		// Writable: connected or failed. The poller may wake us
		// spuriously, so a connection counts once it has a peer.
		n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		case n != 0 && unix.Errno(n) != unix.EINPROGRESS && unix.Errno(n) != unix.EALREADY:
			cerr = os.NewSyscallError("connect", unix.Errno(n))
			return true
		}
		_, err = unix.Getpeername(fd)
		return err == nil
	})
	if werr != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return werr
	}
	return cerr
}
