package localbackend

import (
	"context"
	"path/filepath"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// maybeInitRuntime runs the sandbox init when the process was re-executed
// as one.
func maybeInitRuntime() { sandbox.MaybeInit() }

// newRuntime starts the sandbox runtime for cfg, with its state under the
// data directory.
func newRuntime(cfg Config) (runtime, error) {
	m, err := sandbox.New(sandbox.Options{
		Tier:        sandbox.Tier(cfg.Isolation),
		StateDir:    filepath.Join(cfg.DataDir, "runtime"),
		UIDRegistry: cfg.UIDRegistry,
	})
	if err != nil {
		return nil, err
	}
	return managerRuntime{m}, nil
}

// managerRuntime adapts *sandbox.Manager to the runtime interface.
type managerRuntime struct{ m *sandbox.Manager }

func (r managerRuntime) Report() sandbox.Report { return r.m.Report() }
func (r managerRuntime) Close() error           { return r.m.Close() }

func (r managerRuntime) Start(ctx context.Context, spec sandbox.Spec) (environment, error) {
	// Create answers once the init runs; the first exec waits for its
	// setup (the sandbox is "pending" meanwhile).
	s, err := r.m.StartAsync(ctx, spec)
	if err != nil {
		return nil, err
	}
	return sandboxEnv{s}, nil
}

// sandboxEnv is a runtime sandbox as an environment that can start
// commands (starter).
type sandboxEnv struct{ *sandbox.Sandbox }

// StartCommand starts one command without waiting for it.
func (e sandboxEnv) StartCommand(ctx context.Context, spec sandbox.ExecSpec) (command, error) {
	c, err := e.Sandbox.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var (
	_ environment = sandboxEnv{}
	_ fileOwner   = sandboxEnv{}
	_ starter     = sandboxEnv{}
)
