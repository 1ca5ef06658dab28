package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func checkProcSignal(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-signal")
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range []struct {
		sig  noxapi.SignalRequestSignal
		code int
	}{{noxapi.TERM, 143}, {noxapi.INT, 130}} {
		p, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60"))
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		x, err := env.signalProc(ctx, id, p.ID, c.sig)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		x.judge()
		if _, err := decodeRecord(x, http.StatusOK); err != nil {
			errs = append(errs, err)
			continue
		}
		e, wx, err := env.waitEnd(ctx, id, p.ID, procWait)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !e.ended() {
			errs = append(errs, ownFinding(x, aspectNone, "still running", "ended", fmt.Errorf("sleep still runs %s after %s\n%s", procWait, c.sig, x)))
			continue
		}
		want(&errs, fmt.Sprintf("exitCode of sleep after %s", c.sig), e.exit(), c.code, wx)
		want(&errs, fmt.Sprintf("signal of sleep after %s", c.sig), e.Signal, string(c.sig), wx)
		if c.sig != noxapi.TERM {
			continue
		}
		// An ended process ignores signals; its record stays.
		x, err = env.signalProc(ctx, id, p.ID, noxapi.KILL)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		x.judge()
		if q, err := decodeRecord(x, http.StatusOK); err != nil {
			errs = append(errs, fmt.Errorf("a signal to an ended process: %w", err))
		} else {
			want(&errs, "exitCode after a KILL to the ended process", q.exit(), c.code, x)
			want(&errs, "signal after a KILL to the ended process", q.Signal, string(c.sig), x)
		}
	}
	return errors.Join(errs...)
}

func checkProcKill(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-kill")
	if err != nil {
		return err
	}
	tree := newProcTree()
	p, _, err := env.startProcOK(ctx, id, procSh(tree.script()))
	if err != nil {
		return err
	}
	if err := tree.awaitStarted(ctx, env, id, p.ID, procWait); err != nil {
		return err
	}
	x, err := env.killProc(ctx, id, p.ID)
	if err != nil {
		return err
	}
	x.judge()
	k, err := decodeRecord(x, http.StatusOK)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "state in the answer to a kill", k.State, "exited", x)
	want(&errs, "exitCode in the answer to a kill", k.exit(), 137, x)
	want(&errs, "signal in the answer to a kill", k.Signal, "KILL", x)
	if left, err := tree.awaitDead(ctx, env, id, env.cfg.TimeoutGrace); err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("%d processes left", len(left)), "the whole tree killed",
			fmt.Errorf("%d processes of the killed process's tree (pids %s) still run %s after the kill answered\n%s", len(left), strings.Join(left, " "), env.cfg.TimeoutGrace, x)))
	}
	// The record is kept; killing again answers it unchanged.
	gx, err := env.getProc(ctx, id, p.ID)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	gx.judge()
	if r, err := decodeRecord(gx, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("the record of a killed process must be kept: %w", err))
	} else {
		want(&errs, "exitCode of the killed process's record", r.exit(), 137, gx)
	}
	x, err = env.killProc(ctx, id, p.ID)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	x.judge()
	if r, err := decodeRecord(x, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("a second kill: %w", err))
	} else {
		want(&errs, "exitCode in the answer to a second kill", r.exit(), 137, x)
		if !r.EndedAt.Equal(k.EndedAt.Time) {
			errs = append(errs, ownFinding(x, aspectBody, "endedAt "+r.EndedAt.Raw, "endedAt "+k.EndedAt.Raw,
				fmt.Errorf("a second kill changed endedAt from %s to %s\n%s", k.EndedAt.Raw, r.EndedAt.Raw, x)))
		}
	}
	return errors.Join(errs...)
}

func checkProcTimeout(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-timeout")
	if err != nil {
		return err
	}
	tree := newProcTree()
	req := procSh(tree.script())
	req.TimeoutSeconds = ptr[int32](1)
	p, x, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	limit := time.Second + env.cfg.TimeoutGrace
	e, wx, err := env.waitEnd(ctx, id, p.ID, limit)
	if err != nil {
		return err
	}
	var errs []error
	if !e.ended() {
		return ownFinding(x, aspectNone, fmt.Sprintf("still running after %s", limit), "ended after about 1 s",
			fmt.Errorf("a process with timeoutSeconds 1 still runs %s after it started\n%s", limit, x))
	}
	want(&errs, "exitCode of a timed-out process", e.exit(), 124, wx)
	want(&errs, "timedOut of a timed-out process", e.TimedOut, true, wx)
	if left, err := tree.awaitDead(ctx, env, id, env.cfg.TimeoutGrace); err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("%d processes left", len(left)), "the whole tree killed",
			fmt.Errorf("%d processes of the timed-out process's tree (pids %s) still run %s after it ended\n%s", len(left), strings.Join(left, " "), env.cfg.TimeoutGrace, x)))
	}
	return errors.Join(errs...)
}

// maxProcsTest bounds the maxProcessesPerSandbox proc/max-processes-503
// saturates.
const maxProcsTest = 32

func checkProcMax(ctx context.Context, env *Env) error {
	lp := limits(env).MaxProcessesPerSandbox
	if lp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxProcessesPerSandbox")
	}
	n := int(*lp)
	if n > maxProcsTest {
		return Skip(fmt.Sprintf("limits.maxProcessesPerSandbox %d is above %d: too costly to saturate", n, maxProcsTest))
	}
	if n < 1 {
		return fmt.Errorf("limits.maxProcessesPerSandbox %d is not positive", n)
	}
	id, err := env.NewSandbox(ctx, "proc-max")
	if err != nil {
		return err
	}
	// Starts are sent once each: a 503 is the subject here, not retried.
	start := func() (*Exchange, error) {
		resp, err := env.Client.StartProcess(ctx, id, procCmd("sleep", "120"))
		return env.do(ctx, "start a process in "+id, resp, err)
	}
	var first string
	for i := range n {
		x, err := start()
		if err != nil {
			return err
		}
		if !success(x.Status) {
			return ownFinding(x, aspectStatus, fmt.Sprintf("status %d for process %d", x.Status, i+1), "201",
				fmt.Errorf("process %d of %d (maxProcessesPerSandbox %d) was refused: status %d\n%s", i+1, n, n, x.Status, x))
		}
		if i == 0 {
			var p procRecord
			_ = json.Unmarshal(x.Body, &p)
			first = p.ID
		}
	}
	x, err := start()
	if err != nil {
		return err
	}
	if x.Status != http.StatusServiceUnavailable {
		return ownFinding(x, aspectStatus, fmt.Sprintf("status %d", x.Status), "503",
			fmt.Errorf("with %d processes running (maxProcessesPerSandbox %d), one more got status %d, want 503\n%s", n, n, x.Status, x))
	}
	if err := expectError(x, http.StatusServiceUnavailable); err != nil {
		return err
	}
	// An ended process frees its place.
	if _, err := env.killProc(ctx, id, first); err != nil {
		return err
	}
	if x, err = start(); err != nil {
		return err
	}
	if !success(x.Status) {
		return ownFinding(x, aspectStatus, fmt.Sprintf("status %d", x.Status), "201",
			fmt.Errorf("after one of the %d processes was killed, a new one got status %d: ended processes must not count\n%s", n, x.Status, x))
	}
	return nil
}
