package server

// The network.egress extension: a sandbox's egress policy.

import (
	"context"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

var noNetwork = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the network.egress extension"}

// GetNetwork answers a sandbox's egress policy.
func (h *handlers) GetNetwork(ctx context.Context, req noxapi.GetNetworkRequestObject) (noxapi.GetNetworkResponseObject, error) {
	return noNetwork, nil
}

// SetNetwork replaces a sandbox's egress policy.
func (h *handlers) SetNetwork(ctx context.Context, req noxapi.SetNetworkRequestObject) (noxapi.SetNetworkResponseObject, error) {
	return noNetwork, nil
}
