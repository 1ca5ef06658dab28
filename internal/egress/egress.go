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
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/noxrunner/nox/driver"
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
	panic("egress: not built yet")
}

// Validate checks a policy's syntax: a known mode and entries that are
// domain names, "*." wildcards, IP addresses or CIDR prefixes. Errors
// wrap driver.ErrInvalidArgument and name the field with prefix ("egress",
// prefix+"allow[2]").
func Validate(p driver.NetworkPolicy, prefix string) error {
	return errors.New("egress: not built yet")
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
}

// Policy is a validated policy compiled against an operator's Rules.
// It is immutable and safe for concurrent use.
type Policy struct{}

// Compile validates p against the rules. Errors wrap
// driver.ErrInvalidArgument and name the field with prefix.
func (r Rules) Compile(p driver.NetworkPolicy, prefix string) (*Policy, error) {
	return nil, errors.New("egress: not built yet")
}

// Spec returns the policy as the tenant set it.
func (p *Policy) Spec() driver.NetworkPolicy { return driver.NetworkPolicy{} }

// Mode returns the policy's mode (api.Egress*).
func (p *Policy) Mode() string { return "" }

// Config configures a Gateway.
type Config struct {
	// Dial makes upstream connections; nil: a net.Dialer. Tests point it
	// into a network namespace of their own.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Resolver resolves names upstream; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// MaxConns caps the connections the gateway holds open at once.
	MaxConns int
	// Logger receives the gateway's decisions at debug level; nil: none.
	Logger *slog.Logger
}

// Gateway enforces one sandbox's policy.
type Gateway struct{}

// NewGateway returns a gateway enforcing policy p.
func NewGateway(cfg Config, p *Policy) *Gateway { return &Gateway{} }

// SetPolicy replaces the policy; connections opened before are closed.
func (g *Gateway) SetPolicy(p *Policy) {}

// ServeDNS answers DNS queries arriving on pc until pc or the gateway is
// closed.
func (g *Gateway) ServeDNS(pc net.PacketConn) error { return errors.New("egress: not built yet") }

// ServeProxy serves proxy connections accepted on l until l or the
// gateway is closed.
func (g *Gateway) ServeProxy(l net.Listener) error { return errors.New("egress: not built yet") }

// Close stops the gateway: its listeners and every connection.
func (g *Gateway) Close() error { return nil }
