package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/gen/noxapi"
)

// needStty skips a check when the sandbox has no stty.
func needStty(ctx context.Context, env *Env, id string) error {
	out, err := env.Sh(ctx, id, "command -v stty >/dev/null 2>&1 && echo yes || echo no")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "yes" {
		return Skip("no stty in the sandbox")
	}
	return nil
}

// crlf turns a terminal's line ends into "\n".
func crlf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func checkProcPty(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-pty")
	if err != nil {
		return err
	}
	if err := needStty(ctx, env, id); err != nil {
		return err
	}
	req := procSh(`a=no; if test -t 0 && test -t 1 && test -t 2; then a=yes; fi; { tty; echo $a; stty size; } > t.tmp; mv t.tmp t.out; echo on-terminal; echo err-on-terminal >&2`)
	req.Pty = &noxapi.TerminalSize{Rows: 33, Cols: 101}
	p, px, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "pty in the record of a process started with pty", p.Pty, true, px)
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil || !e.ended() {
		return errors.Join(append(errs, err, fmt.Errorf("the process on a terminal did not end within %s", procWait))...)
	}
	out, err := env.awaitFile(ctx, id, "t.out", procWait)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("the process on a terminal did not run: %w", err))...)
	}
	env.Notef("tty: %s", strings.SplitN(out, "\n", 2)[0])
	lines := strings.Split(out, "\n")
	if len(lines) < 3 {
		return errors.Join(append(errs, fmt.Errorf("tty, test -t and stty size printed %q", out))...)
	}
	if !strings.HasPrefix(lines[0], "/dev/") {
		errs = append(errs, ownFinding(px, aspectNone, fmt.Sprintf("tty printed %q", lines[0]), "a terminal device",
			fmt.Errorf("tty printed %q in a process started with pty, want a terminal device such as /dev/pts/0\n%s", lines[0], px)))
	}
	want(&errs, "test -t 0, 1 and 2 on a pty", lines[1], "yes", px)
	want(&errs, "stty size on a pty of 33 rows and 101 columns", lines[2], "33 101", px)
	b, err := env.readEnded(ctx, id, p.ID, 0, outputWait)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "output of a process on a terminal (line ends as \\n)", crlf(string(b.bytes())), "on-terminal\nerr-on-terminal\n", b.x)
	for _, c := range b.chunks {
		if c.Stream != "stdout" {
			errs = append(errs, ownFinding(b.x, aspectBody, "stream "+c.Stream, "stdout", fmt.Errorf("a terminal's output labelled %q, want stdout\n%s", c.Stream, b.x)))
			break
		}
	}
	return errors.Join(errs...)
}

func checkProcPtyResize(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-resize")
	if err != nil {
		return err
	}
	if err := needStty(ctx, env, id); err != nil {
		return err
	}
	req := procSh(`trap 'stty size > w.tmp; mv w.tmp w.out; echo winch' WINCH; echo ready; while [ ! -e gate ]; do sleep 0.02; done; stty size > s.tmp; mv s.tmp s.out`)
	req.Pty = &noxapi.TerminalSize{Rows: 24, Cols: 80}
	p, _, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	ready, err := env.awaitOutput(ctx, id, p.ID, 6, procWait)
	if err != nil {
		return fmt.Errorf("the process on a terminal did not start: %w", err)
	}
	x, err := env.resizeProc(ctx, id, p.ID, 50, 132)
	if err != nil {
		return err
	}
	x.judge()
	if err := expectStatus(x, http.StatusNoContent); err != nil {
		return err
	}
	var errs []error
	if _, err := env.awaitOutput(ctx, id, p.ID, int64(ready.OutputBytes)+5, procWait); err != nil {
		errs = append(errs, ownFinding(x, aspectNone, "no SIGWINCH", "the process gets SIGWINCH",
			fmt.Errorf("the process's WINCH trap did not run after the resize: %w\n%s", err, x)))
	} else if out, err := env.awaitFile(ctx, id, "w.out", procWait); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "stty size in the WINCH trap after a resize to 50x132", strings.TrimSpace(out), "50 132", x)
	}
	if _, err := env.Sh(ctx, id, "touch gate"); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// An ended process, and one without a terminal, cannot be resized.
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil {
		errs = append(errs, err)
	} else if e.ended() {
		if out, err := env.awaitFile(ctx, id, "s.out", procWait); err != nil {
			errs = append(errs, err)
		} else {
			want(&errs, "stty size after a resize to 50x132", strings.TrimSpace(out), "50 132", x)
		}
		if x, err := env.resizeProc(ctx, id, p.ID, 30, 90); err != nil {
			errs = append(errs, err)
		} else if err := expectError(x, http.StatusConflict); err != nil {
			errs = append(errs, fmt.Errorf("resize of an ended process: %w", err))
		}
	}
	plain, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if x, err := env.resizeProc(ctx, id, plain.ID, 30, 90); err != nil {
		errs = append(errs, err)
	} else if err := expectError(x, http.StatusConflict); err != nil {
		errs = append(errs, fmt.Errorf("resize of a process without a terminal: %w", err))
	}
	return errors.Join(errs...)
}
