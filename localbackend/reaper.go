package localbackend

import (
	"context"
	"errors"
	"time"
)

// reaper deletes expired sandboxes and flushes changed metadata every
// ReaperInterval until ctx is cancelled.
func (s *store) reaper(ctx context.Context) {
	defer close(s.reaperDone)
	t := time.NewTicker(s.cfg.ReaperInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reap()
			s.flush()
		}
	}
}

// reap deletes every expired sandbox that has no operation in flight but
// downloads (which the deletion cuts).
func (s *store) reap() {
	expired := func(b *box) bool {
		// Downloads in flight (cuts) do not keep it: deleting ends them.
		return !b.deleting && b.creating == nil && b.busy <= len(b.cuts) && !s.now().Before(b.meta.expiresAt())
	}
	var ids []string
	s.mu.Lock()
	for id, b := range s.boxes {
		if expired(b) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		// Checked again under the lock: it may have been used meanwhile.
		removed, err := s.removeIf(id, expired)
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("reaping sandbox", "sessionId", id, "err", err)
		} else if removed {
			s.reaped.Add(1)
			s.log.Info("sandbox expired and removed", "sessionId", id)
		}
	}
}
