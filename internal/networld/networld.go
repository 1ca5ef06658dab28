// Package networld is a stand-in internet for tests and scripts: a
// network namespace of its own whose loopback holds documentation
// addresses (TEST-NET-2 198.51.100.0/24 for hosts, TEST-NET-3
// 203.0.113.53 for its DNS server, and the link-local metadata address
// 169.254.169.254), with servers the caller starts there. Code reaches it
// through nsdial, the way the local backend's egress gateway reaches the
// real one; the host's own network never sees it.
package networld

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/noxrunner/nox/internal/nsdial"
)

// The world's fixed addresses.
var (
	// DNS is where the world's DNS server listens (UDP and TCP): it
	// answers A queries for the names Host registered, NXDOMAIN for
	// others.
	DNS = netip.MustParseAddrPort("203.0.113.53:53")
	// Metadata is the cloud metadata address; nothing listens there
	// unless the caller serves it.
	Metadata = netip.MustParseAddr("169.254.169.254")
	// Hosts is the range Host draws addresses from; all of it is local to
	// the world, so an address nothing listens on refuses connections.
	Hosts = netip.MustParsePrefix("198.51.100.0/24")
)

// World is a running stand-in internet. Its methods are safe for
// concurrent use.
type World struct {
	ns     netns
	lc     nsdial.ListenConfig
	dialer nsdial.Dialer

	mu      sync.Mutex
	names   map[string]netip.Addr
	next    netip.Addr
	closers []func() error
	closed  bool
	wg      sync.WaitGroup
}

// Start builds a world: a fresh network namespace with its addresses and
// DNS server. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Close
// stops it.
func Start() (*World, error) {
	ns, err := newNetns([]netip.Prefix{
		netip.PrefixFrom(Hosts.Addr().Next(), Hosts.Bits()),
		netip.PrefixFrom(DNS.Addr(), 32),
		netip.PrefixFrom(Metadata, 32),
	})
	if err != nil {
		return nil, fmt.Errorf("networld: %w", err)
	}
	w := &World{ns: ns, names: map[string]netip.Addr{}, next: Hosts.Addr().Next()}
	w.lc = nsdial.ListenConfig{Netns: ns.path}
	w.dialer = nsdial.Dialer{Netns: ns.path, Timeout: 30 * time.Second}
	if err := w.serveDNS(); err != nil {
		w.Close()
		return nil, fmt.Errorf("networld: %w", err)
	}
	return w, nil
}

// NetnsPath is the path of the world's network namespace, valid for any
// process of the host with the privileges to enter it, until Close.
func (w *World) NetnsPath() string { return w.ns.path }

// DNSAddr is the address of the world's DNS server (DNS).
func (w *World) DNSAddr() netip.AddrPort { return DNS }

// Host registers name (case-insensitive, a trailing dot ignored) with
// the world's DNS server and returns its address, a fresh one from
// Hosts, or the one it already has. It panics when Hosts runs out (after
// 254 names).
func (w *World) Host(name string) netip.Addr {
	name = canonical(name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.names[name]; ok {
		return a
	}
	a := w.next
	if !Hosts.Contains(a.Next()) { // the last one is the broadcast address
		panic("networld: no address left for host " + name)
	}
	w.next = a.Next()
	w.names[name] = a
	return a
}

// lookup returns the address of a registered name.
func (w *World) lookup(name string) (netip.Addr, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.names[canonical(name)]
	return a, ok
}

// Listen listens on address ("ip:port") over network ("tcp", "tcp4",
// "tcp6") inside the world. The listener closes with the world, or
// before.
func (w *World) Listen(network, address string) (net.Listener, error) {
	if w.isClosed() {
		return nil, errClosed
	}
	ln, err := w.lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	if err := w.onClose(ln.Close); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ListenPacket binds address over network ("udp", "udp4", "udp6")
// inside the world. The socket closes with the world, or before.
func (w *World) ListenPacket(network, address string) (net.PacketConn, error) {
	if w.isClosed() {
		return nil, errClosed
	}
	pc, err := w.lc.ListenPacket(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	if err := w.onClose(pc.Close); err != nil {
		pc.Close()
		return nil, err
	}
	return pc, nil
}

// ServeHTTP serves h on addr inside the world until Close.
func (w *World) ServeHTTP(addr netip.AddrPort, h http.Handler) error {
	ln, err := w.Listen("tcp", addr.String())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := w.onClose(srv.Close); err != nil {
		return err
	}
	w.wg.Go(func() { _ = srv.Serve(ln) })
	return nil
}

// Dial connects to address ("ip:port": resolve names with Resolver)
// from inside the world.
func (w *World) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return w.dialer.DialContext(ctx, network, address)
}

// Dialer returns a dialer into the world (a copy the caller may adjust).
func (w *World) Dialer() *nsdial.Dialer {
	d := w.dialer
	return &d
}

// Resolver returns a resolver that asks the world's DNS server.
func (w *World) Resolver() *net.Resolver {
	return w.dialer.Resolver(DNS.String())
}

// Close stops the world's servers and releases its network namespace
// (which ends once no socket of it remains open).
func (w *World) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	closers := w.closers
	w.closers = nil
	w.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	w.wg.Wait()
	errs = append(errs, w.ns.close())
	return errors.Join(errs...)
}

// errClosed reports a use of a closed world.
var errClosed = errors.New("networld: the world is closed")

// isClosed reports whether Close was called.
func (w *World) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// onClose registers f to run at Close.
func (w *World) onClose(f func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	w.closers = append(w.closers, f)
	return nil
}
