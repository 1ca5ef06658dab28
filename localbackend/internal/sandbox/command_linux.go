package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Command is a command started by Sandbox.Start. Its methods are safe for
// concurrent use. A goroutine of its own tracks it to its end (its
// timeout, Kill) and then releases its resources, whether Wait is called
// or not.
type Command struct {
	x     execution
	final *reply // the final reply, when it came during Start
	tty   bool

	wmu         sync.Mutex  // serializes writes to the standard input
	stdinClosed atomic.Bool // CloseStdin or the end closed the pipe

	kill     chan struct{} // closed by Kill
	killOnce sync.Once
	ended    atomic.Bool // the final reply came: signals are moot

	// cancel ends the tracker's context: the first Wait's ctx ended.
	cancel  context.CancelCauseFunc
	waiting atomic.Bool   // the first Wait was called
	done    chan struct{} // closed when the tracker is done; res and err are set
	res     ExecResult
	err     error
}

// Start starts a command and returns once it runs: Exec's first half.
// ctx bounds only the start (a command still starting when it ends is
// killed); Wait's bounds the rest. A command that could not start for a
// reason that is a result (126, 127, as Exec reports them) is returned
// ended, for Wait to report; a missing working directory and
// infrastructure failures are errors.
func (s *Sandbox) Start(ctx context.Context, e ExecSpec) (*Command, error) {
	c := &Command{tty: e.TTY != nil, kill: make(chan struct{}), done: make(chan struct{})}
	c.x.killReq = c.kill
	if err := s.begin(ctx, e, &c.x, true); err != nil {
		return nil, err
	}
	if err := c.awaitStarted(ctx); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithCancelCause(context.Background())
	c.cancel = cancel
	go func() {
		c.res, c.err = c.wait(tctx)
		cancel(nil)
		close(c.done)
	}()
	return c, nil
}

// awaitStarted waits for the command's "started" reply and attaches the
// terminal the init allocated, or keeps the final reply that came
// instead.
func (c *Command) awaitStarted(ctx context.Context) error {
	var r reply
	var ok bool
	select {
	case r, ok = <-c.x.replies:
	case <-ctx.Done():
		// Kill what may have started, and wait for its end.
		_, _ = c.wait(ctx)
		return fmt.Errorf("start: %w", context.Cause(ctx))
	}
	switch {
	case !ok:
		c.final = &reply{Op: opInitExited}
	case r.Op == opStarted:
		return c.attach(r)
	case r.Op == "failed" && (r.Code == codeNoWorkdir || r.Code == 0):
		c.final = &r
		_, err := c.wait(context.Background())
		return err
	default:
		c.final = &r
	}
	return nil
}

// attach takes the terminal's master from a "started" reply when the
// init allocated it.
func (c *Command) attach(r reply) error {
	if !c.tty || c.x.term != nil {
		closeFiles(r.files)
		return nil
	}
	var err error
	if len(r.files) == 1 {
		f, perr := pollable(r.files[0])
		if perr == nil {
			c.x.attachTerminal(f)
			return nil
		}
		err = perr
	} else {
		closeFiles(r.files)
		err = fmt.Errorf("%d files came with it", len(r.files))
	}
	c.Kill()
	_, _ = c.wait(context.Background())
	return fmt.Errorf("start: the terminal's master: %w", err)
}

// Wait waits for the command to end and returns its result: Exec's
// second half. As in Exec, the command's timeout and Kill kill its tree,
// and so does the end of the first call's ctx: that call then returns
// ctx's error once the command ended. Every call returns the same
// result, but a later call whose ctx ends first returns at once, with
// ctx's error, and kills nothing.
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

// wait tracks the command to its final reply (unless it came during
// Start), collects its result, and releases its request, cgroup, stdin
// and terminal.
func (c *Command) wait(ctx context.Context) (ExecResult, error) {
	x := &c.x
	defer x.release()
	defer x.closeInput() // after the output was collected
	r := c.final
	if r == nil {
		fr, err := x.track(ctx)
		c.ended.Store(true)
		if err != nil {
			return ExecResult{}, err
		}
		r = &fr
	}
	c.ended.Store(true)
	c.stdinClosed.Store(true)
	return x.collect(*r)
}

// Kill kills the command's tree as its timeout does: Wait then returns
// 128+9. It returns at once.
func (c *Command) Kill() {
	c.killOnce.Do(func() { close(c.kill) })
}

// errBadSignal reports a signal number outside 1-64.
var errBadSignal = errors.New("no such signal")

// Signal sends sig to the command's process group (a new session: the
// command and what it started, unless they left it). It is nil once the
// command ended; never sent to a process that reused its pid.
func (c *Command) Signal(sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("signal %d: %w", int(sig), errBadSignal)
	}
	if c.ended.Load() {
		return nil
	}
	return c.x.s.signal(c.x.id, sig)
}

// signal asks the init to send sig to the process group of the command
// of exec request target, if it still runs, and waits for its answer.
func (s *Sandbox) signal(target uint64, sig syscall.Signal) error {
	s.mu.Lock()
	id, ch, err := s.newRequestLocked()
	s.mu.Unlock()
	if err != nil {
		return nil // stopping: every command is being killed
	}
	defer s.unregister(id)
	if s.mode == modeHost {
		// A command may have stopped the init (see execution.kill).
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
	name := unix.SignalName(sig)
	if err := sendMsg(s.conn, request{Op: "signal", ID: id, Target: target, Signal: int(sig)}); err != nil {
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, net.ErrClosed) {
			return nil // the init is gone, and its commands with it
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	t := time.NewTimer(killReportTimeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		if ok && r.Err != "" {
			return fmt.Errorf("%s: %s", name, r.Err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s: no answer from the sandbox's init in %v", name, killReportTimeout)
	}
}

// Resize sets the window size of the command's terminal (its foreground
// process group gets SIGWINCH). ErrNoTTY when it has none, or no more.
func (c *Command) Resize(size WinSize) error {
	if c.x.term == nil {
		return ErrNoTTY
	}
	return c.control(func(fd int) error { return setWinSize(fd, size) })
}

// control runs f on the descriptor of the terminal's master; ErrNoTTY
// once it is closed.
func (c *Command) control(f func(fd int) error) error {
	rc, err := c.x.term.SyscallConn()
	if err != nil {
		return ErrNoTTY
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return ErrNoTTY
	}
	return ferr
}
