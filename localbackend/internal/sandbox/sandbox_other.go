//go:build !linux

package sandbox

// Outside Linux only TierNoneUnsafe exists: commands run on the host as the
// server's user, in their own process group. There is no filesystem,
// network or pid isolation, no resource limit, and a command's descendants
// that leave its process group (setsid) escape the timeout kill. It exists
// so that `make run` and the SDK examples work on macOS.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// MaybeInit does nothing outside Linux: there is no re-executed init.
func MaybeInit() {}

// Manager starts and tracks the sandboxes of one server.
type Manager struct {
	stateDir  string
	ownState  bool
	mu        sync.Mutex
	closed    bool
	sandboxes map[string]*Sandbox
}

// New accepts only TierNoneUnsafe outside Linux.
func New(opts Options) (*Manager, error) {
	if opts.Tier != TierNoneUnsafe {
		return nil, fmt.Errorf("%w: only %s exists outside Linux and must be asked for explicitly", ErrUnavailable, TierNoneUnsafe)
	}
	m := &Manager{stateDir: opts.StateDir, sandboxes: map[string]*Sandbox{}}
	if m.stateDir == "" {
		d, err := os.MkdirTemp("", "nox-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
		m.stateDir, m.ownState = d, true
	} else if err := os.MkdirAll(m.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	return m, nil
}

// Report says what TierNoneUnsafe provides: nothing isolated.
func (m *Manager) Report() Report {
	return Report{
		Tier:     TierNoneUnsafe,
		Isolated: false,
		Notes: []string{
			"NOT ISOLATED: commands run on the host as the server's user",
			"/workspace is the host directory (ExecSpec.Dir under /workspace or /tmp is rewritten; argv and env are not)",
			"a timed-out command's descendants that called setsid survive until Stop",
		},
		Unenforced: []string{"cpu", "memory", "pids", "ephemeralStorage"},
	}
}

// Start creates the workspace and the sandbox's tmp directory.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	if spec.Key == "" || strings.ContainsAny(spec.Key, "/\x00") {
		return nil, fmt.Errorf("sandbox key %q is not a file name", spec.Key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("sandbox manager closed")
	}
	if s := m.sandboxes[spec.Key]; s != nil && s.Alive() {
		return s, nil
	}
	tmp := filepath.Join(m.stateDir, spec.Key+".tmp")
	for _, d := range []string{spec.Workspace, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
	}
	s := &Sandbox{m: m, spec: spec, tmpDir: tmp, groups: map[int]bool{}}
	m.sandboxes[spec.Key] = s
	return s, nil
}

// StartAsync is Start: there is no setup to wait for.
func (m *Manager) StartAsync(ctx context.Context, spec Spec) (*Sandbox, error) {
	return m.Start(ctx, spec)
}

// WaitReady returns nil: the sandbox is ready when Start returns.
func (s *Sandbox) WaitReady(ctx context.Context) error { return nil }

// Ready reports true.
func (s *Sandbox) Ready() bool { return true }

// Close stops every sandbox.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	all := make([]*Sandbox, 0, len(m.sandboxes))
	for _, s := range m.sandboxes {
		all = append(all, s)
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.Stop())
	}
	if m.ownState {
		errs = append(errs, os.RemoveAll(m.stateDir))
	}
	return errors.Join(errs...)
}

// Sandbox is one workspace and the process groups started in it.
type Sandbox struct {
	m       *Manager
	spec    Spec
	tmpDir  string
	mu      sync.Mutex
	stopped bool
	groups  map[int]bool // process groups of commands, for Stop
}

// HostOwner returns the server's own uid and gid.
func (s *Sandbox) HostOwner() (uid, gid int) { return os.Getuid(), os.Getgid() }

// Notes is empty: Manager.Report says everything.
func (s *Sandbox) Notes() []string { return nil }

// Alive reports whether Stop has not been called.
func (s *Sandbox) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.stopped
}

// lookPathIn resolves argv[0] with the command's PATH, not the server's.
func lookPathIn(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		fi, err := os.Stat(file)
		if err != nil {
			return "", err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s: %w", file, os.ErrPermission)
		}
		return file, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			path = v
			break
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", file)
}

// Stop kills the process groups of every command; the workspace stays.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	s.stopped = true
	groups := s.groups
	s.groups = map[int]bool{}
	s.mu.Unlock()
	for g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	s.m.mu.Lock()
	if s.m.sandboxes[s.spec.Key] == s {
		delete(s.m.sandboxes, s.spec.Key)
	}
	s.m.mu.Unlock()
	return os.RemoveAll(s.tmpDir)
}
