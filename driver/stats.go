package driver

import "context"

// Statter is the optional interface of a backend that reports its figures
// for GET /metrics (extension metrics). The server counts what it sees
// itself (requests, exec results, rejections, bytes moved) and asks the
// backend, at each scrape, for what only the backend knows.
type Statter interface {
	// Stats returns the backend's figures now.
	Stats(ctx context.Context) (Stats, error)
}

// Stats are a backend's figures at one moment.
type Stats struct {
	// Sandboxes and Processes are how many exist now (processes: of the
	// processes extension, running).
	Sandboxes, Processes int
	// PoolReady and PoolCapacity are the create pool's ready environments
	// and its size (0 and 0 without a pool).
	PoolReady, PoolCapacity int
	// Reaped counts the sandboxes removed on expiry since the backend
	// started.
	Reaped uint64
	// Usage is the resource use of each sandbox with a running
	// environment, by session id.
	Usage map[string]Usage
}
