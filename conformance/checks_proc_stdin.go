package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// decodeStdinResult decodes x's body as a StdinResult for the check
// judging it.
func decodeStdinResult(x *Exchange) (stdinResult, error) {
	var r stdinResult
	if err := expectStatus(x, http.StatusOK); err != nil {
		return r, err
	}
	if err := json.Unmarshal(x.Body, &r); err != nil {
		return r, ownFinding(x, aspectBody, bodyExcerpt(x), "a JSON StdinResult", fmt.Errorf("body is not a JSON StdinResult: %w\n%s", err, x))
	}
	return r, nil
}

// stdinWrite writes body to process pid's stdin (closing it when closeIt)
// and judges the answer: a StdinResult with written n and closed as
// closeIt.
func stdinWrite(ctx context.Context, env *Env, id, pid string, body string, closeIt bool) error {
	x, err := env.writeStdin(ctx, id, pid, []byte(body), closeIt)
	if err != nil {
		return err
	}
	x.judge()
	r, err := decodeStdinResult(x)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "written", int64(r.Written), int64(len(body)), x)
	want(&errs, "closed", r.Closed, closeIt, x)
	return errors.Join(errs...)
}

// stdinRefused writes to process pid's stdin and expects a 409.
func stdinRefused(ctx context.Context, env *Env, id, pid, why string) error {
	x, err := env.writeStdin(ctx, id, pid, []byte("late\n"), false)
	if err != nil {
		return err
	}
	if err := expectError(x, http.StatusConflict); err != nil {
		return fmt.Errorf("a write to the stdin of %s: %w", why, err)
	}
	return nil
}

func checkProcStdin(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-stdin")
	if err != nil {
		return err
	}
	var errs []error
	// A line round trip.
	req := procSh(`read x; echo "got $x" > r.tmp; mv r.tmp r.out`)
	req.Stdin = ptr(true)
	p, px, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return err
	}
	want(&errs, "stdin in the record of a process started with stdin", p.Stdin, true, px)
	if err := stdinWrite(ctx, env, id, p.ID, "hello\n", false); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil {
		errs = append(errs, err)
	} else if !e.ended() {
		errs = append(errs, ownFinding(px, aspectNone, "`read x` still runs", "it ends after the line",
			fmt.Errorf("`read x` still runs %s after `hello\\n` was written to its stdin\n%s", procWait, px)))
	} else {
		if out, err := env.awaitFile(ctx, id, "r.out", procWait); err != nil {
			errs = append(errs, err)
		} else {
			want(&errs, "what `read x; echo got $x` wrote", out, "got hello\n", px)
		}
		if err := stdinRefused(ctx, env, id, p.ID, "an ended process"); err != nil {
			errs = append(errs, err)
		}
	}
	// Close gives end-of-file; writes after it are refused.
	req = procSh(`cat > c.out; echo done; exec sleep 60`)
	req.Stdin = ptr(true)
	c, cx, err := env.startProcOK(ctx, id, req)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := stdinWrite(ctx, env, id, c.ID, "abc", false); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := stdinWrite(ctx, env, id, c.ID, "def", true); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if _, err := env.awaitOutput(ctx, id, c.ID, 5, procWait); err != nil {
		errs = append(errs, ownFinding(cx, aspectNone, "cat still runs", "cat ends at the end of its input",
			fmt.Errorf("cat did not end after its stdin was closed: %w\n%s", err, cx)))
	} else {
		if out, err := env.Sh(ctx, id, "cat c.out"); err != nil {
			errs = append(errs, err)
		} else {
			want(&errs, "what cat read", out, "abcdef", cx)
		}
		if err := stdinRefused(ctx, env, id, c.ID, "a process whose stdin was closed"); err != nil {
			errs = append(errs, err)
		}
	}
	// Without stdin: its standard input is empty, and writes are refused.
	n, nx, err := env.startProcOK(ctx, id, procSh(`cat > n.out; echo done; exec sleep 60`))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := stdinRefused(ctx, env, id, n.ID, "a process started without stdin"); err != nil {
		errs = append(errs, err)
	}
	if _, err := env.awaitOutput(ctx, id, n.ID, 5, procWait); err != nil {
		errs = append(errs, ownFinding(nx, aspectNone, "cat still runs", "cat ends at once",
			fmt.Errorf("the standard input of a process started without stdin must be empty, so cat ends: %w\n%s", err, nx)))
	}
	return errors.Join(errs...)
}
