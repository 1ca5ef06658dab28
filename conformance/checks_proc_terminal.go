package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/gen/noxapi"
)

// sizeLine finds the lines the terminal check's script prints after each
// Enter.
var sizeLine = regexp.MustCompile(`size:(\d+ \d+)\n`)

// attach dials the terminal of process pid as a set-up step (the
// handshake's answer is judged by the check when it is its subject).
func attach(ctx context.Context, env *Env, id, pid string, q url.Values) (*termConn, *Exchange, error) {
	t, x, err := env.dialTerminal(ctx, id, pid, q)
	if err != nil {
		return nil, x, err
	}
	switch {
	case t == nil && x.Status == http.StatusSwitchingProtocols:
		return nil, x, ownFinding(x, aspectHeader, "an invalid upgrade", "a WebSocket upgrade (RFC 6455)",
			fmt.Errorf("the answer to the WebSocket handshake for a terminal is 101 but not a valid WebSocket upgrade\n%s", x))
	case t == nil:
		return nil, x, ownFinding(x, aspectStatus, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "101 Switching Protocols",
			fmt.Errorf("the WebSocket handshake for the terminal of a process started with pty was refused: status %d, want 101\n%s", x.Status, x))
	}
	return t, x, nil
}

// termFinding is a finding of the terminal check about what the
// WebSocket carried.
func termFinding(x *Exchange, t *termConn, observed, expected string, err error) error {
	return ownFinding(x, aspectNone, observed, expected, fmt.Errorf("%w\n%s\n%s", err, x, t.transcript()))
}

func checkProcTerminal(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-term")
	if err != nil {
		return err
	}
	if err := needStty(ctx, env, id); err != nil {
		return err
	}
	req := procSh(`echo hello-term; stty size; while :; do read a; s=$(stty size); echo "size:$s"; if [ "$s" = "40 100" ]; then break; fi; done; read b; echo "got:$b"; exit 3`)
	req.Pty = &noxapi.TerminalSize{Rows: 24, Cols: 80}
	p, _, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	t, x, err := attach(ctx, env, id, p.ID, nil)
	x.judge()
	if err != nil {
		return err
	}
	defer t.close()
	if !t.awaitOutput(ctx, procWait, "hello-term\n24 80\n") {
		return termFinding(x, t, "output "+clip(string(t.out), 80), "hello-term and 24 80",
			errors.New("the terminal's output (from offset 0) did not bring `hello-term` and `24 80` in binary messages"))
	}
	if err := resizeByMessage(ctx, t, x); err != nil {
		return err
	}
	// Typed input is echoed and read.
	if err := t.send(ctx, false, []byte("typed\r")); err != nil {
		return err
	}
	var errs []error
	if !t.awaitOutput(ctx, procWait, "got:typed\n") {
		return termFinding(x, t, "output "+clip(string(t.out), 80), "got:typed",
			errors.New("`typed` and Enter, typed as a binary message, did not reach `read b`"))
	}
	if !hasText(t.out, "typed\ngot:typed\n") {
		errs = append(errs, termFinding(x, t, "no echo", "typed echoed", errors.New("the terminal did not echo the typed input")))
	}
	// The process exits: the exit message after all its output, then a
	// normal close.
	t.await(ctx, procWait, func() bool { return t.ended })
	errs = append(errs, judgeTermExit(env, x, t, 3)...)
	errs = append(errs, checkTerminalEOF(ctx, env, id)...)
	return errors.Join(errs...)
}

// resizeByMessage sends a resize message to the terminal check's script
// and types Enter until the script prints the new size: Enter asks it
// for its size, and input written before the resize took effect is
// answered with the old size.
func resizeByMessage(ctx context.Context, t *termConn, x *Exchange) error {
	if err := t.send(ctx, true, resizeMessage(40, 100)); err != nil {
		return err
	}
	sizes := func() [][]string { return sizeLine.FindAllStringSubmatch(crlf(string(t.out)), -1) }
	for try := 1; ; try++ {
		n := len(sizes())
		if err := t.send(ctx, false, []byte("\r")); err != nil {
			return err
		}
		if !t.await(ctx, procWait, func() bool { return len(sizes()) > n }) {
			return termFinding(x, t, "no answer to Enter", "size:...",
				errors.New("the process did not read Enter, typed as a binary message"))
		}
		all := sizes()
		last := all[len(all)-1][1]
		if last == "40 100" {
			return nil
		}
		if try == 10 {
			return termFinding(x, t, "stty size "+last, "40 100",
				errors.New(`after {"type":"resize","rows":40,"cols":100}, stty size still prints the old size`))
		}
	}
}

// checkTerminalEOF checks that an eof message ends a terminal's input:
// cat ends.
func checkTerminalEOF(ctx context.Context, env *Env, id string) []error {
	req := procSh(`cat; echo cat-done`)
	req.Pty = &noxapi.TerminalSize{Rows: 24, Cols: 80}
	c, _, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return []error{err}
	}
	t, x, err := attach(ctx, env, id, c.ID, nil)
	if err != nil {
		return []error{err}
	}
	defer t.close()
	if err := t.send(ctx, true, []byte(`{"type":"eof"}`)); err != nil {
		return []error{err}
	}
	if !t.await(ctx, procWait, func() bool { return t.ended }) || !hasText(t.out, "cat-done\n") {
		return []error{termFinding(x, t, "cat still runs", "cat-done, exit", errors.New(`after {"type":"eof"}, cat did not end`))}
	}
	return judgeTermExit(env, x, t, 0)
}

// judgeTermExit checks how a terminal's WebSocket ended: an exit
// control message with the ended record (exitCode code) after all the
// output, then a close with status 1000.
func judgeTermExit(env *Env, x *Exchange, t *termConn, code int) []error {
	var errs []error
	exit, at, ok := t.control("exit")
	if !ok {
		return []error{termFinding(x, t, "no exit message", `{"type":"exit","process":...}`,
			errors.New("the process ended without an exit control message on its terminal"))}
	}
	if err := env.run.contract.validateSchema("Process", exit.Process); err != nil {
		errs = append(errs, termFinding(x, t, "exit process "+clip(string(exit.Process), 80), "a Process", fmt.Errorf("the exit message's process %w", err)))
	}
	var p procRecord
	_ = json.Unmarshal(exit.Process, &p)
	want(&errs, "state in the exit message", p.State, "exited", x)
	want(&errs, "exitCode in the exit message", p.exit(), code, x)
	if at != len(t.out) {
		errs = append(errs, termFinding(x, t, fmt.Sprintf("%d output bytes after exit", len(t.out)-at), "exit after all output",
			errors.New("output came after the exit message")))
	}
	if !t.ended {
		errs = append(errs, termFinding(x, t, "still open", "close 1000", fmt.Errorf("the WebSocket stayed open %s after the exit message", procWait)))
	} else if st := websocket.CloseStatus(t.err); st != websocket.StatusNormalClosure {
		errs = append(errs, termFinding(x, t, fmt.Sprintf("close status %d", st), "close status 1000",
			fmt.Errorf("after the exit message the WebSocket ended with close status %d (%v), want 1000", st, t.err)))
	}
	for _, raw := range t.controls {
		var c termControl
		if err := json.Unmarshal(raw, &c); err != nil || c.Type != "exit" {
			errs = append(errs, termFinding(x, t, "control "+clip(string(raw), 80), "only the exit message",
				fmt.Errorf("an unexpected text message %q", clip(string(raw), 200))))
		}
	}
	return errs
}

func checkProcTerminalErrors(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-term-err")
	if err != nil {
		return err
	}
	plain, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60"))
	if err != nil {
		return err
	}
	req := procCmd("sleep", "60")
	req.Pty = &noxapi.TerminalSize{Rows: 24, Cols: 80}
	pty, _, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	unknown := env.ID("never-created")
	env.Track(unknown)
	var errs []error
	pid := "no-such-process-" + env.Prefix
	for _, c := range []struct {
		what    string
		id, pid string
		judge   func(*Exchange) error
	}{
		{"a process without a terminal", id, plain.ID, func(x *Exchange) error { return expectError(x, http.StatusConflict) }},
		{"an unknown process", id, pid, func(x *Exchange) error { return expectErrorNamingAny(x, http.StatusNotFound, pid) }},
		{"an unknown sandbox", unknown, "1", expectUnknown},
	} {
		t, x, err := env.dialTerminal(ctx, c.id, c.pid, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if t != nil {
			t.close()
		}
		if err := c.judge(x); err != nil {
			errs = append(errs, fmt.Errorf("the terminal of %s: %w", c.what, err))
		}
	}
	if err := stillUnknown(ctx, env, unknown, "terminal attach"); err != nil {
		errs = append(errs, err)
	}
	x, err := env.rawWith(ctx, http.MethodGet, procPath(id, pty.ID, "terminal"), nil, nil)
	if err != nil {
		errs = append(errs, err)
	} else if err := expectError(x, http.StatusUpgradeRequired); err != nil {
		errs = append(errs, fmt.Errorf("a plain GET (not a WebSocket upgrade) of a terminal: %w", err))
	}
	return errors.Join(errs...)
}

func checkProcTerminalHangup(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-hangup")
	if err != nil {
		return err
	}
	start := func() (procRecord, error) {
		req := procCmd("sleep", "60")
		req.Pty = &noxapi.TerminalSize{Rows: 24, Cols: 80}
		p, _, err := env.startProcOK(ctx, id, req)
		return p, err
	}
	var errs []error
	// hangup=true: closing the WebSocket hangs the terminal up.
	a, err := start()
	if err != nil {
		return err
	}
	t, x, err := attach(ctx, env, id, a.ID, url.Values{"hangup": {"true"}})
	if err != nil {
		return err
	}
	t.close()
	e, wx, err := env.waitEnd(ctx, id, a.ID, procWait)
	switch {
	case err != nil:
		errs = append(errs, err)
	case !e.ended():
		errs = append(errs, ownFinding(x, aspectNone, "still running", "ended by SIGHUP",
			fmt.Errorf("sleep on a terminal still runs %s after its hangup=true WebSocket closed\n%s", procWait, x)))
	default:
		want(&errs, "exitCode after the hangup", e.exit(), 129, wx)
		want(&errs, "signal after the hangup", e.Signal, "HUP", wx)
	}
	// Without it the process keeps running.
	b, err := start()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	t, x, err = attach(ctx, env, id, b.ID, nil)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	t.close()
	wait := int32(1)
	wx, err = env.waitProc(ctx, id, b.ID, &wait)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if r, _, err := recordOK(wx, "wait"); err != nil {
		errs = append(errs, err)
	} else if r.State != "running" {
		errs = append(errs, ownFinding(x, aspectNone, "state "+r.State, "running",
			fmt.Errorf("a process whose terminal WebSocket (without hangup) closed is %s (exit %d), want running\n%s", r.State, r.exit(), x)))
	}
	return errors.Join(errs...)
}
