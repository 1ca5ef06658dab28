package localbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// netnsDialer returns a dialer whose sockets are made in the network
// namespace at path (Config.EgressNetns).
func netnsDialer(path string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, fmt.Errorf("dial %s in network namespace %s: %w", address, path, errors.ErrUnsupported)
	}
}
