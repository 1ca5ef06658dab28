package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// execSlot waits up to ExecQueueWait, in all, for one of sandbox b's own
// command slots (MaxConcurrentExecsPerSandbox), then for one of the
// backend's (MaxConcurrentExecs), and returns the function releasing both.
// A sandbox at its own limit waits without holding a backend slot, so it
// cannot starve its neighbours.
func (s *store) execSlot(ctx context.Context, b *box) (func(), error) {
	t := time.NewTimer(s.cfg.ExecQueueWait)
	defer t.Stop()
	own, err := takeSlot(ctx, b.execSlots, t.C)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			err = fmt.Errorf("too many concurrent commands in sandbox %q (limit %d per sandbox); retry later: %w", b.meta.SessionID, cap(b.execSlots), ErrBusy)
		}
		return nil, err
	}
	global, err := takeSlot(ctx, s.execSlots, t.C)
	if err != nil {
		own()
		if errors.Is(err, ErrBusy) {
			err = fmt.Errorf("too many concurrent commands (limit %d); retry later: %w", cap(s.execSlots), ErrBusy)
		}
		return nil, err
	}
	return func() { global(); own() }, nil
}

// takeSlot takes a slot of the semaphore slots, waiting until expired
// fires (then ErrBusy) or ctx ends, and returns the function releasing it.
func takeSlot(ctx context.Context, slots chan struct{}, expired <-chan time.Time) (func(), error) {
	release := func() { <-slots }
	select {
	case slots <- struct{}{}:
		return release, nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return release, nil
	case <-expired:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startExec admits one command in sandbox id: an unknown id is
// ErrNotFound, a full sandbox or backend ErrBusy (after ExecQueueWait), a bad workdir
// ErrInvalid. A zero Timeout is the default timeout.
func (s *store) startExec(ctx context.Context, id string, req driver.ExecRequest) (*execHandle, error) {
	// Existence first, so an unknown id is a 404 even when the backend is busy.
	s.mu.Lock()
	b0, err := s.lookupLocked(id)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	releaseSlot, err := s.execSlot(ctx, b0)
	if err != nil {
		return nil, err
	}
	b, env, err := s.acquire(ctx, id, true)
	if err != nil {
		releaseSlot()
		if s.deleted(b0) && !errors.Is(err, ErrNotFound) {
			return nil, notFound(id) // e.g. its workspace went while the environment started
		}
		return nil, err
	}
	if req.Timeout == 0 {
		req.Timeout = s.cfg.DefaultExecTimeout
	}
	h := &execHandle{s: s, id: id, b: b, env: env, releaseSlot: releaseSlot, stdin: req.Stdin,
		spec: sandbox.ExecSpec{Argv: req.Argv, Dir: req.Workdir, Env: commandEnv(s.baseEnv(b), req.Env), Timeout: req.Timeout}}
	if err := s.checkWorkdir(b, req.Workdir); err != nil {
		h.Abort()
		if s.deleted(b) {
			return nil, notFound(id) // its workspace went with it
		}
		return nil, err
	}
	return h, nil
}

// checkWorkdir returns ErrInvalid when dir lies in /workspace and is
// missing or not a directory there. Directories elsewhere, or reached
// through links leaving the workspace, are checked by the runtime.
func (s *store) checkWorkdir(b *box, dir string) error {
	rel, err := workspaceRel("workdir", dir)
	if err != nil {
		return nil // outside /workspace: the runtime decides
	}
	if rel == "." {
		return nil // the workspace itself, which the store created
	}
	root, err := os.OpenRoot(s.workspacePath(b.meta.Key))
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("workdir: %q does not exist: %w", dir, ErrInvalid)
	}
	if err != nil {
		// E.g. a link to a directory outside the workspace, which the
		// sandbox may well have: the runtime decides.
		return nil
	}
	if !fi.IsDir() {
		return fmt.Errorf("workdir: %q is not a directory: %w", dir, ErrInvalid)
	}
	return nil
}
