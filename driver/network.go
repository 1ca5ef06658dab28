package driver

import "context"

// NetworkPolicy is a sandbox's egress policy (extension network.egress):
// what the sandbox may connect to outside itself.
type NetworkPolicy struct {
	// Egress is the mode: api.EgressNone, api.EgressAllowlist or
	// api.EgressOpen.
	Egress string
	// Allow lists the destinations of mode allowlist, Deny the ones
	// refused in modes allowlist and open: domain names, "*." wildcards,
	// IP addresses and CIDR prefixes (see package internal/egress).
	Allow, Deny []string
}

// Network is the optional interface of a backend that enforces egress
// policies. The server checks a policy's syntax, its mode against
// Limits.EgressModes and its length against Limits.MaxEgressRules before
// a backend sees it, and advertises api.ExtNetworkEgress only when the
// Backend implements Network and lists api.ExtNetworkEgress in
// Info().Extensions. Such a backend also honours CreateRequest.Network
// and reports Sandbox.Network.
type Network interface {
	// SetNetwork replaces sandbox id's policy, effective at once for new
	// connections, and returns the policy now in force. A policy the
	// operator's bounds refuse is ErrInvalidArgument naming the field
	// ("allow[2]"); an unknown sandbox is ErrNotFound.
	SetNetwork(ctx context.Context, id string, p NetworkPolicy) (NetworkPolicy, error)
}
