package localbackend

import (
	"context"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// runtime is what the store needs from the sandbox runtime. A
// *sandbox.Manager satisfies it through managerRuntime; tests use a host
// process double (fakeRuntime in the tests) that needs no namespaces.
type runtime interface {
	// Report says what the isolation tier provides on this host.
	Report() sandbox.Report
	// Start builds the environment of one sandbox; it is fast when the
	// environment already runs.
	Start(ctx context.Context, spec sandbox.Spec) (environment, error)
	// Close stops every environment the runtime started.
	Close() error
}

// environment is one running sandbox, as *sandbox.Sandbox provides it.
type environment interface {
	// Exec runs one command; the error reports infrastructure failures
	// only, never exit codes.
	Exec(ctx context.Context, e sandbox.ExecSpec) (sandbox.ExecResult, error)
	// Alive reports whether the environment's processes still run.
	Alive() bool
	// Stop kills every process of the environment; the workspace stays.
	Stop() error
}

// fileOwner is implemented by an environment whose sandboxed processes run
// under a dedicated host uid/gid: uploaded files are chowned to it.
type fileOwner interface {
	HostOwner() (uid, gid int)
}
