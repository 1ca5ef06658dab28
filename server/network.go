package server

// The network.egress extension: a sandbox's egress policy.

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/egress"
)

var noNetwork = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the network.egress extension"}

// GetNetwork answers a sandbox's egress policy: the one in force, mode
// none when the backend reports none.
func (h *handlers) GetNetwork(ctx context.Context, req noxapi.GetNetworkRequestObject) (noxapi.GetNetworkResponseObject, error) {
	if h.network == nil {
		return noNetwork, nil
	}
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	s, err := h.b.Get(ctx, req.SessionID)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	p := driver.NetworkPolicy{Egress: api.EgressNone}
	if s.Network != nil {
		p = *s.Network
	}
	return noxapi.GetNetwork200JSONResponse(genNetwork(p)), nil
}

// SetNetwork replaces a sandbox's egress policy.
func (h *handlers) SetNetwork(ctx context.Context, req noxapi.SetNetworkRequestObject) (noxapi.SetNetworkResponseObject, error) {
	if h.network == nil {
		return noNetwork, nil
	}
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	p := networkPolicy(*req.Body)
	if err := checkNetwork(p, "", h.info.Limits); err != nil {
		return h.errorFor(ctx, err), nil
	}
	got, err := h.network.SetNetwork(ctx, req.SessionID, p)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.SetNetwork200JSONResponse(genNetwork(got)), nil
}

// createNetwork checks the network field of a create request: nil when
// absent; checked and normalised when the backend serves network.egress
// (served); otherwise mode none is ignored and any other mode refused.
func createNetwork(r *noxapi.NetworkPolicy, served bool, l driver.Limits) (*driver.NetworkPolicy, error) {
	if r == nil {
		return nil, nil
	}
	p := networkPolicy(*r)
	if !served {
		if p.Egress != api.EgressNone {
			return nil, invalid("network.egress: %q: the backend does not implement network.egress (only mode none, the default, is accepted)", p.Egress)
		}
		return nil, nil
	}
	if err := checkNetwork(p, "network.", l); err != nil {
		return nil, err
	}
	return &p, nil
}

// checkNetwork checks a policy against the backend's permitted modes and
// rule count, then its syntax; fields are named with prefix ("network.",
// or "" for setNetwork).
func checkNetwork(p driver.NetworkPolicy, prefix string, l driver.Limits) error {
	if len(l.EgressModes) > 0 && !slices.Contains(l.EgressModes, p.Egress) {
		return invalid("%segress: mode %q is not permitted by this backend; permitted: %s", prefix, p.Egress, strings.Join(l.EgressModes, ", "))
	}
	if n := len(p.Allow) + len(p.Deny); l.MaxEgressRules > 0 && n > l.MaxEgressRules {
		return invalid("%sallow: %d entries in allow and deny together exceed the limit of %d (maxEgressRules)", prefix, n, l.MaxEgressRules)
	}
	return egress.Validate(p, prefix)
}

// networkPolicy converts the contract's policy to the driver's: an absent
// mode is none, absent lists are empty.
func networkPolicy(r noxapi.NetworkPolicy) driver.NetworkPolicy {
	p := driver.NetworkPolicy{Egress: api.EgressNone, Allow: slices.Clone(r.Allow), Deny: slices.Clone(r.Deny)}
	if r.Egress != nil && *r.Egress != "" {
		p.Egress = string(*r.Egress)
	}
	return p
}

// genNetwork converts a policy to the contract's type; an empty mode is
// none.
func genNetwork(p driver.NetworkPolicy) noxapi.NetworkPolicy {
	mode := noxapi.NetworkPolicyEgress(p.Egress)
	if mode == "" {
		mode = noxapi.NetworkPolicyEgressNone
	}
	return noxapi.NetworkPolicy{Egress: &mode, Allow: slices.Clone(p.Allow), Deny: slices.Clone(p.Deny)}
}
