//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"net"
)

// DialPort is ErrNoNetwork outside Linux: the only tier, TierNoneUnsafe,
// shares the host's network.
func (s *Sandbox) DialPort(ctx context.Context, port int) (net.Conn, error) {
	return nil, fmt.Errorf("port %d: %w", port, ErrNoNetwork)
}
