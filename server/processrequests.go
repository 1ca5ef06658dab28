package server

import (
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// The checks of the processes extension's requests, beside the exec
// request's in requests.go.

// The bounds of the processes extension's fields.
const (
	maxTermSide      = 1000 // rows and cols of a terminal
	maxTagLength     = 128  // bytes of a tag
	maxProcessIDLen  = 64   // bytes of a process id
	defaultWaitAsked = 30 * time.Second
	// defaultMaxProcessWait caps a waitProcess request when the backend's
	// Limits.MaxProcessWait is zero.
	defaultMaxProcessWait = 60 * time.Second
)

// processRequest checks a process start and fills in the default working
// directory. Unlike exec's, its timeout may be 0 (none) and defaults to 0.
func processRequest(r *noxapi.ProcessRequest, l driver.Limits) (driver.ProcessRequest, error) {
	var x driver.ProcessRequest
	if r == nil {
		return x, invalid("body: required")
	}
	if err := checkArgv(r.Cmd); err != nil {
		return x, err
	}
	x.Argv = r.Cmd
	wd, err := workdir(r.Workdir)
	if err != nil {
		return x, err
	}
	x.Workdir = wd
	if err := checkEnv(r.Env); err != nil {
		return x, err
	}
	x.Env = r.Env
	if r.TimeoutSeconds != nil {
		n, m := int64(*r.TimeoutSeconds), int64(l.MaxTimeout/time.Second)
		switch {
		case n < 0:
			return x, invalid("timeoutSeconds: must not be negative (0: no timeout)")
		case m > 0 && n > m:
			return x, invalid("timeoutSeconds: must be between 0 (no timeout) and %d", m)
		}
		x.Timeout = time.Duration(n) * time.Second
	}
	if r.Pty != nil {
		size, err := termSize("pty", *r.Pty)
		if err != nil {
			return x, err
		}
		x.PTY = &size
	}
	x.Stdin = r.Stdin != nil && *r.Stdin
	if r.Tag != nil {
		if len(*r.Tag) > maxTagLength || !utf8.ValidString(*r.Tag) {
			return x, invalid("tag: must be at most %d bytes of UTF-8", maxTagLength)
		}
		x.Tag = *r.Tag
	}
	return x, nil
}

// termSize checks a terminal size (field names it in messages).
func termSize(field string, s noxapi.TerminalSize) (driver.TermSize, error) {
	if s.Rows < 1 || s.Rows > maxTermSide || s.Cols < 1 || s.Cols > maxTermSide {
		return driver.TermSize{}, invalid("%s: rows and cols must be between 1 and %d (got %dx%d)", field, maxTermSide, s.Rows, s.Cols)
	}
	return driver.TermSize{Rows: uint16(s.Rows), Cols: uint16(s.Cols)}, nil
}

// signals are the signals a client may send, by name.
var signals = []driver.Signal{
	driver.SIGTERM, driver.SIGKILL, driver.SIGINT, driver.SIGHUP, driver.SIGQUIT,
	driver.SIGUSR1, driver.SIGUSR2, driver.SIGSTOP, driver.SIGCONT, driver.SIGWINCH,
}

// checkSignal returns the signal named s.
func checkSignal(s string) (driver.Signal, error) {
	for _, sig := range signals {
		if string(sig) == s {
			return sig, nil
		}
	}
	return "", invalid("signal: unknown signal %q (send TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT or WINCH, without SIG)", s)
}

// checkProcessID returns an ErrInvalidArgument error unless id is a
// process id the contract accepts: 1 to 64 characters from
// [A-Za-z0-9._-] starting with a letter or digit.
func checkProcessID(id string) error {
	ok := len(id) >= 1 && len(id) <= maxProcessIDLen && isAlnum(id[0])
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return invalid("processId: must be 1 to %d characters from [A-Za-z0-9._-] starting with a letter or digit", maxProcessIDLen)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// waitTimeout is how long a waitProcess request waits: asked (nil: 30 s),
// capped by max (zero: defaultMaxProcessWait).
func waitTimeout(asked *int32, max time.Duration) (time.Duration, error) {
	if max <= 0 {
		max = defaultMaxProcessWait
	}
	d := defaultWaitAsked
	if asked != nil {
		if *asked < 0 {
			return 0, invalid("timeoutSeconds: must not be negative")
		}
		d = time.Duration(*asked) * time.Second
	}
	return min(d, max), nil
}
