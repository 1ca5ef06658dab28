package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"
)

// procIDPattern is what a process id looks like (the contract's
// ProcessId parameter), compiled on first use: the bounded repetition
// makes a large program that the nox binary's start-up need not build.
var procIDPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
})

// procWait bounds the wait for a process that should end at once (a
// short script, a killed or signalled process).
const procWait = 10 * time.Second

// decodeRecord decodes x's body as a Process for the check judging it.
func decodeRecord(x *Exchange, code int) (procRecord, error) {
	var p procRecord
	if err := expectStatus(x, code); err != nil {
		return p, err
	}
	if err := json.Unmarshal(x.Body, &p); err != nil {
		return p, ownFinding(x, aspectBody, bodyExcerpt(x), "a JSON Process", fmt.Errorf("body is not a JSON Process: %w\n%s", err, x))
	}
	return p, nil
}

func checkProcStart(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-start")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "mkdir -p /workspace/sub"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	tag := "conf-start"
	req := procSh(`printf '%s|%s' "$(pwd)" "$NOX_P" > /workspace/p.tmp && mv /workspace/p.tmp /workspace/p.out; exec sleep 60`)
	req.Tag, req.Workdir, req.Env = &tag, ptr("/workspace/sub"), map[string]string{"NOX_P": "x y;$HOME"}
	before := time.Now()
	x, err := env.startProc(ctx, id, req)
	if err != nil {
		return err
	}
	after := time.Now()
	x.judge()
	p, err := decodeRecord(x, http.StatusCreated)
	if err != nil {
		return err
	}
	var errs []error
	if !procIDPattern().MatchString(p.ID) {
		errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("id %q", p.ID), "an id of 1 to 64 characters of [A-Za-z0-9._-]",
			fmt.Errorf("process id %q is not 1 to 64 characters of [A-Za-z0-9._-] starting with a letter or digit\n%s", p.ID, x)))
	}
	if !slices.Equal(p.Cmd, req.Cmd) {
		errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("cmd %q", p.Cmd), fmt.Sprintf("cmd %q", req.Cmd),
			fmt.Errorf("cmd %q, want the request's %q\n%s", p.Cmd, req.Cmd, x)))
	}
	want(&errs, "state of a process just started", p.State, "running", x)
	want(&errs, "tag", p.Tag, tag, x)
	want(&errs, "outputBytes of a process that printed nothing", int64(p.OutputBytes), 0, x)
	want(&errs, "outputStart", int64(p.OutputStart), 0, x)
	want(&errs, "pty of a process started without one", p.Pty, false, x)
	want(&errs, "stdin of a process started without it", p.Stdin, false, x)
	if p.Workdir != "" {
		want(&errs, "workdir", p.Workdir, "/workspace/sub", x)
	}
	if p.ExitCode != nil || p.EndedAt.Raw != "" {
		errs = append(errs, ownFinding(x, aspectBody, "exitCode or endedAt set", "neither while it runs",
			fmt.Errorf("a running process's record has exitCode or endedAt\n%s", x)))
	}
	skew := env.cfg.ClockSkew
	if t := p.StartedAt.Time; t.Before(before.Add(-skew)) || t.After(after.Add(skew)) {
		errs = append(errs, ownFinding(x, aspectBody, "startedAt "+p.StartedAt.Raw, "the time of the request",
			fmt.Errorf("startedAt %s is not the time of the request (%s, clock skew %s allowed)\n%s", p.StartedAt.Raw, before.UTC().Format(time.RFC3339Nano), skew, x)))
	}
	if out, err := env.awaitFile(ctx, id, "/workspace/p.out", procWait); err != nil {
		errs = append(errs, fmt.Errorf("the process did not run: %w", err))
	} else if out != "/workspace/sub|x y;$HOME" {
		errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("pwd|$NOX_P %q", out), "/workspace/sub|x y;$HOME",
			fmt.Errorf("the process printed pwd|$NOX_P %q, want %q: workdir and env must be used\n%s", out, "/workspace/sub|x y;$HOME", x)))
	}
	// Without workdir it runs in /workspace; every process has its own id.
	q, qx, err := env.startProcOK(ctx, id, procSh("pwd > /workspace/d.tmp && mv /workspace/d.tmp /workspace/d.out"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if q.ID == p.ID {
		errs = append(errs, ownFinding(qx, aspectBody, "id "+q.ID+" twice", "a new id", fmt.Errorf("two processes got the same id %q\n%s", q.ID, qx)))
	}
	if _, _, err := env.waitEnd(ctx, id, q.ID, procWait); err != nil {
		errs = append(errs, err)
	} else if out, err := env.awaitFile(ctx, id, "/workspace/d.out", procWait); err != nil {
		errs = append(errs, fmt.Errorf("the process without workdir did not run: %w", err))
	} else {
		want(&errs, "pwd of a process started without workdir", out, "/workspace\n", qx)
	}
	return errors.Join(errs...)
}

func checkProcGet(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-get")
	if err != nil {
		return err
	}
	started, _, err := env.startProcOK(ctx, id, procSh(`echo hello; while [ ! -e gate ]; do sleep 0.02; done; echo bye; exit 3`))
	if err != nil {
		return err
	}
	if _, err := env.awaitOutput(ctx, id, started.ID, 6, procWait); err != nil {
		return err
	}
	x, err := env.getProc(ctx, id, started.ID)
	if err != nil {
		return err
	}
	x.judge()
	p, err := decodeRecord(x, http.StatusOK)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "id", p.ID, started.ID, x)
	want(&errs, "state of a process waiting for its gate", p.State, "running", x)
	want(&errs, "outputBytes after it printed hello", int64(p.OutputBytes), 6, x)
	if !p.StartedAt.Equal(started.StartedAt.Time) {
		errs = append(errs, ownFinding(x, aspectBody, "startedAt "+p.StartedAt.Raw, "startedAt "+started.StartedAt.Raw,
			fmt.Errorf("startedAt %s differs from the start's %s\n%s", p.StartedAt.Raw, started.StartedAt.Raw, x)))
	}
	if _, err := env.Sh(ctx, id, "touch gate"); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if e, _, err := env.waitEnd(ctx, id, started.ID, procWait); err != nil || !e.ended() {
		return errors.Join(append(errs, err, fmt.Errorf("the process did not end within %s of its gate", procWait))...)
	}
	x, err = env.getProc(ctx, id, started.ID)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	x.judge()
	p, err = decodeRecord(x, http.StatusOK)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "state of an ended process", p.State, "exited", x)
	want(&errs, "exitCode of `exit 3`", p.exit(), 3, x)
	want(&errs, "outputBytes of hello and bye", int64(p.OutputBytes), 10, x)
	want(&errs, "outputStart", int64(p.OutputStart), 0, x)
	switch {
	case p.EndedAt.Raw == "":
		errs = append(errs, ownFinding(x, aspectBody, "no endedAt", "endedAt", fmt.Errorf("an ended process's record has no endedAt\n%s", x)))
	case p.EndedAt.Before(p.StartedAt.Time):
		errs = append(errs, ownFinding(x, aspectBody, "endedAt "+p.EndedAt.Raw, "endedAt after startedAt "+p.StartedAt.Raw,
			fmt.Errorf("endedAt %s is before startedAt %s\n%s", p.EndedAt.Raw, p.StartedAt.Raw, x)))
	}
	return errors.Join(errs...)
}

func checkProcList(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-list")
	if err != nil {
		return err
	}
	list := func(tag *string) (procList, *Exchange, error) {
		x, err := env.listProcs(ctx, id, tag)
		if err != nil {
			return procList{}, x, err
		}
		x.judge()
		var l procList
		if err := expectJSON(x, http.StatusOK, &l); err != nil {
			return l, x, err
		}
		return l, x, nil
	}
	ids := func(l procList) []string {
		out := []string{}
		for _, p := range l.Items {
			out = append(out, p.ID)
		}
		return out
	}
	var errs []error
	if l, x, err := list(nil); err != nil {
		return err
	} else if len(l.Items) != 0 {
		errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("%d items", len(l.Items)), "no items", fmt.Errorf("a new sandbox lists %d processes, want none\n%s", len(l.Items), x)))
	}
	var started []string
	for _, tag := range []string{"web", "db", ""} {
		req := procCmd("sleep", "60")
		if tag != "" {
			req.Tag = ptr(tag)
		}
		p, _, err := env.startProcOK(ctx, id, req)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		started = append(started, p.ID)
	}
	if _, err := env.killProc(ctx, id, started[1]); err != nil {
		return errors.Join(append(errs, err)...)
	}
	l, x, err := list(nil)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if got := ids(l); !slices.Equal(got, started) {
		errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("ids %q", got), fmt.Sprintf("ids %q", started),
			fmt.Errorf("the list holds %q, want the three processes started, oldest first, the killed one included: %q\n%s", got, started, x)))
	}
	for _, p := range l.Items {
		wantState := "running"
		if p.ID == started[1] {
			wantState = "exited"
		}
		want(&errs, "state of process "+p.ID, p.State, wantState, x)
	}
	for _, c := range []struct {
		tag  string
		want []string
	}{{"web", started[:1]}, {"none-such", []string{}}} {
		l, x, err := list(ptr(c.tag))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got := ids(l); !slices.Equal(got, c.want) {
			errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("ids %q", got), fmt.Sprintf("ids %q", c.want),
				fmt.Errorf("?tag=%s lists %q, want %q\n%s", c.tag, got, c.want, x)))
		}
	}
	return errors.Join(errs...)
}

func checkProcWait(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-wait")
	if err != nil {
		return err
	}
	var errs []error
	// A wait answers once the process has ended.
	short, _, err := env.startProcOK(ctx, id, procSh("sleep 0.3; exit 7"))
	if err != nil {
		return err
	}
	x, err := env.waitProc(ctx, id, short.ID, ptr[int32](20))
	if err != nil {
		return err
	}
	x.judge()
	p, err := decodeRecord(x, http.StatusOK)
	if err != nil {
		return err
	}
	want(&errs, "state after a wait for a 0.3 s process (timeoutSeconds 20)", p.State, "exited", x)
	want(&errs, "exitCode of `exit 7`", p.exit(), 7, x)
	want(&errs, "signal of a process that exited", p.Signal, "", x)
	want(&errs, "timedOut of a process that exited", p.TimedOut, false, x)
	if p.EndedAt.Raw == "" || p.EndedAt.Before(p.StartedAt.Time) {
		errs = append(errs, ownFinding(x, aspectBody, "endedAt "+p.EndedAt.Raw, "endedAt after startedAt",
			fmt.Errorf("the ended record's endedAt %q is missing or before startedAt %q\n%s", p.EndedAt.Raw, p.StartedAt.Raw, x)))
	}
	// Waiting again answers the same record at once.
	if x2, err := env.waitProc(ctx, id, short.ID, ptr[int32](20)); err != nil {
		errs = append(errs, err)
	} else if p2, err := decodeRecord(x2, http.StatusOK); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "exitCode of a second wait", p2.exit(), 7, x2)
	}
	// The long poll: a process that runs on is answered after
	// timeoutSeconds, still running.
	long, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	asked := time.Now()
	x, err = env.waitProc(ctx, id, long.ID, ptr[int32](1))
	took := time.Since(asked)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	env.Notef("a wait with timeoutSeconds 1 on a running process answered after %s", took.Round(time.Millisecond))
	if p, err := decodeRecord(x, http.StatusOK); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "state after a wait that timed out", p.State, "running", x)
		if took < 900*time.Millisecond {
			errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("answered after %s", took.Round(time.Millisecond)), "after about 1 s",
				fmt.Errorf("a wait with timeoutSeconds 1 answered after %s, before its timeout, though the process runs\n%s", took.Round(time.Millisecond), x)))
		}
		if limit := time.Second + env.cfg.TimeoutGrace; took > limit {
			errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("answered after %s", took.Round(time.Millisecond)), "within "+limit.String(),
				fmt.Errorf("a wait with timeoutSeconds 1 answered after %s, want within %s\n%s", took.Round(time.Millisecond), limit, x)))
		}
	}
	// A command that is not found ends at once with 127.
	missing, _, err := env.startProcOK(ctx, id, procCmd("nox-conformance-no-such-command"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if p, x, err := env.waitEnd(ctx, id, missing.ID, procWait); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "exitCode of a command not found", p.exit(), 127, x)
	}
	return errors.Join(errs...)
}
