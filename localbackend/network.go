package localbackend

// Extension network.egress: a sandbox's egress policy, persisted with its
// metadata and enforced by its gateway (gateway.go).

import (
	"context"
	"fmt"
	"slices"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/egress"
)

// netSpec is a sandbox's egress policy as persisted in its metadata: the
// policy as the tenant set it.
type netSpec struct {
	Egress string   `json:"egress"`
	Allow  []string `json:"allow,omitempty"`
	Deny   []string `json:"deny,omitempty"`
}

// specOf returns the persisted form of p.
func specOf(p *egress.Policy) *netSpec {
	sp := p.Spec()
	return &netSpec{Egress: sp.Egress, Allow: slices.Clone(sp.Allow), Deny: slices.Clone(sp.Deny)}
}

// policy returns n as a driver policy (nil: mode none).
func (n *netSpec) policy() *driver.NetworkPolicy {
	if n == nil {
		return &driver.NetworkPolicy{Egress: api.EgressNone}
	}
	return &driver.NetworkPolicy{Egress: n.Egress, Allow: slices.Clone(n.Allow), Deny: slices.Clone(n.Deny)}
}

// networkBackend is the driver of a backend whose sandboxes have network
// namespaces of their own: it enforces egress policies (driver.Network).
type networkBackend struct{ driverBackend }

var _ driver.Network = networkBackend{}

// SetNetwork replaces sandbox id's egress policy (see store.setNetwork).
func (d networkBackend) SetNetwork(ctx context.Context, id string, p driver.NetworkPolicy) (driver.NetworkPolicy, error) {
	return d.b.store.setNetwork(ctx, id, p)
}

// createPolicy compiles the policy of a create (nil: none). A backend
// without the extension accepts mode none only.
func (s *store) createPolicy(p *driver.NetworkPolicy) (*egress.Policy, error) {
	if s.egress == nil {
		if p != nil && p.Egress != "" && p.Egress != api.EgressNone {
			return nil, fmt.Errorf("network.egress: this backend's isolation tier shares the host's network and cannot enforce egress policies: %w", ErrInvalid)
		}
		return nil, nil
	}
	if p == nil {
		return nil, nil // none, with nothing to check
	}
	return s.egress.compile(p, "network.")
}

// loadPolicy compiles the persisted policy of a sandbox being loaded. A
// policy the operator's rules no longer permit becomes none (logged).
func (s *store) loadPolicy(b *box) {
	if s.egress == nil || b.meta.Network == nil {
		return
	}
	p, err := s.egress.compile(b.meta.Network.policy(), "network.")
	if err != nil {
		s.log.Warn("the sandbox's egress policy is no longer permitted; it is now none", "sessionId", b.meta.SessionID, "err", err)
		p, err = s.egress.compile(nil, "network.")
		if err != nil {
			return
		}
		b.meta.Network = specOf(p)
		b.dirty = true
	}
	b.policy = p
}

// setNetwork replaces sandbox id's policy and returns the policy now in
// force. It counts as activity and never starts the environment: a
// running one gets a gateway (mode none before), a new policy in its
// gateway (which closes the connections it holds), or loses its gateway
// (mode none now); a stopped one uses the policy when it starts again.
// The policy is saved before it takes effect: a failed write changes
// nothing.
func (s *store) setNetwork(ctx context.Context, id string, np driver.NetworkPolicy) (driver.NetworkPolicy, error) {
	if s.egress == nil {
		return driver.NetworkPolicy{}, fmt.Errorf("this backend cannot enforce egress policies: %w", ErrUnavailable)
	}
	p, err := s.egress.compile(&np, "")
	if err != nil {
		return driver.NetworkPolicy{}, err
	}
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	if err == nil {
		b.busy++
	}
	s.mu.Unlock()
	if err != nil {
		return driver.NetworkPolicy{}, err
	}
	defer s.release(b, false)
	b.startMu.Lock()
	defer b.startMu.Unlock()
	s.mu.Lock()
	env, gw := b.env, b.gw
	s.mu.Unlock()
	var fresh *gateway
	if egressOn(p) && gw == nil && env != nil && env.Alive() {
		if fresh, err = s.egress.openGateway(ctx, env, p, s.log.With("sessionId", id)); err != nil {
			return driver.NetworkPolicy{}, fmt.Errorf("sandbox %q: %w", id, err)
		}
	}
	if _, err := s.saveMeta(b, func(m *meta) { m.Network = specOf(p) }); err != nil {
		fresh.close()
		return driver.NetworkPolicy{}, err
	}
	s.mu.Lock()
	b.policy = p
	var stale *gateway
	switch {
	case fresh != nil && b.env == env:
		b.gw = fresh
	case fresh != nil:
		stale = fresh // the environment stopped meanwhile
	case !egressOn(p):
		stale, b.gw = b.gw, nil
	default:
		b.gw.setPolicy(p)
	}
	s.mu.Unlock()
	stale.close()
	return *specOf(p).policy(), nil
}

// startGateway returns the gateway env needs for b's policy: nil when
// the policy is none.
func (s *store) startGateway(ctx context.Context, b *box, env environment) (*gateway, error) {
	s.mu.Lock()
	p, id := b.policy, b.meta.SessionID
	s.mu.Unlock()
	if s.egress == nil || !egressOn(p) {
		return nil, nil
	}
	return s.egress.openGateway(ctx, env, p, s.log.With("sessionId", id))
}

// baseEnv returns the variables every command of b starts with beyond
// the defaults: the proxy variables while its policy is not none.
func (s *store) baseEnv(b *box) map[string]string {
	s.mu.Lock()
	p := b.policy
	s.mu.Unlock()
	if !egressOn(p) {
		return nil
	}
	return egress.ProxyEnv()
}

// takeEnvLocked detaches b's environment and its gateway, which the
// caller then stops and closes; s.mu is held.
func (b *box) takeEnvLocked() (environment, *gateway) {
	env, gw := b.env, b.gw
	b.env, b.gw = nil, nil
	return env, gw
}
