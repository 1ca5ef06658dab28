//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"net/netip"
	"os"
)

// Listen is ErrNoNetwork outside Linux: the only tier, TierNoneUnsafe,
// shares the host's network.
func (s *Sandbox) Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) {
	return nil, fmt.Errorf("listen %s: %w", addr, ErrNoNetwork)
}
