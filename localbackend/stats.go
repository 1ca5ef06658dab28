package localbackend

// The sandboxes.usage extension and the figures of GET /metrics
// (driver.Statter).

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

var _ driver.Statter = driverBackend{}

// usager is an environment that measures its resource use (a runtime
// sandbox: its cgroups).
type usager interface {
	Usage() sandbox.Usage
}

// usageOf measures sandbox b (of storage key key), whose environment is
// env (nil: stopped): CPU, memory and pids from its cgroups while it
// runs; storage from its image's file system, or else the monitor's last
// complete measurement. It reads a few small files and never walks the
// workspace; what it cannot measure is negative.
func (s *store) usageOf(b *box, key string, env environment) driver.Usage {
	u := driver.Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: -1}
	if us, ok := env.(usager); ok && env.Alive() {
		su := us.Usage()
		u.CPUSeconds, u.MemoryBytes, u.Pids = su.CPUSeconds, su.MemoryBytes, su.Pids
	}
	if s.onImage(key) {
		var st unix.Statfs_t
		if unix.Statfs(s.fsPath(key), &st) == nil && st.Blocks >= st.Bfree {
			u.StorageBytes = int64(st.Blocks-st.Bfree) * int64(st.Bsize) // Bsize is uint32 on some systems
		}
		return u
	}
	s.mu.Lock()
	if b.storageKnown {
		u.StorageBytes = b.storageUsed
	}
	s.mu.Unlock()
	return u
}

// Stats reports the backend's figures: its sandboxes, the processes
// running, the sandboxes reaped and the usage of each sandbox whose
// environment runs.
func (d driverBackend) Stats(ctx context.Context) (driver.Stats, error) {
	s := d.b.store
	type running struct {
		id, key string
		b       *box
		env     environment
	}
	var all []running
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return driver.Stats{}, errors.New("backend is closed")
	}
	for id, b := range s.boxes {
		if b.creating == nil && !b.deleting {
			all = append(all, running{id, b.meta.Key, b, b.env})
		}
	}
	s.mu.Unlock()
	st := driver.Stats{Sandboxes: len(all), Reaped: s.reaped.Load(), Usage: map[string]driver.Usage{}}
	for _, r := range all {
		if err := ctx.Err(); err != nil {
			return driver.Stats{}, err
		}
		st.Processes += r.b.procs.Running()
		if r.env != nil && r.env.Alive() {
			st.Usage[r.id] = s.usageOf(r.b, r.key, r.env)
		}
	}
	return st, nil
}
