package localbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// startEnv returns b's running environment, building it when needed.
func (s *store) startEnv(ctx context.Context, b *box) (environment, error) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	s.mu.Lock()
	env, m, deleting := b.env, b.meta, b.deleting
	s.mu.Unlock()
	if deleting {
		return nil, fmt.Errorf("sandbox %q is being deleted: %w", m.SessionID, ErrNotFound)
	}
	if env != nil && env.Alive() {
		return env, nil
	}
	if env != nil {
		// Dead: stopped with its gateway, whose sockets it held.
		s.mu.Lock()
		_, gw := b.takeEnvLocked()
		s.mu.Unlock()
		_ = env.Stop()
		gw.close()
	}
	rootfs, ok := s.cfg.Images[m.Image]
	if !ok {
		return nil, fmt.Errorf("sandbox %q: its image %q is no longer configured; delete and recreate it: %w", m.SessionID, m.Image, ErrUnavailable)
	}
	tmp, err := s.freshTmp(m.Key)
	if err != nil {
		return nil, fmt.Errorf("start sandbox %q: %w", m.SessionID, err)
	}
	lim := sandbox.Limits{
		CPUMilli: m.CPUMilli, MemoryBytes: m.MemoryBytes, Pids: m.Pids, StorageBytes: m.StorageBytes,
		OpenFiles: s.cfg.OpenFiles,
	}
	s.mu.Lock()
	b.env = nil
	if err := s.budgetLocked(b, m.Pids); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	b.starting = true
	// Over its limit (the monitor killed it), a sandbox without an image
	// may delete files but not write file data (RLIMIT_FSIZE of one
	// byte), so that repeated commands cannot push its usage further.
	restricted := b.overFloor > 0 && !s.onImage(m.Key)
	if restricted {
		lim.StorageBytes = 1
	}
	s.mu.Unlock()
	// Building is not cancelled by the client going away: a concurrent
	// ensure may be waiting for the same environment.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartTimeout)
	defer cancel()
	env, err = s.rt.Start(sctx, sandbox.Spec{
		Key:       m.Key,
		Workspace: s.workspacePath(m.Key),
		Tmp:       tmp,
		RootFS:    rootfs,
		Hostname:  "sandbox",
		Limits:    lim,
	})
	var gw *gateway
	if err == nil {
		// The gateway serves before any command runs (it waits for the
		// environment's setup): a command's first connection finds it.
		if gw, err = s.startGateway(sctx, b, env); err != nil {
			_ = env.Stop()
		}
	}
	s.mu.Lock()
	b.starting = false
	if err == nil {
		b.env, b.gw = env, gw
		b.restricted = restricted
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start sandbox %q: %w", m.SessionID, err)
	}
	if n, ok := env.(interface {
		WaitReady(context.Context) error
		Notes() []string
	}); ok {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
			defer cancel()
			if err := n.WaitReady(ctx); err != nil {
				if !errors.Is(err, sandbox.ErrStopped) {
					s.log.Error("sandbox setup failed", "sessionId", m.SessionID, "err", err)
				}
			} else if notes := n.Notes(); len(notes) > 0 {
				s.log.Warn("sandbox started with restrictions", "sessionId", m.SessionID, "notes", notes)
			}
		}()
	}
	return env, nil
}

// envReady reports false while env's setup runs in the background.
func envReady(env environment) bool {
	r, ok := env.(interface{ Ready() bool })
	return !ok || r.Ready()
}
