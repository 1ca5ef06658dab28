package egress

// The gateway's state: the policy in force, the addresses its resolver
// gave out, the connections it holds, and the checked upstream dialer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Gateway enforces one sandbox's policy.
type Gateway struct {
	cfg      Config
	resolver *net.Resolver
	log      *slog.Logger
	// ctx ends at Close; every lookup and dial runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	// state is the policy in force with what belongs to it.
	state atomic.Pointer[state]
	// slots holds one token per proxy connection being served.
	slots chan struct{}
	// refusing holds one token per connection being told "too many".
	refusing chan struct{}
	// dnsSlots bounds the DNS queries in flight.
	dnsSlots chan struct{}

	mu     sync.Mutex
	closed bool
	// closers are the listeners and packet conns of Serve*.
	closers map[io.Closer]struct{}
	// conns are the live client and upstream connections.
	conns map[io.Closer]struct{}
	// wg counts the goroutines serving connections and queries.
	wg sync.WaitGroup
}

// state is a policy with the resolved-address memory and the HTTP
// transport that go with it: SetPolicy replaces all three at once.
type state struct {
	p         *Policy
	mem       *addrMemory
	transport *http.Transport
}

// maxInflightDNS bounds the DNS queries a gateway handles at once.
const maxInflightDNS = 64

// NewGateway returns a gateway enforcing policy p.
func NewGateway(cfg Config, p *Policy) *Gateway {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	g := &Gateway{
		cfg:      cfg,
		resolver: cfg.Resolver,
		log:      cfg.Logger,
		slots:    make(chan struct{}, cfg.MaxConns),
		refusing: make(chan struct{}, 16),
		dnsSlots: make(chan struct{}, maxInflightDNS),
		closers:  map[io.Closer]struct{}{},
		conns:    map[io.Closer]struct{}{},
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.state.Store(g.newState(p))
	return g
}

// newState returns the state of policy p.
func (g *Gateway) newState(p *Policy) *state {
	st := &state{p: p, mem: newAddrMemory(maxRemembered)}
	st.transport = &http.Transport{
		Proxy: nil, // never a proxy of the server's environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return g.dial(ctx, st, addr)
		},
		DisableCompression:    true,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return st
}

// SetPolicy replaces the policy; connections opened before are closed.
func (g *Gateway) SetPolicy(p *Policy) {
	g.mu.Lock()
	old := g.state.Swap(g.newState(p))
	conns := g.conns
	g.conns = map[io.Closer]struct{}{}
	g.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	old.transport.CloseIdleConnections()
}

// Close stops the gateway: its listeners and every connection. Serve*
// return nil once it has. Close waits for the connections' goroutines.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	closers, conns := g.closers, g.conns
	g.closers, g.conns = nil, nil
	g.mu.Unlock()
	g.cancel()
	for c := range closers {
		c.Close()
	}
	for c := range conns {
		c.Close()
	}
	g.state.Load().transport.CloseIdleConnections()
	g.wg.Wait()
	return nil
}

// addCloser registers a listener of Serve*; false when the gateway is
// closed (and c closed).
func (g *Gateway) addCloser(c io.Closer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.Close()
		return false
	}
	g.closers[c] = struct{}{}
	return true
}

// removeCloser forgets a listener whose Serve method returned.
func (g *Gateway) removeCloser(c io.Closer) {
	g.mu.Lock()
	delete(g.closers, c)
	g.mu.Unlock()
}

// isClosed reports whether Close was called.
func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// track registers a live connection that belongs to state st; it closes
// c and returns false when the gateway is closed or st is no longer in
// force (the policy changed while c was being set up).
func (g *Gateway) track(c io.Closer, st *state) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.state.Load() != st {
		c.Close()
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

// untrack forgets a connection (closing it is the caller's business).
func (g *Gateway) untrack(c io.Closer) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// errNotAllowed and errResolve classify the failures of dial; upstream
// connection failures are the dialer's own errors.
var (
	errNotAllowed = errors.New("not allowed by the sandbox's egress policy")
	errResolve    = errors.New("cannot resolve")
	errBadTarget  = errors.New("not a host:port the proxy serves")
)

// dial connects to hostport (a name or an IP address, and a port) for
// the sandbox after checking st's policy: it resolves a name itself,
// keeps the addresses the policy allows for it, and dials those by
// address, so a resolver that changes its answer between the check and
// the connection cannot take it elsewhere. The connection is tracked
// under st.
func (g *Gateway) dial(ctx context.Context, st *state, hostport string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", hostport, errBadTarget)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%q: %w", hostport, errBadTarget)
	}
	addrs, err := g.allowedAddrs(ctx, st, host)
	if err != nil {
		g.log.Debug("egress: refused", "dest", hostport, "err", err)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.DialTimeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		c, err := g.cfg.Dial(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			if !g.track(c, st) {
				return nil, fmt.Errorf("%s: %w", hostport, net.ErrClosed)
			}
			g.log.Debug("egress: connected", "dest", hostport, "addr", a)
			return &trackedConn{Conn: c, g: g}, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connect to %s: %w", hostport, errors.Join(errs...))
}

// allowedAddrs returns the addresses of host (a name or an IP literal)
// that st's policy lets the sandbox connect to, or an error wrapping
// errNotAllowed or errResolve.
func (g *Gateway) allowedAddrs(ctx context.Context, st *state, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() == "" && (st.p.AllowsAddr(ip) || st.p.AllowsConn(st.mem.name(ip), ip)) {
			return []netip.Addr{ip.Unmap()}, nil
		}
		return nil, fmt.Errorf("%s: %w", host, errNotAllowed)
	}
	if !st.p.Resolvable(host) {
		return nil, fmt.Errorf("%s: %w", host, errNotAllowed)
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	// As an absolute name: the server's search domains are not the
	// sandbox's business.
	ips, err := g.resolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, ".")+".")
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", host, errResolve, err)
	}
	var ok []netip.Addr
	for _, ip := range ips {
		if st.p.AllowsConn(host, ip) {
			ok = append(ok, ip.Unmap())
		}
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("%s: %w", host, errNotAllowed)
	}
	return ok, nil
}

// trackedConn is an upstream connection that forgets itself at Close.
type trackedConn struct {
	net.Conn
	g    *Gateway
	once sync.Once
}

// Close closes the connection and untracks it.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.g.untrack(c.Conn) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// isRefused reports whether a dial error is a refused connection.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// maxRemembered bounds the addresses a gateway remembers its resolver
// gave out.
const maxRemembered = 4096

// addrMemory remembers which name each address the gateway's resolver
// answered belongs to, so that a connection by address to it is judged
// as a connection to that name. It forgets everything when full.
type addrMemory struct {
	mu  sync.Mutex
	max int
	m   map[netip.Addr]string
}

// newAddrMemory returns an empty memory of at most max addresses.
func newAddrMemory(max int) *addrMemory {
	return &addrMemory{max: max, m: map[netip.Addr]string{}}
}

// remember records that name resolved to ip.
func (m *addrMemory) remember(name string, ip netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.max {
		clear(m.m)
	}
	m.m[ip.Unmap()] = name
}

// name returns the name ip was given for, or "".
func (m *addrMemory) name(ip netip.Addr) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[ip.Unmap()]
}
