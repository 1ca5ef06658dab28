package driver

import (
	"context"
	"net"
)

// Ports is the optional interface of a backend that implements the ports
// extension. The server builds everything the extension offers (the HTTP
// and WebSocket proxy, TCP tunnels, signed preview URLs) on DialPort, and
// advertises api.ExtPorts only when the Backend implements Ports and lists
// api.ExtPorts in Info().Extensions.
type Ports interface {
	// DialPort connects to the TCP port on the loopback interface of
	// sandbox id's own network, from outside the sandbox: the sandbox
	// needs no network access for it, and nothing but the sandbox's
	// loopback ports is reachable. An unknown sandbox is ErrNotFound;
	// nothing listening on the port is ErrUnreachable naming it. The
	// caller closes the connection; the backend closes it when the
	// sandbox ends.
	DialPort(ctx context.Context, id string, port int) (net.Conn, error)
}
