package localbackend

// The egress gateways of extension network.egress: a sandbox's network
// namespace has no route out; while its environment runs with a policy
// other than none, the server serves a gateway (package internal/egress)
// on two sockets bound inside that namespace, and makes the upstream
// connections itself.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/egress"
	"github.com/noxrunner/nox/internal/nsdial"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// validateEgress checks the egress fields of a defaulted Config.
func (c *Config) validateEgress() []error {
	var errs []error
	known := []string{api.EgressNone, api.EgressAllowlist, api.EgressOpen}
	for i, m := range c.EgressModes {
		switch {
		case !slices.Contains(known, m):
			errs = append(errs, fmt.Errorf("field EgressModes: unknown mode %q (want %s, %s or %s)", m, api.EgressNone, api.EgressAllowlist, api.EgressOpen))
		case slices.Contains(c.EgressModes[:i], m):
			errs = append(errs, fmt.Errorf("field EgressModes: mode %q listed twice", m))
		}
	}
	if !slices.Contains(c.EgressModes, api.EgressNone) {
		errs = append(errs, fmt.Errorf("field EgressModes: must contain %q, the mode of a sandbox created without a policy", api.EgressNone))
	}
	for _, p := range c.EgressOpen {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("field EgressOpen: invalid prefix %q", p))
		}
	}
	if err := (egress.Rules{Permit: c.EgressPermit}).Check(); err != nil {
		errs = append(errs, fmt.Errorf("field EgressPermit: %w", err))
	}
	if c.EgressNetns != "" {
		if fi, err := os.Stat(c.EgressNetns); err != nil || !filepath.IsAbs(c.EgressNetns) || fi.IsDir() {
			errs = append(errs, fmt.Errorf("field EgressNetns: %q is not an absolute path to a network namespace", c.EgressNetns))
		}
	}
	if c.EgressResolver != "" {
		if _, err := netip.ParseAddrPort(c.EgressResolver); err != nil {
			errs = append(errs, fmt.Errorf("field EgressResolver: %q is not IP:PORT", c.EgressResolver))
		}
	}
	return errs
}

// egressSetup is what every gateway of a backend shares: the operator's
// rules and the gateway configuration (upstream dialer and resolver).
type egressSetup struct {
	rules egress.Rules
	cfg   egress.Config
}

// newEgressSetup returns the egress setup of cfg, with hostAddrs (the
// host's own addresses) forbidden to every policy.
func newEgressSetup(cfg Config, hostAddrs []netip.Addr) *egressSetup {
	dial := cfg.EgressDial
	if dial == nil && cfg.EgressNetns != "" {
		dial = (&nsdial.Dialer{Netns: cfg.EgressNetns}).DialContext
	}
	var res *net.Resolver
	if dial != nil || cfg.EgressResolver != "" {
		upstream := dial
		if upstream == nil {
			var d net.Dialer
			upstream = d.DialContext
		}
		server := cfg.EgressResolver
		res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if server != "" {
				address = server
			}
			return upstream(ctx, network, address)
		}}
	}
	return &egressSetup{
		rules: egress.Rules{
			Modes: slices.Clone(cfg.EgressModes), MaxRules: cfg.MaxEgressRules,
			Open: slices.Clone(cfg.EgressOpen), Permit: slices.Clone(cfg.EgressPermit),
			HostAddrs: hostAddrs,
		},
		cfg: egress.Config{Dial: dial, Resolver: res, MaxConns: cfg.MaxEgressConnections, Logger: cfg.Logger},
	}
}

// hostAddrs returns the addresses of the host's interfaces.
func hostAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsValid() {
			out = append(out, p.Addr().Unmap().WithZone(""))
		}
	}
	return out
}

// compile checks policy p (nil: mode none) against the operator's rules;
// errors name the field with prefix.
func (e *egressSetup) compile(p *driver.NetworkPolicy, prefix string) (*egress.Policy, error) {
	if p == nil {
		p = &driver.NetworkPolicy{Egress: api.EgressNone}
	}
	return e.rules.Compile(*p, prefix)
}

// egressOn reports whether policy p lets the sandbox out at all: it needs
// a gateway, and its commands the proxy variables.
func egressOn(p *egress.Policy) bool {
	return p != nil && p.Mode() != api.EgressNone && p.Mode() != ""
}

// netListener is an environment that can bind sockets in its network
// namespace: the sandbox runtime's in the tiers with one.
type netListener interface {
	Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error)
}

// gateway is a running egress gateway and its two sockets.
type gateway struct {
	gw      *egress.Gateway
	pc      net.PacketConn
	ln      net.Listener
	closing atomic.Bool
	done    sync.WaitGroup
}

// openGateway serves a gateway enforcing p on sockets bound in env's
// network namespace. An address a process of the sandbox holds is an
// ErrConflict error naming it.
func (e *egressSetup) openGateway(ctx context.Context, env environment, p *egress.Policy, log *slog.Logger) (*gateway, error) {
	l, ok := env.(netListener)
	if !ok {
		return nil, fmt.Errorf("this backend's runtime cannot serve an egress gateway: %w", ErrUnavailable)
	}
	f, err := listenIn(ctx, l, "udp", egress.ResolverAddr)
	if err != nil {
		return nil, err
	}
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("egress gateway: %w", err)
	}
	f, err = listenIn(ctx, l, "tcp", egress.ProxyAddr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("egress gateway: %w", err)
	}
	cfg := e.cfg
	cfg.Logger = log
	g := &gateway{gw: egress.NewGateway(cfg, p), pc: pc, ln: ln}
	g.done.Add(2)
	go g.serve(log, "dns", func() error { return g.gw.ServeDNS(pc) })
	go g.serve(log, "proxy", func() error { return g.gw.ServeProxy(ln) })
	return g, nil
}

// listenIn binds a socket at addr in the namespace of l.
func listenIn(ctx context.Context, l netListener, network string, addr netip.AddrPort) (*os.File, error) {
	f, err := l.Listen(ctx, network, addr)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, sandbox.ErrAddrInUse):
		return nil, fmt.Errorf("the egress gateway needs %s/%s in the sandbox, which a process of the sandbox holds: %w", addr, network, driver.ErrConflict)
	case errors.Is(err, sandbox.ErrNoNetwork):
		return nil, fmt.Errorf("egress gateway: the sandbox's isolation tier shares the host's network: %w", ErrUnavailable)
	}
	return nil, fmt.Errorf("egress gateway: listen on %s/%s in the sandbox: %w", addr, network, err)
}

// serve runs one of the gateway's servers until the gateway is closed.
func (g *gateway) serve(log *slog.Logger, what string, run func() error) {
	defer g.done.Done()
	if err := run(); err != nil && !g.closing.Load() && !errors.Is(err, net.ErrClosed) {
		log.Error("egress gateway stopped", "server", what, "err", err)
	}
}

// setPolicy makes the gateway enforce p (which is not none).
func (g *gateway) setPolicy(p *egress.Policy) {
	if g != nil {
		g.gw.SetPolicy(p)
	}
}

// close stops the gateway and waits for its servers; nil does nothing.
func (g *gateway) close() {
	if g == nil {
		return
	}
	g.closing.Store(true)
	_ = g.gw.Close()
	_ = g.pc.Close()
	_ = g.ln.Close()
	g.done.Wait()
}
