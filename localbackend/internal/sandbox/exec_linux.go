package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
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
// command (it comes within milliseconds unless the init is broken).
const killReportTimeout = 10 * time.Second

// Exec runs one command and waits for it. The error reports infrastructure
// failures (and ErrNoWorkdir, ctx cancellation) only, never exit codes.
//
// Its phases: resolve the working directory, wait for the setup, register
// the request, take a command cgroup, send the request with the output
// pipes (startCommand), track the command until its exit report (track),
// and turn the report into the result (collect).
func (s *Sandbox) Exec(ctx context.Context, e ExecSpec) (ExecResult, error) {
	dir, err := s.commandDir(e)
	if err != nil {
		return ExecResult{}, err
	}
	if err := s.awaitSetup(ctx); err != nil {
		return ExecResult{}, err
	}
	id, replies, err := s.register()
	if err != nil {
		return ExecResult{}, err
	}
	defer s.unregister(id)

	var cc *cmdCgroup
	if s.cg != nil {
		if cc, err = s.takeCgroup(id); err != nil {
			s.cleanup.Done()
			return ExecResult{}, err
		}
	}
	defer s.releaseCgroup(cc)

	env := e.Env
	if s.mode == modeHost {
		env = hostEnv(env, s.spec.Workspace, s.tmpDir)
	}
	req := request{Op: "exec", ID: id, Argv: e.Argv, Env: env, Dir: dir, Cgroup: cc != nil}
	x, err := s.startCommand(req, cc, e.Stdout, e.Stderr)
	if err != nil {
		return ExecResult{}, err
	}
	// x stays on Exec's stack: no allocation for it on the hot path.
	r, err := x.track(ctx, replies, e.Timeout)
	if err != nil {
		return ExecResult{}, err
	}
	return x.collect(r, e.Dir)
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
	if s.stopping {
		return 0, nil, ErrStopped
	}
	s.seq++
	id := s.seq
	ch := make(chan reply, 2)
	s.pending[id] = ch
	s.cleanup.Add(1)
	return id, ch, nil
}

// unregister forgets the reply channel of request id.
func (s *Sandbox) unregister(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// readLoop dispatches the init's replies to the waiting Exec calls.
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
		closeFiles(fs)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, unix.ECONNRESET) {
				return
			}
			continue
		}
		s.mu.Lock()
		ch := s.pending[r.ID]
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// execution is one command between its exec request and its result.
type execution struct {
	s     *Sandbox
	id    uint64
	cc    *cmdCgroup // the command's cgroup, or nil
	start time.Time

	outSink, errSink *detachableWriter
	outDone, errDone <-chan struct{} // closed when a pipe is drained

	timedOut  bool
	cancelled error // ctx's cause, when ctx ended first

	// The kill of the command's tree runs again every rekill tick until
	// the exit report arrives: the request may still be queued in the
	// init when the timeout fires, and the command start after a kill.
	rekill   *time.Ticker // nil until the first kill
	killedAt time.Time
}

// startCommand sends the exec request with the write ends of the
// command's stdout and stderr pipes (and its cgroup's task file), and
// starts forwarding the pipes to stdout and stderr (nil: discarded).
func (s *Sandbox) startCommand(req request, cc *cmdCgroup, stdout, stderr io.Writer) (execution, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	outR, outW, err := outputPipe()
	if err != nil {
		return execution{}, fmt.Errorf("exec: %w", err)
	}
	errR, errW, err := outputPipe()
	if err != nil {
		outR.Close()
		unix.Close(outW)
		return execution{}, fmt.Errorf("exec: %w", err)
	}
	send := []int{outW, errW}
	if cc != nil {
		send = append(send, cc.taskFD)
	}
	x := execution{
		s: s, id: req.ID, cc: cc,
		outSink: &detachableWriter{w: stdout},
		errSink: &detachableWriter{w: stderr},
	}

	x.start = time.Now()
	err = sendMsg(s.conn, req, send...)
	unix.Close(outW)
	unix.Close(errW)
	// The drains start once the init has the request, which they need
	// not wait for (the pipes buffer the output meanwhile).
	x.outDone, x.errDone = drain(outR, x.outSink), drain(errR, x.errSink)
	if err != nil {
		x.detach()
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, net.ErrClosed) {
			// The init is gone: once it is reaped, Start builds anew.
			return execution{}, fmt.Errorf("%w: its init exited%s", ErrStopped, s.initExit())
		}
		return execution{}, err
	}
	return x, nil
}

// track waits for the command's final reply ("exited" or "failed"). It
// kills the command's tree when timeout (0: none) passes or ctx ends, and
// then keeps killing it until the reply arrives. The error reports a dead
// init or a reply that never came.
func (x *execution) track(ctx context.Context, replies <-chan reply, timeout time.Duration) (reply, error) {
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	defer func() {
		if x.rekill != nil {
			x.rekill.Stop()
		}
	}()
	var rekill <-chan time.Time
	for {
		select {
		case r, ok := <-replies:
			if !ok {
				return reply{Op: opInitExited}, nil
			}
			return r, nil
		case <-timer:
			x.timedOut = true
			timer = nil
		case <-rekill:
			if time.Since(x.killedAt) > killReportTimeout {
				x.detach()
				return reply{}, fmt.Errorf("exec: no exit report %v after killing the command", killReportTimeout)
			}
		case <-ctx.Done():
			x.cancelled = context.Cause(ctx)
			ctx = context.Background() // wait for the exit report now
		}
		x.kill()
		rekill = x.rekill.C
	}
}

// kill kills the command's tree: everything in its cgroup, or, without
// one, what the init finds below the command. The first call starts the
// rekill ticker.
func (x *execution) kill() {
	if x.rekill == nil {
		x.rekill = time.NewTicker(20 * time.Millisecond)
		x.killedAt = time.Now()
	}
	if x.s.mode == modeHost {
		// A command may have stopped the init (SIGSTOP from the same
		// uid): it could not report the exit. (Through the pidfd: safe
		// after the init is reaped.)
		_ = x.s.cmd.Process.Signal(syscall.SIGCONT)
	}
	if x.cc != nil {
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = killCgroup(kctx, x.cc.dir, x.s.cmd.Process.Pid)
		cancel()
	} else {
		_ = sendMsg(x.s.conn, request{Op: "kill", ID: x.id})
	}
}

// collect turns the command's final reply into Exec's result once its
// output is forwarded (or given up on). dir is ExecSpec.Dir, for the
// error of a missing working directory.
func (x *execution) collect(r reply, dir string) (ExecResult, error) {
	switch r.Op {
	case "failed":
		return x.failed(r, dir)
	case opInitExited:
		return x.initExited()
	}
	var res ExecResult
	if r.Op == "exited" {
		res = x.exited(r)
	}
	if x.timedOut || x.cancelled != nil {
		x.finishOutput(10 * time.Millisecond)
	} else {
		x.finishOutput(outputGrace)
	}
	x.detach()
	if x.cancelled != nil && !x.timedOut {
		return res, fmt.Errorf("exec: %w", x.cancelled)
	}
	if x.timedOut {
		res.TimedOut, res.ExitCode, res.OOMKilled = true, 124, false
	}
	return res, nil
}

// opInitExited is the reply track makes up when the init exited before
// it reported the command's exit.
const opInitExited = "init-exited"

// initExited is the result of a command whose init exited under it. After
// Stop it is an error. Otherwise the init died on its own (killed from
// inside in the host tiers, or a crash): every process of the sandbox
// dies with it (the kernel kills a pid namespace with its init; in the
// host tiers the clean-up that follows kills the sandbox's cgroup), so
// the command's result is 137 with a note on stderr, and the next Start
// builds a fresh sandbox.
func (x *execution) initExited() (ExecResult, error) {
	s := x.s
	how := s.initExit() // waits until the init is reaped
	s.mu.Lock()
	asked := s.stopAsked
	s.mu.Unlock()
	if asked {
		x.detach()
		return ExecResult{}, errors.New("exec: the sandbox was stopped while the command ran")
	}
	if x.cc != nil {
		// In the host tiers the command outlives its init: end it (and
		// its hold on the output pipes) now, not when the clean-up,
		// which waits for this Exec, removes the cgroups.
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = killCgroup(kctx, x.cc.dir)
		cancel()
	}
	x.finishOutput(outputGrace)
	x.errSink.final(fmt.Sprintf("nox: the sandbox's init exited%s: every process of the sandbox was killed; the next command starts it again\n", how))
	x.detach()
	return ExecResult{ExitCode: 137, Duration: time.Since(x.start)}, nil
}

// failed handles a "failed" reply: the init could not start the command.
// Exit codes (126, 127) are results, with the reason on stderr; a missing
// working directory and infrastructure failures are errors.
func (x *execution) failed(r reply, dir string) (ExecResult, error) {
	x.finishOutput(outputGrace)
	switch r.Code {
	case codeNoWorkdir:
		return ExecResult{}, fmt.Errorf("%w: %s", ErrNoWorkdir, dir)
	case 0:
		return ExecResult{}, fmt.Errorf("exec: %s", r.Err)
	}
	// Unprefixed, as a shell says it: it is the command's stderr, not
	// the client's own message.
	_, _ = fmt.Fprintf(x.errSink, "%s\n", r.Err)
	x.errSink.detach()
	x.outSink.detach()
	return ExecResult{ExitCode: r.Code, Duration: time.Since(x.start)}, nil
}

// exited turns an "exited" reply's wait status into a result, and asks
// the cgroup whether a SIGKILL came from the OOM killer.
func (x *execution) exited(r reply) ExecResult {
	res := ExecResult{Duration: time.Since(x.start)}
	ws := syscall.WaitStatus(r.Status)
	switch {
	case ws.Signaled():
		res.ExitCode = 128 + int(ws.Signal())
	default:
		res.ExitCode = ws.ExitStatus()
	}
	if s := x.s; s.cg != nil && res.ExitCode == 137 {
		// Killed by SIGKILL (or a shell saw that): was it the OOM killer?
		// (With concurrent commands the kill may belong to another
		// command of this sandbox.)
		n := s.cg.oomKills()
		s.mu.Lock()
		res.OOMKilled = n > s.oomSeen
		s.oomSeen = n
		s.mu.Unlock()
	}
	return res
}

// finishOutput waits up to grace for both pipes to be drained; then it
// stops forwarding (background processes hold the pipes).
func (x *execution) finishOutput(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for _, d := range []<-chan struct{}{x.outDone, x.errDone} {
		select {
		case <-d:
		case <-t.C:
			x.detach()
			return
		}
	}
}

// detach stops forwarding the command's output.
func (x *execution) detach() {
	x.outSink.detach()
	x.errSink.detach()
}
