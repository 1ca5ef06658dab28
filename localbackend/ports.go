package localbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

var _ driver.Ports = driverBackend{}

// DialPort connects to port on the loopback of sandbox id's own network
// namespace (see store.dialPort).
func (d driverBackend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	return d.b.store.dialPort(ctx, id, port)
}

// hasNetworkNamespace reports whether the sandboxes of tier have a
// network of their own, whose ports the ports extension may reach: the
// host tiers share the host's, where dialing a port would reach the
// host's services.
func hasNetworkNamespace(tier sandbox.Tier) bool {
	return tier == sandbox.TierNamespaces || tier == sandbox.TierRootNamespaces
}

// portDialer is an environment that can connect to a port of its own
// loopback: the sandbox runtime's in the tiers with a network namespace.
type portDialer interface {
	DialPort(ctx context.Context, port int) (net.Conn, error)
}

// dialPort connects to port on sandbox id's loopback. It never starts
// the sandbox's environment: a stopped sandbox has nothing listening.
// Making the connection counts as activity; the open connection keeps
// the sandbox's expiry away no more than a download does: a delete or
// expiry closes it.
func (s *store) dialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	b, _, err := s.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	env := b.env
	s.mu.Unlock()
	c, err := dialEnv(ctx, env, port)
	if err != nil {
		s.release(b, false)
		return nil, err
	}
	pc := &portConn{Conn: c, s: s, b: b}
	if !s.addCut(b, pc, func() { _ = pc.Conn.Close() }) {
		_ = c.Close()
		s.release(b, false)
		return nil, notFound(id)
	}
	return pc, nil
}

// dialEnv dials port in env (nil: not running), with the driver's error
// categories.
func dialEnv(ctx context.Context, env environment, port int) (net.Conn, error) {
	if env == nil || !env.Alive() {
		return nil, fmt.Errorf("port %d: the sandbox is not running: %w", port, driver.ErrUnreachable)
	}
	d, ok := env.(portDialer)
	if !ok {
		return nil, fmt.Errorf("port %d: this backend's runtime cannot reach the sandbox's ports: %w", port, ErrUnavailable)
	}
	c, err := d.DialPort(ctx, port)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, sandbox.ErrPortRefused):
		return nil, fmt.Errorf("port %d: nothing is listening in the sandbox: %w", port, driver.ErrUnreachable)
	case errors.Is(err, sandbox.ErrStopped), errors.Is(err, sandbox.ErrSetup):
		return nil, fmt.Errorf("port %d: the sandbox is not running: %w", port, driver.ErrUnreachable)
	case errors.Is(err, sandbox.ErrNoNetwork):
		return nil, fmt.Errorf("port %d: the sandbox's isolation tier shares the host's network, so its ports are not offered: %w", port, ErrUnavailable)
	}
	return nil, fmt.Errorf("dial port %d: %w", port, err)
}

// portConn is a connection to a sandbox's port: it holds the sandbox
// until closed, and a delete or expiry of the sandbox closes it.
type portConn struct {
	net.Conn
	s    *store
	b    *box
	once sync.Once
}

// Close closes the connection and lets the sandbox go.
func (c *portConn) Close() error {
	c.once.Do(func() {
		c.s.dropCut(c.b, c)
		c.s.release(c.b, false)
	})
	return c.Conn.Close()
}
