package membackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/noxrunner/nox/driver"
)

var _ driver.Ports = (*Backend)(nil)

// DialPort connects to 127.0.0.1:port of the host. This backend is a
// test double without isolation: its sandboxes share the host's network,
// so this reaches any service listening on the host's loopback, not only
// the sandbox's. An unknown sandbox is ErrNotFound, a refused connection
// ErrUnreachable. Making the connection counts as activity; deleting or
// expiring the sandbox closes it.
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if _, err := b.lookup(id, true); err != nil {
		return nil, err
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: not between 1 and 65535: %w", port, driver.ErrInvalidArgument)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("port %d: nothing is listening in the sandbox: %w", port, driver.ErrUnreachable)
	}
	if err != nil {
		return nil, fmt.Errorf("dial port %d: %w", port, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.lookupLocked(id)
	if err != nil { // deleted meanwhile
		_ = c.Close()
		return nil, err
	}
	pc := &portConn{Conn: c, b: b, s: s}
	s.conns[pc] = true
	return pc, nil
}

// portConn is a connection of DialPort, forgotten by its sandbox when
// closed.
type portConn struct {
	net.Conn
	b    *Backend
	s    *sandbox
	once sync.Once
}

// Close closes the connection.
func (c *portConn) Close() error {
	c.once.Do(func() {
		c.b.mu.Lock()
		delete(c.s.conns, c)
		c.b.mu.Unlock()
	})
	return c.Conn.Close()
}
