package server

// The metrics extension: GET /metrics in the Prometheus text format.

import (
	"context"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

var noMetrics = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: this server does not serve metrics"}

// GetMetrics answers the metrics.
func (h *handlers) GetMetrics(ctx context.Context, req noxapi.GetMetricsRequestObject) (noxapi.GetMetricsResponseObject, error) {
	return noMetrics, nil
}
