package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// checkExec rejects an empty command before any request is made. It is a
// convenience, like checkID: the backend answers 400 (ErrInvalidArgument
// too) to an empty cmd, but the caller learns it without a round trip,
// and ExecStream without first asking for the backend's extensions.
func checkExec(op string, req ExecRequest) error {
	if len(req.Cmd) == 0 {
		return fmt.Errorf("nox: %s: empty command: %w", op, ErrInvalidArgument)
	}
	return nil
}

// execExtra is what a command's timeout adds to the client's timeout: the
// timeout sent, else the default the backend applies, as it advertised it
// when Info is cached, else the contract's, DefaultExecTimeout.
func (c *Client) execExtra(req ExecRequest) time.Duration {
	if req.Timeout > 0 {
		return time.Duration(seconds(req.Timeout)) * time.Second
	}
	if i := c.cachedInfo(); i != nil && i.Limits.DefaultTimeout > 0 {
		return i.Limits.DefaultTimeout
	}
	return DefaultExecTimeout
}

// deriveTimedOut reports whether an exec result without the timedOut
// member has TimedOut derived from its exit code: unless the cached Info
// says the backend advertises exec.flags.
func (c *Client) deriveTimedOut() bool {
	return !c.cachedInfo().Supports(ExtExecFlags)
}

// Exec runs req.Cmd in the sandbox and waits for it. A command that exits
// non-zero is not an error: check ExecResult.ExitCode. Exec is not retried
// unless RetryPolicy.RetryNonIdempotent is set.
//
//meta:operation POST /v1/sandboxes/{sessionId}/exec
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (*ExecResult, error) {
	const op = "execInSandbox"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if err := checkExec(op, req); err != nil {
		return nil, err
	}
	body, err := c.execBody(ctx, op, req)
	if err != nil {
		return nil, err
	}
	return c.exec(ctx, id, req, body)
}

// exec sends an exec request whose body is built.
func (c *Client) exec(ctx context.Context, id string, req ExecRequest, body noxapi.ExecRequest) (*ExecResult, error) {
	const op = "execInSandbox"
	resp, err := c.do(ctx, call{op: op, extra: c.execExtra(req)}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.ExecInSandbox(ctx, id, body)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.ExecResult
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return nil, fmt.Errorf("%w (the command ran; its result could not be read)", err)
	}
	return fromGenExec(&g, c.deriveTimedOut()), nil
}

// Shell runs script with a shell, like the Python client's exec_shell: the
// command is ShellCommand(opts.Shell, script).
func (c *Client) Shell(ctx context.Context, id, script string, opts ShellOptions) (*ExecResult, error) {
	argv, err := ShellCommand(opts.Shell, script)
	if err != nil {
		return nil, err
	}
	return c.Exec(ctx, id, ExecRequest{Cmd: argv, Workdir: opts.Workdir, Env: opts.Env, Timeout: opts.Timeout, Stdin: opts.Stdin})
}

// DefaultShell is the shell that runs a script when none is named.
const DefaultShell = "sh"

// Shells returns the shells a script may name, DefaultShell first.
func Shells() []string { return []string{DefaultShell, "bash"} }

// ShellCommand returns the argv that runs script with shell, one of Shells
// ("" means DefaultShell): [shell, "-c", script]. Any other shell is an
// error matching ErrInvalidArgument.
func ShellCommand(shell, script string) ([]string, error) {
	if shell == "" {
		shell = DefaultShell
	}
	if !slices.Contains(Shells(), shell) {
		return nil, fmt.Errorf("nox: shell %q: want %s: %w", shell, strings.Join(Shells(), " or "), ErrInvalidArgument)
	}
	return []string{shell, "-c", script}, nil
}

// ExecStream runs req.Cmd and streams its output to opts as it is produced
// (extension exec.stream), then returns the final result, whose Stdout and
// Stderr hold the (capped) output again. When the backend does not
// advertise exec.stream (or is a plain v1 backend), ExecStream falls back to
// Exec and writes the output to opts afterwards. A stream silent for longer
// than opts.IdleTimeout fails with an error wrapping ErrStreamIdle; an
// `event: error` fails with an *APIError matching ErrInternal.
//
//meta:operation POST /v1/sandboxes/{sessionId}/exec/stream
func (c *Client) ExecStream(ctx context.Context, id string, req ExecRequest, opts StreamOptions) (*ExecResult, error) {
	const op = "execInSandboxStream"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if err := checkExec(op, req); err != nil {
		return nil, err
	}
	info, err := c.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: discovering the backend's extensions: %w", op, err)
	}
	body, err := c.execBody(ctx, op, req)
	if err != nil {
		return nil, err
	}
	if !info.Supports(ExtExecStream) {
		res, err := c.exec(ctx, id, req, body)
		if err != nil {
			return nil, err
		}
		if err := emit(opts, "stdout", []byte(res.Stdout)); err != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, err)
		}
		if err := emit(opts, "stderr", []byte(res.Stderr)); err != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, err)
		}
		return res, nil
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		hb := info.Limits.StreamHeartbeat
		if hb <= 0 {
			hb = DefaultHeartbeat
		}
		idle = 3 * hb
	}

	// The idle timer runs from the start: a backend that never answers is
	// as silent as a stream that stopped.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(context.Canceled)
	var idled atomic.Bool
	timer := time.AfterFunc(idle, func() {
		idled.Store(true)
		cancel(ErrStreamIdle)
	})
	defer timer.Stop()
	resp, err := c.do(ctx, call{op: op, streaming: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.ExecInSandboxStream(ctx, id, body, func(_ context.Context, r *http.Request) error {
			r.Header.Set("Accept", "text/event-stream")
			return nil
		})
	})
	if err != nil {
		if idled.Load() {
			return nil, fmt.Errorf("nox: %s: no answer for %s: %w", op, idle, ErrStreamIdle)
		}
		return nil, err
	}
	defer resp.Body.Close()
	timer.Reset(idle)
	r := &activityReader{r: resp.Body, onRead: func() { timer.Reset(idle) }}

	var result *ExecResult
	err = parseSSE(r, func(event string, data []byte) error {
		switch event {
		case "stdout", "stderr":
			var chunk noxapi.OutputChunk
			if _, err := decodeModel(data, &chunk); err != nil {
				return fmt.Errorf("%s event: %w", event, err)
			}
			return emit(opts, event, []byte(chunk.Data))
		case "exit":
			var g noxapi.ExecResult
			if _, err := decodeModel(data, &g); err != nil {
				return fmt.Errorf("exit event: %w", err)
			}
			result = fromGenExec(&g, c.deriveTimedOut())
			return errStop
		case "error":
			return &APIError{StatusCode: http.StatusInternalServerError, Operation: op,
				Message: errorMessage("application/json", data), RequestID: resp.Header.Get("X-Request-Id")}
		}
		return nil // unknown events are ignored
	})
	switch {
	case errors.Is(err, errStop):
		return result, nil
	case idled.Load():
		return nil, fmt.Errorf("nox: %s: no event or heartbeat for %s: %w", op, idle, ErrStreamIdle)
	case ctx.Err() != nil:
		// The caller's context ended (the stream may then look cut short).
		return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
	case err == nil:
		return nil, fmt.Errorf("nox: %s: the stream ended without an exit event: %w", op, io.ErrUnexpectedEOF)
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return nil, apiErr
	}
	return nil, fmt.Errorf("nox: %s: %w", op, err)
}

// emit hands one piece of output to the writer and callback of its stream.
func emit(opts StreamOptions, stream string, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	w, fn := opts.Stdout, opts.OnStdout
	if stream == "stderr" {
		w, fn = opts.Stderr, opts.OnStderr
	}
	if w != nil {
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("writing %s: %w", stream, err)
		}
	}
	if fn != nil {
		fn(p)
	}
	return nil
}

// activityReader calls onRead after every read that returned data.
type activityReader struct {
	r      io.Reader
	onRead func()
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.onRead()
	}
	return n, err
}

// errStop ends parseSSE without an error.
var errStop = errors.New("stop")

// parseSSE reads a text/event-stream with the tolerant reader of package
// sse and calls fn for every dispatched event with its type ("message" when
// none was given) and its data (data lines joined by "\n"). Comments, id and
// retry fields and unknown fields are ignored; lines end with "\n", "\r\n"
// or "\r" and are at most sse.DefaultMaxLine bytes long. It returns fn's
// first error, a read error, or nil at the end of the stream; an event not
// terminated by a blank line at the end of the stream is discarded, as the
// SSE specification requires.
func parseSSE(r io.Reader, fn func(event string, data []byte) error) error {
	sr := sse.NewReader(r)
	for {
		ev, err := sr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(ev.Type, ev.Data); err != nil {
			return err
		}
	}
}
