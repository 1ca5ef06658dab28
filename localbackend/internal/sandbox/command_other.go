//go:build !linux

package sandbox

// Commands outside Linux: os/exec in a process group of their own, with
// an optional stdin pipe; no terminals.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

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
// group. Its methods are safe for concurrent use. A goroutine of its own
// tracks it to its end, whether Wait is called or not.
type Command struct {
	cmd     *exec.Cmd
	start   time.Time
	timeout time.Duration

	stdin       *os.File // the write end of its stdin pipe, or nil
	wmu         sync.Mutex
	stdinClosed atomic.Bool

	kill     chan struct{} // closed by Kill
	killOnce sync.Once

	mu    sync.Mutex
	ended bool // reaped: its pid may be reused (under mu)

	cancel  context.CancelCauseFunc // ends the tracker's context: the first Wait's ctx ended
	waiting atomic.Bool
	done    chan struct{} // closed when the tracker is done; res and err are set
	res     ExecResult
	err     error
}

// endedCommand returns a Command that could not start, with its result.
func endedCommand(res ExecResult) *Command {
	c := &Command{kill: make(chan struct{}), done: make(chan struct{}), cancel: func(error) {}, res: res}
	close(c.done)
	return c
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
		return endedCommand(ExecResult{ExitCode: code}), nil
	}
	c := &Command{cmd: cmd, timeout: e.Timeout, kill: make(chan struct{}), done: make(chan struct{})}
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
		return endedCommand(ExecResult{ExitCode: code, Duration: time.Since(c.start)}), nil
	}
	s.mu.Lock()
	s.groups[cmd.Process.Pid] = true
	s.mu.Unlock()
	tctx, cancel := context.WithCancelCause(context.Background())
	c.cancel = cancel
	go func() {
		c.res, c.err = c.wait(tctx)
		cancel(nil)
		c.stdinClosed.Store(true)
		if c.stdin != nil {
			c.stdin.Close()
		}
		close(c.done)
	}()
	return c, nil
}

// Wait waits for the command and returns its result. Its timeout, Kill
// and the end of the first call's ctx kill its process group (that call
// then returns ctx's error). Every call returns the same result, but a
// later call whose ctx ends first returns at once with ctx's error.
func (c *Command) Wait(ctx context.Context) (ExecResult, error) {
	first := c.waiting.CompareAndSwap(false, true)
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
	}
	if !first {
		return ExecResult{}, fmt.Errorf("wait: %w", context.Cause(ctx))
	}
	c.cancel(context.Cause(ctx))
	<-c.done
	return c.res, c.err
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

// Kill kills the command's process group; it returns at once.
func (c *Command) Kill() {
	c.killOnce.Do(func() { close(c.kill) })
}
