package server

import (
	"encoding/base64"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/quantity"
)

// The validator has checked the shape of every request against the
// contract; the functions here check what it cannot (limits that depend on
// the backend, argv and environment rules) and apply the defaults, so that
// a backend sees only driver requests within its Info().Limits.

// checkSessionID returns an ErrInvalidArgument error unless id is a
// session id the contract accepts.
func checkSessionID(id string) error {
	if !api.ValidSessionID(id) {
		return invalid("sessionId: must be 1 to %d characters from [A-Za-z0-9._-] starting with a letter or digit", api.MaxSessionIDLength)
	}
	return nil
}

// createRequest checks a create request against the backend's images and
// limits and fills in the default resource limits.
func createRequest(r noxapi.CreateSandboxRequest, info driver.Info) (driver.CreateRequest, error) {
	var c driver.CreateRequest
	l := info.Limits
	if r.TTLSeconds != nil {
		ttl, err := seconds("ttlSeconds", *r.TTLSeconds, l.MaxTTL)
		if err != nil {
			return c, err
		}
		c.TTL = ttl
	}
	if r.Image != nil {
		if len(info.Images) > 0 && !slices.Contains(info.Images, *r.Image) {
			return c, invalid("image: unknown image %q; available: %s", *r.Image, strings.Join(info.Images, ", "))
		}
		c.Image = *r.Image
	}
	var err error
	if c.CPUMilli, err = limit("cpuLimit", r.CPULimit, quantity.ParseCPUMilli, quantity.FormatCPUMilli, l.DefaultCPUMilli, l.MinCPUMilli, l.MaxCPUMilli); err != nil {
		return c, err
	}
	if c.MemoryBytes, err = limit("memoryLimit", r.MemoryLimit, quantity.ParseBytes, quantity.FormatBytes, l.DefaultMemoryBytes, l.MinMemoryBytes, l.MaxMemoryBytes); err != nil {
		return c, err
	}
	if c.StorageBytes, err = limit("ephemeralStorageLimit", r.EphemeralStorageLimit, quantity.ParseBytes, quantity.FormatBytes, l.DefaultStorageBytes, 0, l.MaxStorageBytes); err != nil {
		return c, err
	}
	return c, nil
}

// seconds checks a duration field given in seconds against max (not
// checked when zero).
func seconds(field string, n int32, max time.Duration) (time.Duration, error) {
	if m := int64(max / time.Second); m > 0 && (n < 1 || int64(n) > m) {
		return 0, invalid("%s: must be between 1 and %d", field, m)
	}
	if n < 1 {
		return 0, invalid("%s: must be at least 1", field)
	}
	return time.Duration(n) * time.Second, nil
}

// limit parses the resource quantity v of field (def when v is nil) and
// checks it against min and max (each not checked when zero).
func limit(field string, v *string, parse func(string) (int64, error), format func(int64) string, def, min, max int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	n, err := parse(*v)
	if err != nil {
		return 0, invalid("%s: %v", field, err)
	}
	if n <= 0 {
		return 0, invalid("%s: must be greater than zero", field)
	}
	if min > 0 && n < min {
		return 0, invalid("%s: %q is below the minimum %s this backend can enforce and still run commands", field, *v, format(min))
	}
	if max > 0 && n > max {
		return 0, invalid("%s: %q exceeds the maximum %s", field, *v, format(max))
	}
	return n, nil
}

// execRequest checks an exec request's argv, working directory, timeout
// and environment, and fills in the default working directory and timeout.
// With withStdin (the backend lists exec.stdin) it decodes stdin too;
// without, stdin and stdinEncoding are ignored as a v1 server ignores them.
func execRequest(r *noxapi.ExecRequest, l driver.Limits, withStdin bool) (driver.ExecRequest, error) {
	var x driver.ExecRequest
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
	x.Timeout = l.DefaultTimeout
	if r.TimeoutSeconds != nil {
		t, err := seconds("timeoutSeconds", *r.TimeoutSeconds, l.MaxTimeout)
		if err != nil {
			return x, err
		}
		x.Timeout = t
	}
	if err := checkEnv(r.Env); err != nil {
		return x, err
	}
	x.Env = r.Env
	if withStdin && r.Stdin != nil {
		if x.Stdin, err = execStdin(*r.Stdin, r.StdinEncoding, l.MaxStdinBytes); err != nil {
			return x, err
		}
	}
	return x, nil
}

// execStdin decodes an exec request's stdin as encoding says (nil:
// utf-8) and checks it against max (not checked when zero).
func execStdin(s string, encoding *noxapi.ExecRequestStdinEncoding, max int64) ([]byte, error) {
	enc := noxapi.UTF8
	if encoding != nil {
		enc = *encoding
	}
	var data []byte
	switch enc {
	case noxapi.UTF8:
		data = []byte(s)
	case noxapi.Base64:
		var err error
		if data, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, invalid("stdin: not valid base64 (stdinEncoding is base64): %v", err)
		}
	default:
		return nil, invalid("stdinEncoding: %q is neither utf-8 nor base64", enc)
	}
	if max > 0 && int64(len(data)) > max {
		return nil, invalid("stdin: %d bytes exceed the limit of %d bytes (maxStdinBytes)", len(data), max)
	}
	return data, nil
}

// workdir checks a working directory field (nil: /workspace) and returns
// it cleaned.
func workdir(p *string) (string, error) {
	wd := api.Workspace
	if p != nil {
		wd = *p
	}
	if !path.IsAbs(wd) || strings.IndexByte(wd, 0) >= 0 {
		return "", invalid("workdir: %q must be an absolute path", wd)
	}
	return path.Clean(wd), nil
}

// checkEnv checks the names and values of an env field.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return invalid("env: invalid variable %q (names must be non-empty without '=' or NUL, values without NUL)", k)
		}
	}
	return nil
}

// checkArgv checks that argv names a program and holds no NUL byte.
func checkArgv(argv []string) error {
	if len(argv) == 0 {
		return invalid("cmd: must hold at least one element")
	}
	if argv[0] == "" {
		return invalid("cmd: the program name (cmd[0]) must not be empty")
	}
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return invalid("cmd: element %d contains a NUL byte", i)
		}
	}
	return nil
}
