package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/noxrunner/nox/sdk"
)

// usageError is a mistake in the command line; nox exits 2.
type usageError struct {
	err error
	// cmd names the command whose --help the hint points to; empty for
	// nox's own.
	cmd string
	// global marks a mistake in a global flag, explained by nox --help.
	global bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// globalUsagef returns a usage error in a global flag.
func globalUsagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...), global: true}
}

// usageErr marks err as a usage error.
func usageErr(err error) error { return &usageError{err: err} }

// parseErr marks err, an error of the flag parser, as a usage error of
// the command cmd ("" for nox itself), with its flags written the way
// users type them (--ttl, not -ttl).
func parseErr(cmd string, err error) error {
	msg := longFlags(err.Error())
	if cmd != "" {
		msg = cmd + ": " + msg
	}
	return &usageError{err: errors.New(msg), cmd: cmd}
}

// flagInMessage finds the flag the flag package names in its errors, which
// it always writes with one dash ("invalid value \"5m\" for flag -ttl").
var flagInMessage = regexp.MustCompile(`(^|[\s:])-([A-Za-z0-9][A-Za-z0-9-]+)\b`)

// longFlags rewrites the one-dash flag names of the flag package's errors
// with two dashes, as nox's help and users write them; one-letter flags
// keep one dash.
func longFlags(msg string) string {
	return flagInMessage.ReplaceAllString(msg, "$1--$2")
}

// exitStatus is a remote command's non-zero exit code, passed through as
// nox's exit code without a message.
type exitStatus int

func (e exitStatus) Error() string {
	return fmt.Sprintf("remote command exited with status %d", int(e))
}

// opError names the object an operation failed on, e.g. `sandbox "demo"`,
// so the error line reads `sandbox "demo" not found (404)`.
type opError struct {
	what string
	err  error
}

func (e *opError) Error() string { return e.what + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// onSandbox wraps err as an operation on sandbox id.
func onSandbox(id string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{what: fmt.Sprintf("sandbox %q", id), err: err}
}

// restated is err said in the CLI's words: msg replaces err's text, which
// would repeat it, while errors.Is and As still see err.
type restated struct {
	err error
	msg string
}

func (e *restated) Error() string { return e.msg }
func (e *restated) Unwrap() error { return e.err }

// targetError carries the backend a failed call was sent to, for
// connection errors.
type targetError struct {
	target string
	err    error
}

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// report prints err as one line on stderr (a JSON object with --json) and
// returns the exit code for it.
func (a *app) report(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	code := exitError
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		code = exitUsage
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		code = exitInterrupted
	}
	msg := withoutSDKPrefix(describe(ctx, err))
	if a.jsonErrors {
		out := map[string]any{"error": msg, "exitCode": code}
		var apiErr *sdk.APIError
		if errors.As(err, &apiErr) {
			out["status"] = apiErr.StatusCode
			if apiErr.RequestID != "" {
				out["requestId"] = apiErr.RequestID
			}
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(a.stderr, "%s\n", b)
		return code
	}
	fmt.Fprintf(a.stderr, "%s %s\n", a.errColor.red("nox:"), msg)
	if code == exitUsage {
		help := "nox --help"
		if ue.cmd != "" {
			help = "nox " + ue.cmd + " --help"
		}
		fmt.Fprintf(a.stderr, "Run '%s' for usage.\n", help)
	}
	return code
}

// withoutSDKPrefix drops the "nox: " with which the SDK starts its errors
// (a Go program's logs need it), since nox prefixes the whole line once.
func withoutSDKPrefix(msg string) string {
	return strings.ReplaceAll(strings.TrimPrefix(msg, "nox: "), ": nox: ", ": ")
}

// describe turns err into one line saying what failed and why.
func describe(ctx context.Context, err error) string {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	var what string
	var op *opError
	if errors.As(err, &op) {
		what = op.what
	}
	if errors.Is(err, sdk.ErrUnsupported) {
		return err.Error() // it names the extension and the answer
	}
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) {
		return describeAPI(what, apiErr)
	}
	var te *targetError
	var dial *net.OpError
	if errors.As(err, &te) && errors.As(err, &dial) && dial.Op == "dial" {
		return fmt.Sprintf("cannot reach the backend at %s: %v (is it running? set --base-url or NOXRUNNER_BASE_URL, or use --local)", te.target, dial.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return strings.TrimSpace(err.Error()) + " (raise --request-timeout)"
	}
	return err.Error()
}

// describeAPI phrases an answer with an unexpected status.
func describeAPI(what string, e *sdk.APIError) string {
	status := fmt.Sprintf("(%d)", e.StatusCode)
	msg := e.Message
	// The request id helps the backend's operator with its own failures.
	if e.StatusCode >= 500 && e.RequestID != "" && !strings.Contains(msg, e.RequestID) {
		msg = strings.TrimSpace(msg + " [request id " + e.RequestID + "]")
	}
	if what == "" {
		what = "the backend"
	}
	switch {
	case errors.Is(e, sdk.ErrNotFound):
		// A download's 404 may be the missing source, a process call's
		// the missing process, not the sandbox: their message says.
		if namesWhatIsMissing(e.Operation) && msg != "" && !strings.Contains(msg, what) {
			return fmt.Sprintf("%s: %s %s", what, msg, status)
		}
		return fmt.Sprintf("%s not found %s", what, status)
	case errors.Is(e, sdk.ErrUnauthorized):
		return fmt.Sprintf("%s: unauthorized %s: %s (check --token or NOXRUNNER_TOKEN)", what, status, orDash(msg))
	case errors.Is(e, sdk.ErrInvalidArgument):
		return fmt.Sprintf("%s: invalid request %s: %s", what, status, orDash(msg))
	case errors.Is(e, sdk.ErrTooLarge):
		return fmt.Sprintf("%s: too large %s: %s", what, status, orDash(msg))
	case errors.Is(e, sdk.ErrConflict):
		return fmt.Sprintf("%s: conflict %s: %s", what, status, orDash(msg))
	case errors.Is(e, sdk.ErrUnavailable):
		return fmt.Sprintf("%s: backend unavailable %s: %s (try again later)", what, status, orDash(msg))
	case errors.Is(e, sdk.ErrInternal):
		return fmt.Sprintf("%s: backend error %s: %s", what, status, orDash(msg))
	}
	return fmt.Sprintf("%s: %s %s: %s", what, strings.ToLower(http.StatusText(e.StatusCode)), status, orDash(msg))
}

// namesWhatIsMissing reports whether the 404 answers of operation op may
// be about something inside the sandbox, which their message names.
func namesWhatIsMissing(op string) bool {
	switch op {
	case "downloadFiles", "getProcess", "killProcess", "waitProcess", "streamProcessOutput",
		"writeProcessStdin", "signalProcess", "resizeProcess", "attachTerminal":
		return true
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
