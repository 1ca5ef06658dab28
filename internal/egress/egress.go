// Package egress is nox's egress policy engine and the gateway that
// enforces it for one sandbox: a DNS resolver that answers only the names
// a policy allows, and a proxy (HTTP CONNECT, absolute-URI HTTP and
// SOCKS5 on one port) that dials on the sandbox's behalf after checking
// each destination. The sandbox itself has no route out; the gateway's
// sockets live in the sandbox's network namespace and its upstream
// connections in the server's, so the policy is enforced where the
// sandbox cannot reach.
package egress

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// The gateway's addresses inside a sandbox's network namespace.
var (
	// ResolverAddr is where the gateway's DNS resolver listens (UDP);
	// the sandbox's /etc/resolv.conf names it.
	ResolverAddr = netip.MustParseAddrPort("127.0.0.53:53")
	// ProxyAddr is where the gateway's proxy listens (TCP): HTTP CONNECT,
	// absolute-URI HTTP requests and SOCKS5.
	ProxyAddr = netip.MustParseAddrPort("127.0.0.53:3128")
)

// ResolvConf is the /etc/resolv.conf of a sandbox with a gateway.
const ResolvConf = "nameserver 127.0.0.53\noptions edns0\n"

// ProxyEnv returns the environment that points a command's HTTP, HTTPS
// and SOCKS clients at the gateway's proxy (upper- and lower-case forms),
// with NO_PROXY keeping the sandbox's own loopback direct.
func ProxyEnv() map[string]string {
	httpProxy := "http://" + ProxyAddr.String()
	socks := "socks5h://" + ProxyAddr.String()
	const noProxy = "localhost,127.0.0.1,::1"
	return map[string]string{
		"HTTP_PROXY": httpProxy, "http_proxy": httpProxy,
		"HTTPS_PROXY": httpProxy, "https_proxy": httpProxy,
		"ALL_PROXY": socks, "all_proxy": socks,
		"NO_PROXY": noProxy, "no_proxy": noProxy,
	}
}

// Rules are an operator's bounds on the policies of tenants.
type Rules struct {
	// Modes are the permitted modes; empty permits all three.
	Modes []string
	// MaxRules caps len(Allow)+len(Deny); 0: no cap.
	MaxRules int
	// Open are ranges otherwise never reachable (loopback, private,
	// link-local, metadata, shared, the host's own addresses) that the
	// operator lets policies reach: an address in one of them is allowed
	// when the policy allows it.
	Open []netip.Prefix
	// Permit, when non-empty, bounds what a tenant may allow: every Allow
	// entry must fall within one of these entries (a name under a
	// wildcard, a prefix inside a prefix), and mode open is refused.
	Permit []string
	// HostAddrs are the host's own addresses (the caller lists them, from
	// net.InterfaceAddrs for instance, and adds the API server's): they
	// are forbidden like the ranges of Forbidden unless Open covers them.
	HostAddrs []netip.Addr
}

// Config configures a Gateway. The zero value is usable.
type Config struct {
	// Dial makes upstream connections; nil: a net.Dialer. Tests point it
	// into a network namespace of their own. The gateway only ever asks
	// it for IP addresses it has checked, never for names.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Resolver resolves names upstream; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// MaxConns caps the proxy connections the gateway holds open at once;
	// 0: DefaultMaxConns.
	MaxConns int
	// HeaderTimeout bounds the reading of a proxy request's headers or a
	// SOCKS5 handshake; 0: DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// DialTimeout bounds an upstream connection attempt; 0:
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger receives the gateway's decisions at debug level; nil: none.
	Logger *slog.Logger
}

// Defaults of Config's zero fields.
const (
	DefaultMaxConns      = 256
	DefaultHeaderTimeout = 10 * time.Second
	DefaultDialTimeout   = 10 * time.Second
)
