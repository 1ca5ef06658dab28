package sdk

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/noxrunner/nox/api"
)

// The extensions of resource figures.
const (
	// ExtSandboxesUsage is SandboxStatus.Usage.
	ExtSandboxesUsage = api.ExtSandboxesUsage
	// ExtMetrics is Metrics (GET /metrics).
	ExtMetrics = api.ExtMetrics
)

// maxMetricsBytes bounds the answer Metrics reads.
const maxMetricsBytes = 64 << 20

// Usage is a sandbox's resource use when its status was read (extension
// ExtSandboxesUsage). Negative fields were not measured by the backend;
// the JSON form leaves them out.
type Usage struct {
	// CPUSeconds is the CPU time its processes used since its
	// environment started.
	CPUSeconds float64
	// MemoryBytes is the memory in use now.
	MemoryBytes int64
	// Pids is the number of processes and threads running now.
	Pids int64
	// StorageBytes is what its files take in its storage.
	StorageBytes int64
}

// Metrics returns the backend's operational metrics in the Prometheus
// text format (extension ExtMetrics; ErrUnsupported without it), for
// programs that show them; a Prometheus server scrapes /metrics itself.
//
//meta:operation GET /metrics
func (c *Client) Metrics(ctx context.Context) (string, error) {
	const op = "getMetrics"
	if err := c.requireExt(ctx, op, ExtMetrics); err != nil {
		return "", err
	}
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.GetMetrics(ctx)
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("nox: %s: reading the answer: %w", op, err)
	}
	return string(body), nil
}
