package membackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/proctable"
)

var _ driver.Processes = (*Backend)(nil)

// StartProcess starts a process in sandbox id. Processes do not take the
// backend's exec slots; the sandbox's table bounds them.
func (b *Backend) StartProcess(ctx context.Context, id string, req driver.ProcessRequest) (driver.Process, error) {
	s, err := b.lookup(id, true)
	if err != nil {
		return nil, err
	}
	if err := s.checkWorkdir(req.Workdir); err != nil {
		return nil, err
	}
	return s.procs.Start(req, func(sink proctable.Sink) (proctable.Runner, error) {
		return b.startRunner(s, req, sink)
	})
}

// ListProcesses returns sandbox id's process records.
func (b *Backend) ListProcesses(_ context.Context, id string) ([]driver.ProcessInfo, error) {
	s, err := b.lookup(id, false)
	if err != nil {
		return nil, err
	}
	return s.procs.List(), nil
}

// Process returns process pid of sandbox id.
func (b *Backend) Process(_ context.Context, id, pid string) (driver.Process, error) {
	s, err := b.lookup(id, false)
	if err != nil {
		return nil, err
	}
	return s.procs.Get(pid)
}

// runner is a process's host command.
type runner struct {
	b   *Backend
	s   *sandbox
	cmd *exec.Cmd
	grp *process
	// stdin is the write end of the stdin pipe, or the terminal's master.
	stdin    *os.File
	tty      *os.File   // the terminal's master, or nil
	reading  []*os.File // the pipes or the master being read
	output   sync.WaitGroup
	timedOut atomic.Bool
	timer    *time.Timer
	closeIn  sync.Once
	// ttyMu guards the master's descriptor, which Resize uses, against
	// its close once the output ends (ttyClosed).
	ttyMu     sync.RWMutex
	ttyClosed bool
}

// startRunner starts req's command with its output going to sink.
func (b *Backend) startRunner(s *sandbox, req driver.ProcessRequest, sink proctable.Sink) (proctable.Runner, error) {
	cmd := s.command(req.Argv, req.Env, req.Workdir)
	r := &runner{b: b, s: s, cmd: cmd}
	if err := r.start(req, sink); err != nil {
		res := startFailure(err, req.Argv[0], 0)
		_, _ = sink.Stderr().Write([]byte(res.Stderr))
		return ended{proctable.Exit{ExitCode: res.ExitCode}}, nil
	}
	r.grp = &process{pgid: cmd.Process.Pid}
	b.mu.Lock()
	s.running[r.grp] = true
	deleted := s.deleted
	b.mu.Unlock()
	if deleted {
		r.grp.killGroup() // the sandbox was deleted meanwhile
	}
	if req.Timeout > 0 {
		r.timer = time.AfterFunc(req.Timeout, func() {
			r.timedOut.Store(true)
			r.grp.killGroup()
		})
	}
	return r, nil
}

// start starts the command with its standard streams.
func (r *runner) start(req driver.ProcessRequest, sink proctable.Sink) error {
	cmd := r.cmd
	if req.PTY != nil {
		if _, ok := req.Env["TERM"]; !ok {
			cmd.Env = append(cmd.Env, "TERM=xterm-256color")
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		master, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: req.PTY.Rows, Cols: req.PTY.Cols}, cmd.SysProcAttr)
		if err != nil {
			return err
		}
		r.tty, r.stdin = master, master
		r.copyOutput(master, sink.Stdout())
		return nil
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return err
	}
	var inR *os.File
	if req.Stdin {
		if inR, r.stdin, err = os.Pipe(); err != nil {
			closeAll(outR, outW, errR, errW)
			return err
		}
		cmd.Stdin = inR
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	closeAll(outW, errW, inR)
	if err != nil {
		closeAll(outR, errR, r.stdin)
		return err
	}
	r.copyOutput(outR, sink.Stdout())
	r.copyOutput(errR, sink.Stderr())
	return nil
}

// copyOutput forwards f to w, host paths rewritten (within each read),
// until f ends; then it closes f.
func (r *runner) copyOutput(f *os.File, w io.Writer) {
	r.reading = append(r.reading, f)
	r.output.Add(1)
	go func() {
		defer r.output.Done()
		defer r.closeOutput(f)
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				_, _ = io.WriteString(w, r.s.fromHost.Replace(string(buf[:n])))
			}
			if err != nil {
				return // EOF, or EIO from a terminal whose last slave closed
			}
		}
	}()
}

// closeOutput closes f, whose output ended; the terminal's master under
// ttyMu, since Resize uses its descriptor.
func (r *runner) closeOutput(f *os.File) {
	if f != r.tty {
		f.Close()
		return
	}
	r.ttyMu.Lock()
	defer r.ttyMu.Unlock()
	r.ttyClosed = true
	f.Close()
}

// Wait waits for the command, ends its process group and its output.
func (r *runner) Wait() proctable.Exit {
	err := r.cmd.Wait()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.grp.killGroup()
	r.b.mu.Lock()
	delete(r.s.running, r.grp)
	r.b.mu.Unlock()
	// The group is dead, but a process that left it may hold the pipes
	// or the terminal: give its output a moment, then stop reading.
	if !waitTimeout(&r.output, outputGrace) {
		for _, f := range r.reading {
			_ = f.SetReadDeadline(time.Now())
		}
	}
	r.output.Wait()
	if r.stdin != nil && r.stdin != r.tty {
		r.closeIn.Do(func() { r.stdin.Close() })
	}
	e := proctable.Exit{ExitCode: exitCode(err, r.timedOut.Load()), TimedOut: r.timedOut.Load()}
	var ee *exec.ExitError
	if !e.TimedOut && errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = proctable.SignalName(ws.Signal())
		}
	}
	return e
}

// WriteStdin writes p to the command's standard input.
func (r *runner) WriteStdin(ctx context.Context, p []byte) (int, error) {
	if r.stdin == nil {
		return 0, errors.New("no standard input")
	}
	stop := context.AfterFunc(ctx, func() { _ = r.stdin.SetWriteDeadline(time.Now()) })
	defer func() {
		if !stop() {
			_ = r.stdin.SetWriteDeadline(time.Time{})
		}
	}()
	return r.stdin.Write(p)
}

// CloseStdin closes the pipe, or types Ctrl-D on the terminal.
func (r *runner) CloseStdin() error {
	if r.tty != nil {
		_, err := r.tty.Write([]byte{4})
		return err
	}
	if r.stdin == nil {
		return errors.New("no standard input")
	}
	var err error
	r.closeIn.Do(func() { err = r.stdin.Close() })
	return err
}

// Signal sends sig to the command's process group.
func (r *runner) Signal(sig driver.Signal) error {
	s, ok := proctable.SyscallSignal(sig)
	if !ok {
		return fmt.Errorf("unknown signal %q: %w", sig, driver.ErrInvalidArgument)
	}
	return syscall.Kill(-r.grp.pgid, s)
}

// Resize sets the terminal's size.
func (r *runner) Resize(size driver.TermSize) error {
	if r.tty == nil {
		return errors.New("no terminal")
	}
	r.ttyMu.RLock()
	defer r.ttyMu.RUnlock()
	if r.ttyClosed {
		return errors.New("the terminal is closed")
	}
	return pty.Setsize(r.tty, &pty.Winsize{Rows: size.Rows, Cols: size.Cols})
}

// Kill kills the command's process group.
func (r *runner) Kill() { r.grp.killGroup() }

// ended is the runner of a command that could not start.
type ended struct{ exit proctable.Exit }

func (e ended) Wait() proctable.Exit { return e.exit }
func (ended) WriteStdin(context.Context, []byte) (int, error) {
	return 0, errors.New("the process has ended")
}
func (ended) CloseStdin() error            { return nil }
func (ended) Signal(driver.Signal) error   { return nil }
func (ended) Resize(driver.TermSize) error { return errors.New("the process has ended") }
func (ended) Kill()                        {}

// closeAll closes the non-nil files.
func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// waitTimeout waits for wg up to d and reports whether it is done.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
