package membackend

// The sandboxes.usage extension and the figures of GET /metrics
// (driver.Statter). Only storage is measured: commands are plain host
// processes without a cgroup of their own.

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

var _ driver.Statter = (*Backend)(nil)

// usage measures a sandbox's storage: the apparent size of its files in
// /workspace and /tmp, by a walk (a test double's sandboxes are small).
// CPU, memory and pids are not measured.
func (b *Backend) usage(dir string) *driver.Usage {
	if !slices.Contains(b.cfg.Extensions, api.ExtSandboxesUsage) {
		return nil
	}
	u := &driver.Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed meanwhile
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				u.StorageBytes += fi.Size()
			}
		}
		return nil
	})
	return u
}

// Stats reports the sandboxes, the processes running and, with
// sandboxes.usage, each sandbox's storage. Nothing is reaped: an expired
// sandbox is removed when it is next looked up.
func (b *Backend) Stats(ctx context.Context) (driver.Stats, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return driver.Stats{}, errors.New("backend is closed")
	}
	dirs := map[string]string{}
	var procs int
	for id, s := range b.sandboxes {
		if !s.deleted {
			dirs[id] = s.dir
			procs += s.procs.Running()
		}
	}
	b.mu.Unlock()
	st := driver.Stats{Sandboxes: len(dirs), Processes: procs}
	if !slices.Contains(b.cfg.Extensions, api.ExtSandboxesUsage) {
		return st, nil
	}
	st.Usage = make(map[string]driver.Usage, len(dirs))
	for id, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return driver.Stats{}, err
		}
		st.Usage[id] = *b.usage(dir)
	}
	return st, nil
}
