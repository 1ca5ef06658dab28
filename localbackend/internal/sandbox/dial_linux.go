package sandbox

// DialPort: a TCP connection to a port of the sandbox's loopback, made by
// the init inside the sandbox's network namespace and handed to the
// server as a file descriptor.

import (
	"context"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// dialWait bounds the init's wait for a connection to be accepted (a full
// listen backlog drops the handshake's SYN; the kernel retries it).
const dialWait = 5 * time.Second

// DialPort connects to 127.0.0.1:port in the sandbox's network namespace,
// from outside: the init creates the socket there and sends it back, so
// the sandbox needs no network of its own and nothing but its loopback is
// reachable. Nothing listening is ErrPortRefused; the host tiers, which
// share the host's network, ErrNoNetwork. The caller closes the
// connection; it ends with the sandbox's processes.
func (s *Sandbox) DialPort(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: not between 1 and 65535", port)
	}
	if s.mode == modeHost {
		return nil, fmt.Errorf("port %d: %w", port, ErrNoNetwork)
	}
	r, err := s.ask(ctx, request{Op: "dial", Port: port})
	if err != nil {
		return nil, fmt.Errorf("port %d: %w", port, err)
	}
	return dialed(r, port)
}

// dialed turns a "dialed" reply into the connection it brought.
func dialed(r reply, port int) (net.Conn, error) {
	defer closeFiles(r.files)
	switch {
	case r.Refused:
		return nil, fmt.Errorf("port %d: %w", port, ErrPortRefused)
	case r.Err != "":
		return nil, fmt.Errorf("port %d: %s", port, r.Err)
	case len(r.files) != 1:
		return nil, fmt.Errorf("port %d: the sandbox's init sent %d sockets, not one", port, len(r.files))
	}
	c, err := net.FileConn(r.files[0]) // a dup: the file is closed above
	if err != nil {
		return nil, fmt.Errorf("port %d: %w", port, err)
	}
	return c, nil
}

// discardDial waits for the reply to a dial or listen given up on and
// closes the socket that came with it; then it forgets the request. The init always
// answers within dialWait, or dies (which closes ch).
func (s *Sandbox) discardDial(id uint64, ch <-chan reply) {
	defer s.unregister(id)
	t := time.NewTimer(dialWait + killReportTimeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		if ok {
			closeFiles(r.files)
		}
	case <-t.C:
	}
}

// dial handles a "dial" request on the init's main thread: a non-blocking
// socket in the sandbox's network namespace, connected to 127.0.0.1 at
// the request's port. A connection still in progress is awaited on
// another thread, so that the request loop never waits for a port.
func (z *zygote) dial(r request) {
	if z.cfg.Mode == modeHost {
		_ = sendRaw(z.fd, reply{Op: opDialed, ID: r.ID, Err: ErrNoNetwork.Error()})
		return
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		_ = sendRaw(z.fd, reply{Op: opDialed, ID: r.ID, Err: "socket: " + err.Error()})
		return
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: r.Port, Addr: [4]byte{127, 0, 0, 1}})
	if err == unix.EINTR {
		// An interrupted connect goes on in the background, as one in
		// progress does.
		err = unix.EINPROGRESS
	}
	if err == unix.EINPROGRESS {
		go z.finishDial(r.ID, fd)
		return
	}
	z.dialDone(r.ID, fd, err)
}

// finishDial waits up to dialWait for the connection of fd to complete.
func (z *zygote) finishDial(id uint64, fd int) {
	deadline := time.Now().Add(dialWait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			z.dialDone(id, fd, unix.ETIMEDOUT)
			return
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			z.dialDone(id, fd, err)
			return
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		z.dialDone(id, fd, err)
		return
	}
}

// dialDone answers "dialed": with the connected socket, or why not (a
// refusal and a timeout say Refused: nothing accepts on the port). The
// init's copy of the socket is closed.
func (z *zygote) dialDone(id uint64, fd int, err error) {
	defer unix.Close(fd)
	rep := reply{Op: opDialed, ID: id}
	switch {
	case err == nil:
		_ = sendRaw(z.fd, rep, fd)
		return
	case err == unix.ECONNREFUSED || err == unix.ETIMEDOUT:
		rep.Refused = true
	default:
		rep.Err = "connect: " + err.Error()
	}
	_ = sendRaw(z.fd, rep)
}
