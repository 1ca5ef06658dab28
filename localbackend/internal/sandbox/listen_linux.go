package sandbox

// Listen: a socket bound at an address of the sandbox's network
// namespace, made by the init there and handed to the server, which
// serves it from outside (the egress gateway's resolver and proxy).
//
// Ports below 1024: the init's request loop holds no capability, so it
// could not bind them; instead the init lowers the network namespace's
// net.ipv4.ip_unprivileged_port_start to 0 while it sets up the sandbox
// (unprivilegedPorts, as container runtimes do). The sysctl belongs to
// the sandbox's own network namespace, so the host is untouched; commands
// may then bind any port of their own loopback too. They cannot take over
// an address the server listens on: its TCP sockets listen (which no
// later bind may share) and its UDP sockets have no SO_REUSEADDR.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog is the backlog of a TCP socket made by Listen.
const listenBacklog = 128

// Listen returns a socket bound at addr inside the sandbox's network
// namespace ("tcp": listening; "udp": bound), made by the init and handed
// to the server, which serves it from outside the sandbox (with
// net.FileListener or net.FilePacketConn, then closes the file). An
// address a process of the sandbox holds is ErrAddrInUse; the host
// tiers, which share the host's network, are ErrNoNetwork. The socket
// keeps working, and keeps the sandbox's network namespace alive, until
// the caller closes it: close it when the sandbox stops.
func (s *Sandbox) Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if network != "tcp" && network != "udp" {
		return nil, fmt.Errorf("listen %s %s: network is neither tcp nor udp", network, addr)
	}
	if !addr.Addr().IsValid() {
		return nil, fmt.Errorf("listen %s: no address", network)
	}
	if s.mode == modeHost {
		return nil, fmt.Errorf("listen %s %s: %w", network, addr, ErrNoNetwork)
	}
	r, err := s.ask(ctx, request{Op: "listen", Network: network, Addr: addr.String()})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", network, addr, err)
	}
	return listened(r, network, addr)
}

// listened turns a "listened" reply into the socket it brought.
func listened(r reply, network string, addr netip.AddrPort) (*os.File, error) {
	switch {
	case r.Errno == int(unix.EADDRINUSE):
		closeFiles(r.files)
		return nil, fmt.Errorf("listen %s %s: %w", network, addr, ErrAddrInUse)
	case r.Errno != 0:
		closeFiles(r.files)
		return nil, fmt.Errorf("listen %s %s: %s: %w", network, addr, r.Err, unix.Errno(r.Errno))
	case r.Err != "":
		closeFiles(r.files)
		return nil, fmt.Errorf("listen %s %s: %s", network, addr, r.Err)
	case len(r.files) != 1:
		closeFiles(r.files)
		return nil, fmt.Errorf("listen %s %s: the sandbox's init sent %d sockets, not one", network, addr, len(r.files))
	}
	return r.files[0], nil
}

// ask sends req (with an id of its own) to the init and waits for the
// one reply it answers a "dial" or a "listen" with, which the init sends
// within dialWait. When the caller gives up first, the reply is awaited
// in the background and the files that come with it are closed.
func (s *Sandbox) ask(ctx context.Context, req request) (reply, error) {
	if err := s.awaitSetup(ctx); err != nil {
		return reply{}, err
	}
	if err := context.Cause(ctx); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	id, ch, err := s.newRequestLocked()
	s.mu.Unlock()
	if err != nil {
		return reply{}, err
	}
	req.ID = id
	if err := sendMsg(s.conn, req); err != nil {
		s.unregister(id)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, net.ErrClosed) {
			return reply{}, ErrStopped
		}
		return reply{}, err
	}
	t := time.NewTimer(dialWait + killReportTimeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		s.unregister(id)
		if !ok {
			return reply{}, ErrStopped
		}
		return r, nil
	case <-ctx.Done():
		go s.discardDial(id, ch)
		return reply{}, context.Cause(ctx)
	case <-t.C:
		go s.discardDial(id, ch)
		return reply{}, fmt.Errorf("no answer from the sandbox's init in %v", dialWait+killReportTimeout)
	}
}

// listen handles a "listen" request on the init's main thread: a socket
// of the sandbox's network namespace bound at the request's address (and
// listening, for "tcp"), sent back with "listened"; or why not, with the
// errno of the step that failed.
func (z *zygote) listen(r request) {
	rep := reply{Op: opListened, ID: r.ID}
	if z.cfg.Mode == modeHost {
		rep.Err = ErrNoNetwork.Error()
		_ = sendRaw(z.fd, rep)
		return
	}
	fd, step, err := listenSocket(r.Network, r.Addr)
	if err != nil {
		rep.Err = step
		var errno unix.Errno
		if errors.As(err, &errno) {
			rep.Errno = int(errno)
		} else {
			rep.Err = step + ": " + err.Error()
		}
		_ = sendRaw(z.fd, rep)
		return
	}
	defer unix.Close(fd)
	_ = sendRaw(z.fd, rep, fd)
}

// listenSocket makes the socket of a "listen" request: close-on-exec,
// SO_REUSEADDR for tcp (a port in TIME_WAIT can be listened on again;
// never for udp, which would let another socket share the port), bound
// and, for tcp, listening. On error it names the step that failed.
func listenSocket(network, addr string) (fd int, step string, err error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, "address", err
	}
	typ := unix.SOCK_STREAM
	if network == "udp" {
		typ = unix.SOCK_DGRAM
	} else if network != "tcp" {
		return -1, "network", fmt.Errorf("%q is neither tcp nor udp", network)
	}
	family, sa := sockaddrOf(ap)
	fd, err = unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "socket", err
	}
	step, err = bindListen(fd, family, typ, sa)
	if err != nil {
		unix.Close(fd)
		return -1, step, err
	}
	return fd, "", nil
}

// bindListen sets fd's options, binds it to sa and, for a stream, listens.
func bindListen(fd, family, typ int, sa unix.Sockaddr) (step string, err error) {
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return "setsockopt", err
		}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return "setsockopt", err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return "bind", err
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return "listen", err
		}
	}
	return "", nil
}

// sockaddrOf returns the address family and socket address of ap.
func sockaddrOf(ap netip.AddrPort) (int, unix.Sockaddr) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

// unprivilegedPortsSysctl lets every port of the sandbox's network
// namespace be bound without CAP_NET_BIND_SERVICE (see Listen).
const unprivilegedPortsSysctl = "sys/net/ipv4/ip_unprivileged_port_start"

// unprivilegedPorts sets net.ipv4.ip_unprivileged_port_start to 0 in the
// init's network namespace, through proc (a proc mount of the sandbox,
// before its /proc/sys is made read-only). Best effort: a kernel without
// the sysctl leaves ports below 1024 to Listen's EACCES.
func unprivilegedPorts(proc string) {
	f, err := os.OpenFile(proc+"/"+unprivilegedPortsSysctl, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString("0\n")
}
