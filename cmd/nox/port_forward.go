package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) portForwardCommand() *cli.Command {
	return &cli.Command{
		Name:      "port-forward",
		Usage:     "forward local ports to ports inside a sandbox, until Ctrl-C",
		ArgsUsage: "ID [LOCAL_ADDR:]LOCAL_PORT:PORT | PORT | :PORT ...",
		Description: `Listens on each local port and carries every connection to the port
inside the sandbox, as kubectl port-forward does: any TCP protocol (a
database, a debugger, HTTP). The sandbox needs no network access; the
backend reaches the port from outside (extension ports). For each port,
prints "Forwarding from 127.0.0.1:LOCAL -> PORT" (--json: a JSON object)
and forwards until Ctrl-C. A connection that fails (nothing listening in
the sandbox yet) is reported on stderr and the forward goes on.

   nox port-forward demo 8000               127.0.0.1:8000 -> 8000
   nox port-forward demo 5432:5432 9000:80  two ports
   nox port-forward demo :8000              any free local port -> 8000
   nox port-forward demo 0.0.0.0:8080:80    every interface (no token asked)

Connections have no half-close: a client that ends its sending keeps
receiving until the sandbox's server closes. With --local the forward lives
as long as this command, and so does a sandbox server started by it.`,
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("port-forward: want a sandbox ID and at least one port: nox port-forward ID [LOCAL_PORT:]PORT")
			}
			id := c.Args().First()
			var specs []forwardSpec
			for _, arg := range c.Args().Slice()[1:] {
				spec, err := parseForwardSpec(arg)
				if err != nil {
					return err
				}
				specs = append(specs, spec)
			}
			return a.withConn(c, func(cn *conn) error {
				return onSandbox(id, a.portForward(c.Context, cn.client, id, specs, readGlobals(c).json))
			})
		},
	}
}

// forwardLine is what --json prints for each port forwarded.
type forwardLine struct {
	ID    string `json:"sessionId"`
	Local string `json:"local"`
	Port  int    `json:"port"`
}

// portForward listens on every spec and forwards its connections until
// ctx is done, then closes everything and returns nil.
func (a *app) portForward(ctx context.Context, cl *sdk.Client, id string, specs []forwardSpec, asJSON bool) error {
	info, err := cl.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("port-forward: %w", err)
	}
	if !info.Supports(sdk.ExtPorts) {
		return fmt.Errorf("port-forward: the backend does not advertise extension %s: %w", sdk.ExtPorts, sdk.ErrUnsupported)
	}
	sb := cl.Sandbox(id)
	if info.Supports(sdk.ExtSandboxesGet) {
		if _, err := sb.Get(ctx); err != nil {
			return err
		}
	}
	var lc net.ListenConfig
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for _, s := range specs {
		l, err := lc.Listen(ctx, "tcp", s.listen)
		if err != nil {
			return fmt.Errorf("port-forward: %w", err)
		}
		listeners = append(listeners, l)
	}
	for i, l := range listeners {
		local, port := l.Addr().String(), specs[i].port
		if asJSON {
			if err := a.printJSON(forwardLine{ID: id, Local: local, Port: port}); err != nil {
				return err
			}
			continue
		}
		a.printf("Forwarding from %s -> %d\n", local, port)
	}
	f := &forwarder{a: a, sb: sb, conns: map[net.Conn]struct{}{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, l := range listeners {
		f.wg.Add(1)
		go f.accept(ctx, l, specs[i].port)
	}
	<-ctx.Done()
	for _, l := range listeners {
		_ = l.Close()
	}
	f.closeAll()
	f.wg.Wait()
	return nil
}

// forwarder carries the connections of nox port-forward.
type forwarder struct {
	a  *app
	sb *sdk.Sandbox
	wg sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open connections, either side
	closed bool
}

// accept forwards each connection l accepts to port, until l is closed.
func (f *forwarder) accept(ctx context.Context, l net.Listener, port int) {
	defer f.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait a little and go on.
			f.logf("accepting on %s: %v", l.Addr(), err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		f.wg.Add(1)
		go f.forward(ctx, c, port)
	}
}

// forward splices local to a new tunnel to port.
func (f *forwarder) forward(ctx context.Context, local net.Conn, port int) {
	defer f.wg.Done()
	if !f.track(local) {
		return
	}
	defer f.untrack(local)
	remote, err := f.sb.Dial(ctx, port)
	if err != nil {
		if ctx.Err() == nil {
			f.logf("connection from %s to port %d: %s", local.RemoteAddr(), port, withoutSDKPrefix(err.Error()))
		}
		return
	}
	if !f.track(remote) {
		return
	}
	defer f.untrack(remote)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The tunnel has no half-close: at the client's EOF, wait for
		// the server's answer and end.
		if _, err := io.Copy(remote, local); err != nil {
			_ = remote.Close()
			_ = local.Close()
		}
	}()
	_, _ = io.Copy(local, remote)
	_ = local.Close()
	_ = remote.Close()
	<-done
}

// track records c as open, or closes it and returns false when the
// forwarder is closing.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (f *forwarder) untrack(c net.Conn) {
	_ = c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// closeAll closes every open connection, and those opened after.
func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.conns {
		_ = c.Close()
	}
}

// logf reports a failure that does not end the forward on stderr.
func (f *forwarder) logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(f.a.stderr, "%s %s\n", f.a.errColor.yellow("nox:"), fmt.Sprintf(format, args...))
}
