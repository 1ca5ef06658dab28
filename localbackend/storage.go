package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/noxrunner/nox/internal/quantity"
)

// errUsageCapped stops a usage walk that reached its cap.
var errUsageCapped = errors.New("usage cap reached")

// diskUsageUpTo returns the disk space allocated to dir's entries (links
// not followed), stopping as soon as the sum exceeds limit: the cost of a
// walk over a workspace far above its limit is bounded by the entries
// visited before the limit is reached. capped reports such an early stop.
func diskUsageUpTo(dir string, limit int64) (used int64, capped bool, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			used += st.Blocks * 512
		} else {
			used += fi.Size()
		}
		if used > limit {
			return errUsageCapped
		}
		return nil
	})
	if errors.Is(err, errUsageCapped) {
		return used, true, nil
	}
	return used, false, err
}

// storageNote is the note replacing the runtime's "ephemeralStorage is
// not enforced" when the store monitors workspace usage.
func storageNote(interval time.Duration) string {
	return fmt.Sprintf("ephemeralStorage: enforced by monitoring, like Kubernetes: every %v the workspace's disk usage is measured; above the limit every process of the sandbox is killed (a running exec ends with exit code 137 and a note on stderr) and uploads are refused (413) until files are deleted. Usage can overshoot the limit by what the sandbox writes in one interval; single files are capped by RLIMIT_FSIZE and the private /tmp is a separate size-limited tmpfs", interval)
}

// withStorageMonitoring rewrites a runtime report for a store that
// monitors workspace usage.
func withStorageMonitoring(notes, unenforced []string, interval time.Duration) ([]string, []string) {
	unenforced = slices.DeleteFunc(slices.Clone(unenforced), func(s string) bool { return s == "ephemeralStorage" })
	notes = slices.DeleteFunc(slices.Clone(notes), func(s string) bool {
		return len(s) > len("ephemeralStorage:") && s[:len("ephemeralStorage:")] == "ephemeralStorage:"
	})
	return append(notes, storageNote(interval)), unenforced
}

// storageMonitor checks the storage of every running sandbox every
// StorageCheckInterval until ctx is cancelled.
func (s *store) storageMonitor(ctx context.Context) {
	defer close(s.monitorDone)
	t := time.NewTicker(s.cfg.StorageCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.checkStorage(ctx)
		}
	}
}

// floorSlack is the growth above its lowest usage that a sandbox over its
// storage limit is allowed: the file system's own bookkeeping (directory
// blocks, blocks allocated late for data written before the kill) may add
// a few blocks while the sandbox deletes files.
const floorSlack = 1 << 20

// checkStorage measures the workspace of every sandbox whose environment
// runs, one after another, and kills the processes of those above their
// limit. While a sandbox stays above its limit it may only shrink: growth
// beyond the lowest usage seen since the last kill is killed again, so
// deleting files (even from a new command) works.
func (s *store) checkStorage(ctx context.Context) {
	type target struct {
		b     *box
		env   environment
		key   string
		lim   int64
		floor int64 // b.overFloor when the check began
	}
	var ts []target
	s.mu.Lock()
	for _, b := range s.boxes {
		if b.env != nil && !b.deleting && b.creating == nil && b.meta.StorageBytes > 0 {
			ts = append(ts, target{b, b.env, b.meta.Key, b.meta.StorageBytes, b.overFloor})
		}
	}
	s.mu.Unlock()
	for _, t := range ts {
		if ctx.Err() != nil {
			return
		}
		if !t.env.Alive() {
			continue
		}
		// Walk up to twice the limit, enough to see growth past it; above
		// the limit, up to the lowest usage seen since the kill (plus
		// floorSlack): a walk that stops early there has seen growth, one
		// that does not has measured the shrinking usage exactly.
		walkCap := 2 * t.lim
		if t.floor > 0 {
			walkCap = t.floor + floorSlack
		}
		used, capped, err := diskUsageUpTo(s.workspacePath(t.key), walkCap)
		if err != nil {
			s.log.Warn("measuring workspace usage", "sessionId", t.b.meta.SessionID, "err", err)
			continue
		}
		s.mu.Lock()
		kill := false
		switch {
		case used <= t.lim && !capped:
			t.b.overFloor = 0
		case t.b.overFloor == 0 || used > t.b.overFloor+floorSlack || capped:
			kill = true
		default:
			t.b.overFloor = min(t.b.overFloor, used) // shrinking: fine
		}
		s.mu.Unlock()
		if kill {
			s.killForStorage(t.b, t.env, t.lim)
		}
	}
}

// killForStorage stops env (every process of the sandbox) because its
// workspace exceeds limit. The environment is rebuilt on next use.
func (s *store) killForStorage(b *box, env environment, limit int64) {
	b.startMu.Lock()
	s.mu.Lock()
	if b.env != env || b.deleting {
		s.mu.Unlock()
		b.startMu.Unlock()
		return // replaced or deleted meanwhile
	}
	b.storageKills++
	b.env = nil
	id, key := b.meta.SessionID, b.meta.Key
	s.mu.Unlock()
	err := env.Stop()
	b.startMu.Unlock()
	// The floor is measured whole (a walk's cost is in its entries, not
	// their bytes): a capped floor would make every later check kill
	// again, even while the sandbox deletes files.
	used, _ := diskUsage(s.workspacePath(key))
	s.mu.Lock()
	b.overFloor = max(used, limit+1)
	s.mu.Unlock()
	s.log.Warn("sandbox exceeded its ephemeral storage limit; every process killed",
		"sessionId", id, "limit", quantity.FormatBytes(limit), "used", used, "stopErr", err)
}

// storageRoom returns the room left in sandbox b's workspace, or an
// ErrTooLarge error while it is at or above its limit (uploads are refused
// until files are deleted).
func (s *store) storageRoom(b *box) (int64, error) {
	q := b.meta.StorageBytes
	used, err := diskUsage(s.workspacePath(b.meta.Key))
	if err != nil {
		return 0, fmt.Errorf("measure workspace: %w", err)
	}
	if used >= q {
		return 0, fmt.Errorf("ephemeral storage limit %s exceeded (the workspace holds %d bytes): delete files first: %w", quantity.FormatBytes(q), used, ErrTooLarge)
	}
	return q - used, nil
}

// storageKilledNote is the stderr note of a command killed by the monitor.
func storageKilledNote(limit int64) string {
	return fmt.Sprintf("nox: ephemeral storage limit %s exceeded; processes killed\n", quantity.FormatBytes(limit))
}
