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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// Exec runs one command on the host: Start and Wait.
func (s *Sandbox) Exec(ctx context.Context, e ExecSpec) (ExecResult, error) {
	c, err := s.Start(ctx, e)
	if err != nil {
		return ExecResult{}, err
	}
	if e.OpenStdin {
		_ = c.CloseStdin() // nobody writes to it
	}
	return c.Wait(ctx)
}

// Command is a command started by Sandbox.Start, in its own process
// group. Its methods are safe for concurrent use; Wait must be called.
type Command struct {
	cmd     *exec.Cmd // nil when it could not start: final says how it ended
	final   ExecResult
	start   time.Time
	timeout time.Duration

	stdin       *os.File // the write end of its stdin pipe, or nil
	wmu         sync.Mutex
	stdinClosed atomic.Bool

	kill     chan struct{} // closed by Kill
	killOnce sync.Once

	mu    sync.Mutex
	ended bool // reaped: its pid may be reused (under mu)

	waiting atomic.Bool
	done    chan struct{}
	res     ExecResult
	err     error
}

// Start starts a command on the host and returns once it runs.
// Terminals need Linux (ErrUnavailable).
func (s *Sandbox) Start(ctx context.Context, e ExecSpec) (*Command, error) {
	if e.TTY != nil {
		return nil, fmt.Errorf("%w: terminals need Linux", ErrUnavailable)
	}
	dir, err := execDir(e)
	if err != nil {
		return nil, err
	}
	dir = hostPath(dir, s.spec.Workspace, s.tmpDir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s", ErrNoWorkdir, e.Dir)
	}
	if !s.Alive() {
		return nil, ErrStopped
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start: %w", context.Cause(ctx))
	}
	c := &Command{timeout: e.Timeout, kill: make(chan struct{}), done: make(chan struct{})}
	cmd := exec.Command(e.Argv[0], e.Argv[1:]...)
	if p, err := lookPathIn(e.Argv[0], e.Env); err == nil {
		cmd.Path = p
	} else {
		code := 127
		if errors.Is(err, os.ErrPermission) {
			code = 126
		}
		if e.Stderr != nil {
			_, _ = fmt.Fprintf(e.Stderr, "%v\n", err) // as a shell says it
		}
		c.final = ExecResult{ExitCode: code}
		return c, nil
	}
	cmd.Dir, cmd.Env = dir, hostEnv(e.Env, s.spec.Workspace, s.tmpDir)
	cmd.Stdout, cmd.Stderr = orDiscard(e.Stdout), orDiscard(e.Stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 200 * time.Millisecond
	var stdinR *os.File
	if e.OpenStdin {
		if stdinR, c.stdin, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		cmd.Stdin = stdinR
	}
	c.start = time.Now()
	err = cmd.Start()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		code := 126
		if errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		if c.stdin != nil {
			c.stdin.Close()
		}
		c.final = ExecResult{ExitCode: code, Duration: time.Since(c.start)}
		return c, nil
	}
	c.cmd = cmd
	s.mu.Lock()
	s.groups[cmd.Process.Pid] = true
	s.mu.Unlock()
	return c, nil
}

// Wait waits for the command and returns its result. Its timeout, the
// end of the first call's ctx and Kill kill its process group. Later and
// concurrent calls return the first call's result, or their ctx's error.
func (c *Command) Wait(ctx context.Context) (ExecResult, error) {
	if c.waiting.CompareAndSwap(false, true) {
		if c.cmd == nil {
			c.res = c.final
		} else {
			c.res, c.err = c.wait(ctx)
		}
		c.stdinClosed.Store(true)
		if c.stdin != nil {
			c.stdin.Close()
		}
		close(c.done)
		return c.res, c.err
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return ExecResult{}, fmt.Errorf("wait: %w", context.Cause(ctx))
	}
}

// wait waits for the started command, killing its process group when its
// timeout passes, ctx ends or Kill asks, and turns its end into the
// result.
func (c *Command) wait(ctx context.Context) (ExecResult, error) {
	cmd := c.cmd
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
		done <- err
	}()
	var timeout <-chan time.Time
	if c.timeout > 0 {
		t := time.NewTimer(c.timeout - time.Since(c.start))
		defer t.Stop()
		timeout = t.C
	}
	var timedOut bool
	var cancelled error
	var werr error
	select {
	case werr = <-done:
	case <-timeout:
		timedOut = true
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		werr = <-done
	case <-c.kill:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		werr = <-done
	case <-ctx.Done():
		cancelled = context.Cause(ctx)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		werr = <-done
	}
	res := ExecResult{Duration: time.Since(c.start)}
	if cancelled != nil {
		return res, fmt.Errorf("exec: %w", cancelled)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			res.ExitCode, res.Signal = 128+int(ws.Signal()), ws.Signal()
		} else {
			res.ExitCode = ws.ExitStatus()
		}
	} else if werr != nil && !errors.Is(werr, exec.ErrWaitDelay) {
		return res, fmt.Errorf("exec: %w", werr)
	}
	if timedOut {
		res.TimedOut, res.ExitCode = true, 124
	}
	return res, nil
}

// WriteStdin writes p to the command's stdin pipe, blocking while it is
// full until ctx ends. ErrNoStdin when it has none, or no more.
func (c *Command) WriteStdin(ctx context.Context, p []byte) (int, error) {
	if c.stdin == nil {
		return 0, ErrNoStdin
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.stdinClosed.Load() {
		return 0, ErrNoStdin
	}
	return writeInput(ctx, c.stdin, p)
}

// CloseStdin closes the command's stdin pipe; ErrNoStdin when it has
// none, or it was closed.
func (c *Command) CloseStdin() error {
	if c.stdin == nil || !c.stdinClosed.CompareAndSwap(false, true) {
		return ErrNoStdin
	}
	if err := c.stdin.Close(); err != nil {
		return fmt.Errorf("close stdin: %w", err)
	}
	return nil
}

// Signal sends sig to the command's process group; nil once it ended.
// (Between the reaping of the command and the note of it, a window of
// microseconds, a group whose every process ended could in theory have
// its id reused; Linux has no such window.)
func (c *Command) Signal(sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("signal %d: no such signal", int(sig))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.ended {
		return nil
	}
	if err := syscall.Kill(-c.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

// Resize is ErrNoTTY: terminals need Linux.
func (c *Command) Resize(size WinSize) error { return ErrNoTTY }

// Kill kills the command's process group (Wait does it, at once when it
// runs).
func (c *Command) Kill() {
	c.killOnce.Do(func() { close(c.kill) })
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
