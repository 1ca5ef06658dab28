package server

// The ports extension's handlers. Until they are written, the operations
// answer 404 like any extension a backend does not implement.

import (
	"context"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

var noPorts = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the ports extension"}

// ProxyPort is not implemented yet.
func (h *handlers) ProxyPort(ctx context.Context, req noxapi.ProxyPortRequestObject) (noxapi.ProxyPortResponseObject, error) {
	return noPorts, nil
}

// OpenTunnel is not implemented yet.
func (h *handlers) OpenTunnel(ctx context.Context, req noxapi.OpenTunnelRequestObject) (noxapi.OpenTunnelResponseObject, error) {
	return noPorts, nil
}

// CreatePreview is not implemented yet.
func (h *handlers) CreatePreview(ctx context.Context, req noxapi.CreatePreviewRequestObject) (noxapi.CreatePreviewResponseObject, error) {
	return noPorts, nil
}
