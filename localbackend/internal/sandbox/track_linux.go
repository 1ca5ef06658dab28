package sandbox

// Tracking a started command to its result: the timeout, cancellation
// and Kill (the tree kill), the exit report, and the output's end.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// execution is one command between its exec request and its result.
type execution struct {
	s       *Sandbox
	id      uint64
	replies <-chan reply // the command's replies (closed if the init dies)
	cc      *cmdCgroup   // the command's cgroup, or nil
	start   time.Time    // when the request was sent
	timeout time.Duration
	dir     string // ExecSpec.Dir, for the error of a missing one

	outSink, errSink *detachableWriter // errSink is outSink on a terminal
	outDone, errDone <-chan struct{}   // closed when a pipe is drained

	// stdin is the write end of the command's stdin pipe, term the
	// master of its terminal (also its output); nil when it has none.
	stdin, term *os.File

	// killReq is closed by Command.Kill (nil for Exec).
	killReq <-chan struct{}

	timedOut  bool
	killed    bool  // Command.Kill killed it
	cancelled error // ctx's cause, when ctx ended first

	// The kill of the command's tree runs again every rekill tick until
	// the exit report arrives: the request may still be queued in the
	// init when the timeout fires, and the command start after a kill.
	rekill   *time.Ticker // nil until the first kill
	killedAt time.Time
}

// release gives the command's cgroup back and forgets its request, once
// its final reply came (or never will).
func (x *execution) release() {
	x.s.releaseCgroup(x.cc)
	x.s.unregister(x.id)
}

// attachTerminal makes master the command's terminal and forwards its
// output (until EIO: every slave is closed) to the output sink.
func (x *execution) attachTerminal(master *os.File) {
	x.term = master
	x.outDone = drain(master, x.outSink)
}

// closeInput closes the command's stdin pipe and terminal: writes then
// fail, and a terminal's remaining readers (background processes) get a
// hang-up.
func (x *execution) closeInput() {
	if x.stdin != nil {
		x.stdin.Close()
	}
	if x.term != nil {
		x.term.Close()
	}
}

// track waits for the command's final reply ("exited" or "failed"). It
// kills the command's tree when its timeout (0: none; counted from the
// request) passes, ctx ends or Kill asks, and then keeps killing it until
// the reply arrives. The error reports a dead init or a reply that never
// came.
func (x *execution) track(ctx context.Context) (reply, error) {
	var timer <-chan time.Time
	if x.timeout > 0 {
		t := time.NewTimer(x.timeout - time.Since(x.start))
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
		case r, ok := <-x.replies:
			if !ok {
				return reply{Op: opInitExited}, nil
			}
			if r.Op == opStarted { // of a Start given up on
				closeFiles(r.files)
				continue
			}
			return r, nil
		case <-timer:
			x.timedOut = true
			timer = nil
		case <-x.killReq:
			x.killed = true
			x.killReq = nil
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
// output is forwarded (or given up on).
func (x *execution) collect(r reply) (ExecResult, error) {
	switch r.Op {
	case "failed":
		return x.failed(r)
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
func (x *execution) failed(r reply) (ExecResult, error) {
	x.finishOutput(outputGrace)
	switch r.Code {
	case codeNoWorkdir:
		return ExecResult{}, fmt.Errorf("%w: %s", ErrNoWorkdir, x.dir)
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
		res.Signal = ws.Signal()
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
