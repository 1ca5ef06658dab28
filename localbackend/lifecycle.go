package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/egress"
)

// ensureTries bounds how often ensure starts over when a concurrent delete
// removes the sandbox it is creating or refreshing.
const ensureTries = 5

// ensure creates the sandbox id or refreshes an existing one, then builds
// its environment. Concurrent ensures of one id yield one sandbox. An
// existing sandbox keeps its image and limits; a non-zero TTL replaces
// its TTL, a change saved before ensure returns. An empty image is the default
// image. A create racing a delete of id waits for the delete, then
// creates the sandbox anew: it never reports it missing. The egress
// policy of p is checked even when the sandbox exists, which keeps its own.
func (s *store) ensure(ctx context.Context, id string, p driver.CreateRequest) (boxStatus, error) {
	pol, err := s.createPolicy(p.Network)
	if err != nil {
		return boxStatus{}, err
	}
	for range ensureTries {
		st, err := s.ensureOnce(ctx, id, p, pol)
		if !errors.Is(err, errDeletedMeanwhile) {
			return st, err
		}
	}
	return boxStatus{}, fmt.Errorf("sandbox %q is being deleted and created concurrently; retry: %w", id, ErrUnavailable)
}

// errDeletedMeanwhile: a delete removed the sandbox ensureOnce was working on.
var errDeletedMeanwhile = errors.New("deleted meanwhile")

// ensureOnce is one attempt of ensure.
func (s *store) ensureOnce(ctx context.Context, id string, p driver.CreateRequest, pol *egress.Policy) (boxStatus, error) {
	s.mu.Lock()
	b, err := s.settledLocked(ctx, id)
	created := b == nil
	switch {
	case err != nil:
		s.mu.Unlock()
		return boxStatus{}, err
	case b == nil:
		// Refused before anything is written: a create over a host budget
		// leaves no sandbox behind. startEnv checks again.
		if err := s.budgetLocked(nil, s.cfg.Pids); err != nil {
			s.mu.Unlock()
			return boxStatus{}, err
		}
		if b, err = s.createLocked(id, p, pol); err != nil {
			s.mu.Unlock()
			return boxStatus{}, err
		}
		b.busy++
		s.mu.Unlock()
	case p.TTL != 0 && int32(p.TTL/time.Second) != b.meta.TTLSeconds:
		s.mu.Unlock()
		// A new TTL is saved first: a failed write changes nothing, not
		// even the expiry (release would count the attempt as activity).
		if _, err := s.saveMeta(b, func(m *meta) { m.TTLSeconds = int32(p.TTL / time.Second) }); err != nil {
			if s.deleted(b) {
				return boxStatus{}, errDeletedMeanwhile
			}
			return boxStatus{}, err
		}
		s.mu.Lock()
		if b.deleting {
			s.mu.Unlock()
			return boxStatus{}, errDeletedMeanwhile
		}
		b.busy++
		s.mu.Unlock()
	default:
		// Activity only: flushed with the others (see flush).
		s.touchLocked(b)
		b.busy++
		s.mu.Unlock()
	}
	_, err = s.startEnv(ctx, b)
	// Released (which counts as activity) before the status is taken, so
	// that the expiry create answers is the one GET reports afterwards,
	// however long the environment took to build.
	s.release(b, false)
	if err != nil {
		if s.deleted(b) {
			return boxStatus{}, errDeletedMeanwhile
		}
		if created && errors.Is(err, ErrBusy) {
			// Concurrent creates passed the budget check above together
			// and this one lost the race for the budget: like a create
			// refused up front, it leaves no sandbox behind (unless
			// another request is using it by now).
			if _, rerr := s.removeIf(id, func(x *box) bool { return x == b && x.busy == 0 }); rerr != nil {
				s.log.Warn("remove a sandbox whose create was refused", "sandbox", id, "err", rerr)
			}
		}
		return boxStatus{}, err
	}
	s.mu.Lock()
	st, _ := s.statusLocked(b)
	s.mu.Unlock()
	return st, nil
}

// settledLocked returns the box of id (nil when there is none) once no
// concurrent ensure is creating it and no delete is removing it. s.mu is
// held on entry and on return, released while waiting.
func (s *store) settledLocked(ctx context.Context, id string) (*box, error) {
	for {
		if s.closed {
			return nil, fmt.Errorf("backend is closed: %w", ErrUnavailable)
		}
		b, ok := s.boxes[id]
		if !ok || b.creating == nil && !b.deleting {
			return b, nil
		}
		// A concurrent ensure is writing its files, or a delete removing
		// them: wait, then look again.
		ch := b.creating
		if ch == nil {
			ch = b.gone
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
}

// createLocked makes the new sandbox id: its directories and metadata
// file, with egress policy pol (nil: none, no network.egress extension).
// s.mu is held on entry and on return, released while the files are
// written.
func (s *store) createLocked(id string, p driver.CreateRequest, pol *egress.Policy) (*box, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	ttl := p.TTL
	if ttl == 0 {
		ttl = s.cfg.DefaultTTL
	}
	image := p.Image
	if image == "" {
		image = s.cfg.DefaultImageName
	}
	m := meta{
		SessionID: id, Key: sandboxKey(id), PodName: "sandbox-" + id, Image: image,
		TTLSeconds: int32(ttl / time.Second), CreatedAt: now, LastActiveAt: now,
		CPUMilli: p.CPUMilli, MemoryBytes: p.MemoryBytes, StorageBytes: p.StorageBytes, Pids: s.cfg.Pids,
	}
	if pol != nil {
		m.Network = specOf(pol)
	}
	// Reserve the id, then create the workspace and the metadata without
	// holding s.mu: until creating is closed the sandbox is invisible
	// (lookupLocked, get and list skip it) and concurrent ensures of id
	// wait.
	b := s.newBox(m)
	b.policy = pol
	b.creating = make(chan struct{})
	s.boxes[id] = b
	s.mu.Unlock()
	err := s.makeBoxFS(context.Background(), m.Key, m.StorageBytes)
	if err == nil {
		// No metaMu: nobody else writes the metadata of a sandbox that is
		// still being created.
		err = s.writeMetaFile(m)
	}
	s.mu.Lock()
	close(b.creating)
	b.creating = nil
	if err != nil {
		delete(s.boxes, id)
		s.mu.Unlock()
		_ = os.Remove(s.metaPath(m.Key))
		_ = s.removeBoxDir(m.Key)
		s.mu.Lock()
		return nil, fmt.Errorf("create sandbox %q: %w", id, err)
	}
	return b, nil
}

// touch refreshes id's expiry and saves it before returning: when the
// metadata cannot be written the touch fails and changes nothing.
func (s *store) touch(id string) (meta, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	s.mu.Unlock()
	if err != nil {
		return meta{}, err
	}
	m, err := s.saveMeta(b, nil)
	if err != nil && s.deleted(b) {
		return meta{}, notFound(id)
	}
	return m, err
}

func (s *store) statusLocked(b *box) (boxStatus, environment) {
	st := boxStatus{meta: b.meta, runningExecs: b.execs}
	switch {
	case b.deleting:
		st.state = api.StateTerminating
	case b.starting:
		st.state = api.StatePending
	case b.env != nil && !envReady(b.env):
		st.state = api.StatePending // its setup runs (the runtime's StartAsync)
	case b.env != nil:
		st.state = api.StateReady
	default:
		st.state = api.StateStopped
	}
	return st, b.env
}

// get returns id's status without refreshing its expiry.
func (s *store) get(id string) (boxStatus, error) {
	s.mu.Lock()
	b, ok := s.boxes[id]
	if !ok || s.closed || b.creating != nil {
		s.mu.Unlock()
		return boxStatus{}, notFound(id)
	}
	st, env := s.statusLocked(b)
	s.mu.Unlock()
	if st.state == api.StateReady && !env.Alive() {
		st.state = api.StateStopped
	}
	u := s.usageOf(b, st.meta.Key, env)
	st.usage = &u
	return st, nil
}

// list returns up to n sandboxes with ids greater than after, ordered by
// id, and whether more follow.
func (s *store) list(after string, n int) ([]boxStatus, bool) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.boxes))
	for id, b := range s.boxes {
		if id > after && b.creating == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	more := len(ids) > n
	if more {
		ids = ids[:n]
	}
	out := make([]boxStatus, 0, len(ids))
	envs := make([]environment, 0, len(ids))
	boxes := make([]*box, 0, len(ids))
	for _, id := range ids {
		st, env := s.statusLocked(s.boxes[id])
		out = append(out, st)
		envs = append(envs, env)
		boxes = append(boxes, s.boxes[id])
	}
	s.mu.Unlock()
	for i := range out {
		if out[i].state == api.StateReady && !envs[i].Alive() {
			out[i].state = api.StateStopped
		}
		u := s.usageOf(boxes[i], out[i].meta.Key, envs[i])
		out[i].usage = &u
	}
	return out, more
}

// remove deletes sandbox id: it stops its environment (killing every
// command) and removes its workspace and metadata.
func (s *store) remove(id string) error {
	_, err := s.removeIf(id, nil)
	return err
}

// removeIf is remove when cond, checked under s.mu, holds (nil: always).
func (s *store) removeIf(id string, cond func(*box) bool) (bool, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	if err != nil {
		s.mu.Unlock()
		return false, err
	}
	if cond != nil && !cond(b) {
		s.mu.Unlock()
		return false, nil
	}
	b.deleting = true
	key := b.meta.Key
	cuts := slices.Collect(maps.Values(b.cuts))
	clear(b.cuts)
	s.mu.Unlock()
	for _, cut := range cuts {
		cut()
	}

	b.startMu.Lock()
	s.mu.Lock()
	env, gw := b.takeEnvLocked()
	s.mu.Unlock()
	var errs []error
	if env != nil {
		if err := env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop: %w", err))
		}
	}
	gw.close()
	b.startMu.Unlock()

	s.metaMu.Lock()
	if err := os.Remove(s.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	s.metaMu.Unlock()
	if err := s.removeBoxDir(key); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	if s.boxes[id] == b {
		delete(s.boxes, id)
	}
	close(b.gone)
	s.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("delete sandbox %q: %w", id, err)
	}
	return true, nil
}
