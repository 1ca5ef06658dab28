package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// outputGrace is how long Exec waits, after the command exited, for
// background processes that still hold its stdout/stderr. After that their
// output is drained and dropped. A command's own output is already in the
// pipes when it exits, but on a loaded host the goroutines draining them
// may not run for a while: 200 ms lost the output of commands under CI
// load. Only commands that leave a process holding the pipes wait it out.
const outputGrace = time.Second

// killReportTimeout bounds the wait for the exit report of a killed
// command (it comes within milliseconds unless the init is broken), and
// for the answer to a signal.
const killReportTimeout = 10 * time.Second

// Exec runs one command and waits for it: Start and Wait, with the
// execution on Exec's stack. The error reports infrastructure failures
// (and ErrNoWorkdir, ctx cancellation) only, never exit codes.
//
// Its phases: start the command (begin), track it until its exit report
// (track), and turn the report into the result (collect).
func (s *Sandbox) Exec(ctx context.Context, e ExecSpec) (ExecResult, error) {
	if e.TTY != nil || e.OpenStdin {
		return s.execInteractive(ctx, e)
	}
	var x execution
	if err := s.begin(ctx, e, &x, false); err != nil {
		return ExecResult{}, err
	}
	defer x.release()
	r, err := x.track(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	return x.collect(r)
}

// execInteractive is Exec of a command with a terminal or a stdin pipe,
// which nobody writes to: the pipe is closed at once, the terminal stays
// open.
func (s *Sandbox) execInteractive(ctx context.Context, e ExecSpec) (ExecResult, error) {
	c, err := s.Start(ctx, e)
	if err != nil {
		return ExecResult{}, err
	}
	if e.TTY == nil {
		_ = c.CloseStdin()
	}
	return c.Wait(ctx)
}

// begin is the first half of a command, up to its exec request: resolve
// the working directory, wait for the setup, register the request, take
// a command cgroup, and send the request with the command's standard
// streams (startCommand). notify asks the init for a "started" reply.
// On success the caller must end x with x.release once the command's
// final reply came.
func (s *Sandbox) begin(ctx context.Context, e ExecSpec, x *execution, notify bool) error {
	dir, err := s.commandDir(e)
	if err != nil {
		return err
	}
	if err := s.awaitSetup(ctx); err != nil {
		return err
	}
	id, replies, err := s.register()
	if err != nil {
		return err
	}
	x.s, x.id, x.replies, x.timeout, x.dir = s, id, replies, e.Timeout, e.Dir
	if s.cg != nil {
		if x.cc, err = s.takeCgroup(id); err != nil {
			x.release()
			return err
		}
	}
	env := e.Env
	if e.TTY != nil && !envHas(env, "TERM") {
		env = append(env[:len(env):len(env)], "TERM="+defaultTerm)
	}
	if s.mode == modeHost {
		env = hostEnv(env, s.spec.Workspace, s.tmpDir)
	}
	req := request{
		Op: "exec", ID: id, Argv: e.Argv, Env: env, Dir: dir, Cgroup: x.cc != nil,
		Stdin: e.OpenStdin && e.TTY == nil, TTY: e.TTY, Slave: e.TTY != nil && s.mode == modeHost,
		Notify: notify,
	}
	if err := s.startCommand(req, e, x); err != nil {
		x.release()
		return err
	}
	return nil
}

// commandDir checks e and returns the command's working directory as the
// init sees it: the host path in tiers without a mount namespace.
func (s *Sandbox) commandDir(e ExecSpec) (string, error) {
	dir, err := execDir(e)
	if err != nil {
		return "", err
	}
	if s.mode == modeHost {
		dir = hostPath(dir, s.spec.Workspace, s.tmpDir)
	}
	return dir, nil
}

// awaitSetup waits until the init's setup ended and reports whether the
// sandbox can run a command.
func (s *Sandbox) awaitSetup(ctx context.Context) error {
	select {
	case <-s.ready:
		if s.setupErr != nil {
			return fmt.Errorf("%w: %w", ErrSetup, s.setupErr)
		}
	case <-ctx.Done():
		return fmt.Errorf("wait for sandbox setup: %w", context.Cause(ctx))
	}
	if !s.Alive() {
		return ErrStopped
	}
	return nil
}

// register allocates the id of one exec request and the channel its
// replies arrive on. It counts the command in s.cleanup, which
// releaseCgroup (or the caller, when there is no cgroup to release)
// decrements: under s.mu, so that Stop, once stopping, waits for every
// command that got past here.
func (s *Sandbox) register() (uint64, chan reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ch, err := s.newRequestLocked()
	if err == nil {
		s.cleanup.Add(1)
	}
	return id, ch, err
}

// newRequestLocked allocates the id of a request and the channel its
// replies arrive on (two at most: "started" and the final one). s.mu is
// held.
func (s *Sandbox) newRequestLocked() (uint64, chan reply, error) {
	if s.stopping {
		return 0, nil, ErrStopped
	}
	s.seq++
	id := s.seq
	ch := make(chan reply, 2)
	s.pending[id] = ch
	return id, ch, nil
}

// unregister forgets the reply channel of request id.
func (s *Sandbox) unregister(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// readLoop dispatches the init's replies to the waiting Exec calls. Only
// the replies that carry files (carriesFiles: a terminal's master, a
// socket) keep them, for their waiter to own; others are closed.
func (s *Sandbox) readLoop(buf, oob []byte) {
	defer func() {
		s.mu.Lock()
		for id, ch := range s.pending {
			close(ch)
			delete(s.pending, id)
		}
		s.mu.Unlock()
	}()
	for {
		var r reply
		fs, err := recvMsg(s.conn, buf, oob, &r)
		if err != nil {
			closeFiles(fs)
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, unix.ECONNRESET) {
				return
			}
			continue
		}
		s.mu.Lock()
		ch := s.pending[r.ID]
		s.mu.Unlock()
		if ch == nil || !carriesFiles(r.Op) {
			closeFiles(fs)
			fs = nil
		}
		if ch != nil {
			r.files = fs
			ch <- r
		}
	}
}

// startCommand sends exec request req with the command's standard
// streams (stdioFor) and its cgroup's task file, and starts forwarding
// its output to e.Stdout and e.Stderr (nil: discarded).
func (s *Sandbox) startCommand(req request, e ExecSpec, x *execution) error {
	x.outSink = &detachableWriter{w: orDiscard(e.Stdout)}
	if req.TTY != nil {
		// A terminal has one output; until it is attached there is none.
		done := make(chan struct{})
		close(done)
		x.errSink, x.outDone, x.errDone = x.outSink, done, done
	} else {
		x.errSink = &detachableWriter{w: orDiscard(e.Stderr)}
	}
	var st serverStdio
	if err := s.stdioFor(req, &st, x); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	n := st.n
	if x.cc != nil {
		st.add(x.cc.taskFD)
	}
	x.start = time.Now()
	err := sendMsg(s.conn, req, st.send[:st.n]...)
	st.n = n // the task file is the cgroup's, not ours
	st.closeSent()
	// The drains start once the init has the request, which they need
	// not wait for (the pipes buffer the output meanwhile).
	if st.outR != nil {
		x.outDone, x.errDone = drain(st.outR, x.outSink), drain(st.errR, x.errSink)
	}
	if x.term != nil {
		x.attachTerminal(x.term)
	}
	if err != nil {
		x.detach()
		x.closeInput()
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, net.ErrClosed) {
			// The init is gone: once it is reaped, Start builds anew.
			return fmt.Errorf("%w: its init exited%s", ErrStopped, s.initExit())
		}
		return err
	}
	return nil
}

// serverStdio is the server's side of a command's standard streams while
// its request is sent: the descriptors that go with it (closed once
// sent), and the read ends of its output pipes.
type serverStdio struct {
	send       [4]int // the first n go with the request (and a task file)
	n          int
	outR, errR *os.File
}

// add appends fd to the descriptors sent.
func (st *serverStdio) add(fd int) {
	st.send[st.n] = fd
	st.n++
}

// stdioFor makes the standard streams of exec request req: output pipes
// (and a stdin pipe, whose write end becomes x.stdin), or, in the host
// tiers, a terminal whose master becomes x.term (in the other tiers the
// init allocates it and sends the master back).
func (s *Sandbox) stdioFor(req request, st *serverStdio, x *execution) error {
	switch {
	case req.TTY != nil && req.Slave:
		master, slave, err := openPTY(*req.TTY, unix.O_NONBLOCK)
		if err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			// The terminal belongs to its user, as login(1) does it.
			_ = unix.Fchown(slave, s.uid, s.gid)
		}
		x.term = os.NewFile(uintptr(master), "pty")
		st.add(slave)
		return nil
	case req.TTY != nil:
		return nil
	case req.Stdin:
		r, w, err := stdinPipe()
		if err != nil {
			return err
		}
		x.stdin = w
		st.add(r)
	}
	outR, outW, err := outputPipe()
	if err != nil {
		st.closeSent()
		x.closeInput()
		return err
	}
	errR, errW, err := outputPipe()
	if err != nil {
		outR.Close()
		unix.Close(outW)
		st.closeSent()
		x.closeInput()
		return err
	}
	st.outR, st.errR = outR, errR
	st.add(outW)
	st.add(errW)
	return nil
}

// closeSent closes the descriptors that went (or were to go) with the
// request.
func (st *serverStdio) closeSent() {
	for _, fd := range st.send[:st.n] {
		unix.Close(fd)
	}
	st.n = 0
}
