//go:build !linux

package nsdial

import (
	"context"
	"errors"
	"net"
)

// errUnsupported: network namespaces are Linux's.
var errUnsupported = errors.New("network namespaces exist only on Linux")

// DialContext fails outside Linux.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: errUnsupported}
}

// Listen fails outside Linux.
func (c *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Err: errUnsupported}
}

// ListenPacket fails outside Linux.
func (c *ListenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Err: errUnsupported}
}
