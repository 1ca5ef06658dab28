package localbackend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
)

// walkBudget is the most workspace entries the monitor visits in one
// tick, across every sandbox it measures: its cost is bounded however
// many files the sandboxes hold. A walk that needs more goes on at the
// next tick.
const walkBudget = 50000

// measureBudget bounds a whole measurement made outside the monitor (an
// upload's room, the floor after a kill): a workspace with more entries
// counts as over its limit.
const measureBudget = 1000000

// storageNote is the note replacing the runtime's "ephemeralStorage is
// not enforced" when the store monitors workspace usage.
func storageNote(interval time.Duration, kernel bool) string {
	scope := ""
	if kernel {
		scope = " for sandboxes without an image of their own (created by an older server, or whose image could not be made)"
	}
	return fmt.Sprintf("ephemeralStorage: enforced by monitoring%s, like Kubernetes: every %v the workspace's usage is measured (at most %d entries per interval across all sandboxes; every entry counts for at least %d bytes and sparse files at their apparent size); above the limit every process of the sandbox is killed (a running exec ends with exit code 137 and a note on stderr), uploads are refused (507) and commands cannot write file data (RLIMIT_FSIZE) until files are deleted. Usage can overshoot the limit by what the sandbox writes in one interval; single files are capped by RLIMIT_FSIZE and the private /tmp is a separate size-limited tmpfs", scope, interval, walkBudget, entryCharge)
}

// withStorageEnforcement rewrites a runtime report for the store's
// mechanisms: per-sandbox images (disks, when not nil) and the monitor
// (when interval > 0).
func withStorageEnforcement(notes, unenforced []string, disks diskquota.Disks, interval time.Duration) ([]string, []string) {
	if disks == nil && interval <= 0 {
		return notes, unenforced
	}
	unenforced = slices.DeleteFunc(slices.Clone(unenforced), func(s string) bool { return s == "ephemeralStorage" })
	notes = slices.DeleteFunc(slices.Clone(notes), func(s string) bool {
		return strings.HasPrefix(s, "ephemeralStorage:")
	})
	if disks != nil {
		notes = append(notes, kernelStorageNote(disks.Mechanism()))
	}
	if interval > 0 {
		notes = append(notes, storageNote(interval, disks != nil))
	}
	return notes, unenforced
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

// monitorTarget is one sandbox the monitor measures.
type monitorTarget struct {
	b     *box
	env   environment
	key   string
	lim   int64
	floor int64 // b.overFloor when the check began
}

// checkStorage goes on measuring the workspace of every sandbox without
// an image of its own whose environment runs, visiting at most walkBudget
// entries per call (walks resume at the next call; the sandbox measured
// first rotates), and judges each measurement that completes. Sandboxes
// on an image are never walked: the kernel enforces their limit.
func (s *store) checkStorage(ctx context.Context) {
	var ts []monitorTarget
	s.mu.Lock()
	for _, b := range s.boxes {
		if b.env != nil && !b.deleting && b.creating == nil && b.meta.StorageBytes > 0 && !s.onImage(b.meta.Key) {
			ts = append(ts, monitorTarget{b, b.env, b.meta.Key, b.meta.StorageBytes, b.overFloor})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(ts, func(a, b monitorTarget) int { return strings.Compare(a.key, b.key) })
	for key, w := range s.usage {
		if !slices.ContainsFunc(ts, func(t monitorTarget) bool { return t.key == key }) {
			w.close()
			delete(s.usage, key)
		}
	}
	if len(ts) == 0 {
		return
	}
	s.monitorTick++
	budget := walkBudget
	for i := range ts {
		t := ts[(s.monitorTick+i)%len(ts)]
		if ctx.Err() != nil || budget <= 0 {
			return
		}
		if !t.env.Alive() {
			continue
		}
		// Walk up to twice the limit, enough to see growth past it; above
		// the limit, up to the lowest usage seen since the kill (plus
		// floorSlack): a walk that stops early there has seen growth, one
		// that does not has measured the shrinking usage exactly.
		capAt := 2 * t.lim
		if t.floor > 0 {
			capAt = t.floor + floorSlack
		}
		w := s.usage[t.key]
		if w == nil {
			w = newUsageWalk(s.workspacePath(t.key))
			s.usage[t.key] = w
		}
		n, done, err := w.step(budget, capAt)
		budget -= n
		if !done && err == nil {
			continue // goes on at the next tick
		}
		w.close()
		delete(s.usage, t.key)
		s.judgeStorage(t, w.used, w.used > capAt, err)
	}
}

// judgeStorage acts on one measurement of t's workspace: used bytes
// (capped: the walk stopped above its cap), or err when it could not be
// measured, which counts as over the limit. While a sandbox stays above
// its limit it may only shrink: growth beyond the lowest usage seen since
// the last kill is killed again, so deleting files (even from a new
// command) works. Back under the limit, an environment built while over
// it (without write access to file data) is rebuilt at its next use.
func (s *store) judgeStorage(t monitorTarget, used int64, capped bool, err error) {
	b := t.b
	s.mu.Lock()
	if err == nil && !capped {
		b.storageUsed, b.storageKnown = used, true
	}
	kill, lift := false, false
	switch {
	case err != nil:
		kill = true
		if !b.walkFailed {
			b.walkFailed = true
			s.log.Warn("workspace usage cannot be measured; counted as over its limit", "sessionId", b.meta.SessionID, "err", err)
		}
	case used <= t.lim && !capped:
		b.overFloor = 0
		b.walkFailed = false
		lift = b.restricted && b.execs == 0 && b.env == t.env
	case b.overFloor == 0 || used > b.overFloor+floorSlack || capped:
		b.walkFailed = false
		kill = true
	default:
		b.overFloor = min(b.overFloor, used) // shrinking: fine
	}
	s.mu.Unlock()
	switch {
	case kill:
		s.killForStorage(b, t.env, t.lim)
	case lift:
		s.stopRestricted(b, t.env, 0) // rebuilt with write access at its next use
	}
}

// killForStorage stops env (every process of the sandbox) because its
// workspace exceeds limit. The environment is rebuilt on next use, without
// write access to file data until the workspace is back under its limit.
func (s *store) killForStorage(b *box, env environment, limit int64) {
	b.startMu.Lock()
	s.mu.Lock()
	if b.env != env || b.deleting {
		s.mu.Unlock()
		b.startMu.Unlock()
		return // replaced or deleted meanwhile
	}
	b.storageKills++
	_, gw := b.takeEnvLocked()
	id, key := b.meta.SessionID, b.meta.Key
	prev := b.overFloor
	if prev == 0 {
		// Over the limit from now on: an environment rebuilt before the
		// floor is measured is already restricted.
		b.overFloor = limit + 1
	}
	s.mu.Unlock()
	err := env.Stop()
	gw.close()
	b.startMu.Unlock()
	// The floor is measured whole (a walk's cost is in its entries, not
	// their bytes): a capped floor would make every later check kill
	// again, even while the sandbox deletes files. It never rises: a
	// sandbox killed again for growing keeps the floor of its first kill,
	// so repeated commands cannot ratchet its usage up.
	used, _, merr := measureUsage(s.workspacePath(key), measureBudget, 1<<62)
	s.mu.Lock()
	floor := max(used, limit+1)
	if merr != nil {
		floor = limit + 1
	}
	if prev > 0 {
		floor = min(floor, prev)
	}
	if b.overFloor > 0 { // not cleared meanwhile by a measurement under the limit
		b.overFloor = floor
	}
	s.mu.Unlock()
	s.log.Warn("sandbox exceeded its ephemeral storage limit; every process killed",
		"sessionId", id, "limit", quantity.FormatBytes(limit), "used", used, "stopErr", err)
}

// liftRestriction stops b's environment when it was built over the
// storage limit (no writing file data), the workspace is back under the
// limit and no other command runs in it: the command about to run (the
// caller's, counted in b.execs) then gets a fresh environment that may
// write. The monitor lifts it too, at its next measurement.
func (s *store) liftRestriction(b *box) {
	s.mu.Lock()
	env, restricted, alone, key, lim := b.env, b.restricted, b.execs == 1, b.meta.Key, b.meta.StorageBytes
	s.mu.Unlock()
	if !restricted || !alone || env == nil {
		return
	}
	if used, capped, err := measureUsage(s.workspacePath(key), measureBudget, lim); err != nil || capped || used > lim {
		return
	}
	s.stopRestricted(b, env, 1)
}

// stopRestricted stops env, an environment of b built over the storage
// limit, once b's workspace is back under it: when env is still b's and
// exactly execs commands are counted in it (the caller's own, about to
// run, or none). It holds b.startMu throughout, so that no start can be
// handed env (still alive, still the runtime's) while it is stopped.
func (s *store) stopRestricted(b *box, env environment, execs int) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	s.mu.Lock()
	if b.env != env || b.execs != execs || !b.restricted {
		s.mu.Unlock()
		return
	}
	_, gw := b.takeEnvLocked()
	b.overFloor, b.restricted = 0, false
	s.mu.Unlock()
	_ = env.Stop()
	gw.close()
}

// storageRoom returns the room left for an upload in the workspace of
// sandbox b, which has no image of its own: its limit less its usage and
// the bytes other uploads in progress have staged. It is an
// ErrInsufficientStorage error while the workspace is at or above its
// limit or cannot be measured (uploads are refused until files are
// deleted).
func (s *store) storageRoom(b *box) (int64, error) {
	q := b.meta.StorageBytes
	used, _, err := measureUsage(s.workspacePath(b.meta.Key), measureBudget, q)
	if err != nil {
		s.log.Warn("workspace usage cannot be measured", "sessionId", b.meta.SessionID, "err", err)
		return 0, fmt.Errorf("ephemeral storage limit %s: the workspace's usage cannot be measured: %w", quantity.FormatBytes(q), ErrInsufficientStorage)
	}
	if used >= q {
		return 0, fmt.Errorf("ephemeral storage limit %s exceeded (the workspace holds at least %d bytes): delete files first: %w", quantity.FormatBytes(q), used, ErrInsufficientStorage)
	}
	return q - used, nil
}

// stageBudget charges the bytes an upload stages to its sandbox (without
// an image) so that concurrent uploads share the room left: each byte
// written is charged before it is, and the charge is returned once the
// upload ends.
type stageBudget struct {
	s       *store
	b       *box
	room    int64 // the workspace's room when the upload began
	limit   int64
	charged int64
}

// charge reserves n more bytes, or fails with ErrInsufficientStorage.
func (g *stageBudget) charge(n int64) error {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	if g.b.uploads+n > g.room {
		return noSpaceError(g.limit)
	}
	g.b.uploads += n
	g.charged += n
	return nil
}

// release returns the upload's charge.
func (g *stageBudget) release() {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	g.b.uploads -= g.charged
	g.charged = 0
}

// storageKilledNote is the stderr note of a command killed by the monitor.
func storageKilledNote(limit int64) string {
	return fmt.Sprintf("nox: ephemeral storage limit %s exceeded; processes killed\n", quantity.FormatBytes(limit))
}
