package sandbox

import (
	"context"
	"errors"
	"net/netip"
	"os"
)

// Listen returns a socket bound at addr inside the sandbox's network
// namespace ("tcp": listening; "udp": bound), made by the init and handed
// to the server, which serves it from outside the sandbox.
func (s *Sandbox) Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) {
	return nil, errors.New("listen: not built yet")
}
