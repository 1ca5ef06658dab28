package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// defaultPath is the PATH of every command unless the request sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execParams is a validated exec request.
type execParams struct {
	argv    []string
	dir     string
	env     []string
	timeout time.Duration
}

// execOutcome is how a command ended, with its captured output.
type execOutcome struct {
	exitCode                         int
	stdout, stderr                   string
	stdoutTruncated, stderrTruncated bool
	timedOut, oomKilled              bool
	duration                         time.Duration
}

// validateExec checks the meaning of an exec request (the validator has
// already checked its shape) and builds the command's environment: a clean
// default (PATH, HOME=/workspace, LANG=C.UTF-8, TMPDIR=/tmp) plus the
// request's variables, never the server's.
func (s *store) validateExec(cmd []string, workdir *string, env map[string]string, timeoutSeconds *int32) (execParams, error) {
	var p execParams
	if len(cmd) == 0 {
		return p, fmt.Errorf("cmd: must hold at least one element: %w", ErrInvalid)
	}
	if cmd[0] == "" {
		return p, fmt.Errorf("cmd: the program name (cmd[0]) must not be empty: %w", ErrInvalid)
	}
	for i, a := range cmd {
		if strings.IndexByte(a, 0) >= 0 {
			return p, fmt.Errorf("cmd: element %d contains a NUL byte: %w", i, ErrInvalid)
		}
	}
	p.argv = cmd
	p.dir = workspaceDir
	if workdir != nil {
		p.dir = *workdir
	}
	if !path.IsAbs(p.dir) || strings.IndexByte(p.dir, 0) >= 0 {
		return p, fmt.Errorf("workdir: %q must be an absolute path: %w", p.dir, ErrInvalid)
	}
	p.dir = path.Clean(p.dir)
	p.timeout = s.cfg.DefaultExecTimeout
	if timeoutSeconds != nil {
		max := int64(s.cfg.MaxExecTimeout / time.Second)
		if t := int64(*timeoutSeconds); t < 1 || t > max {
			return p, fmt.Errorf("timeoutSeconds: must be between 1 and %d: %w", max, ErrInvalid)
		}
		p.timeout = time.Duration(*timeoutSeconds) * time.Second
	}
	vars := map[string]string{"PATH": defaultPath, "HOME": workspaceDir, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return p, fmt.Errorf("env: invalid variable %q (names must be non-empty without '=' or NUL, values without NUL): %w", k, ErrInvalid)
		}
		vars[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		p.env = append(p.env, k+"="+vars[k])
	}
	return p, nil
}

// checkWorkdir returns ErrInvalid when dir lies in /workspace and is
// missing or not a directory there. Directories elsewhere, or reached
// through links leaving the workspace, are checked by the runtime.
func (s *store) checkWorkdir(b *box, dir string) error {
	rel, err := workspaceRel("workdir", dir)
	if err != nil {
		return nil // outside /workspace: the runtime decides
	}
	if rel == "." {
		return nil // the workspace itself, which the store created
	}
	root, err := os.OpenRoot(s.workspacePath(b.meta.Key))
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("workdir: %q does not exist: %w", dir, ErrInvalid)
	}
	if err != nil {
		// E.g. a link to a directory outside the workspace, which the
		// sandbox may well have: the runtime decides.
		return nil
	}
	if !fi.IsDir() {
		return fmt.Errorf("workdir: %q is not a directory: %w", dir, ErrInvalid)
	}
	return nil
}

// execHandle is a command admitted to run: the sandbox exists, a server
// slot is held and the environment is up. Exactly one of run or abort must
// be called.
type execHandle struct {
	s           *store
	id          string
	b           *box
	env         environment
	p           execParams
	releaseSlot func()
}

// startExec admits one command in sandbox id: an unknown id is
// ErrNotFound, a full server ErrBusy (after ExecQueueWait), a bad workdir
// ErrInvalid.
func (s *store) startExec(ctx context.Context, id string, p execParams) (*execHandle, error) {
	// Existence first, so an unknown id is a 404 even when the server is busy.
	s.mu.Lock()
	_, err := s.lookupLocked(id)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	releaseSlot, err := s.execSlot(ctx)
	if err != nil {
		return nil, err
	}
	b, env, err := s.acquire(ctx, id, true)
	if err != nil {
		releaseSlot()
		return nil, err
	}
	h := &execHandle{s: s, id: id, b: b, env: env, p: p, releaseSlot: releaseSlot}
	if err := s.checkWorkdir(b, p.dir); err != nil {
		h.abort()
		return nil, err
	}
	return h, nil
}

func (h *execHandle) abort() {
	h.s.release(h.b, true)
	h.releaseSlot()
}

// run runs the command. onStdout and onStderr, when non-nil, receive the
// output (up to the cap) as it is produced, as valid UTF-8 split on
// character boundaries; they must not block.
func (h *execHandle) run(ctx context.Context, onStdout, onStderr func(string)) (execOutcome, error) {
	defer h.abort()
	stdout := newCapWriter(h.s.cfg.MaxOutputBytes, onStdout)
	stderr := newCapWriter(h.s.cfg.MaxOutputBytes, onStderr)
	p := h.p
	spec := sandbox.ExecSpec{Argv: p.argv, Dir: p.dir, Env: p.env, Timeout: p.timeout, Stdout: stdout, Stderr: stderr}
	kills := h.s.storageKills(h.b)
	res, err := h.env.Exec(ctx, spec)
	if errors.Is(err, sandbox.ErrStopped) {
		// The environment died since it was checked: rebuild it once.
		var env environment
		if env, err = h.s.startEnv(ctx, h.b); err == nil {
			kills = h.s.storageKills(h.b)
			res, err = env.Exec(ctx, spec)
		}
	}
	if (err != nil || res.ExitCode == 137) && ctx.Err() == nil && h.s.storageKills(h.b) != kills {
		// The storage monitor killed every process of the sandbox.
		stderr.note(storageKilledNote(h.b.meta.StorageBytes))
		out := execOutcome{exitCode: 137, duration: res.Duration}
		out.stdout, out.stdoutTruncated = stdout.finish()
		out.stderr, out.stderrTruncated = stderr.finish()
		return out, nil
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return execOutcome{}, ctx.Err()
	case errors.Is(err, sandbox.ErrNoWorkdir):
		return execOutcome{}, fmt.Errorf("workdir: %q does not exist in the sandbox or is not a directory: %w", p.dir, ErrInvalid)
	default:
		return execOutcome{}, fmt.Errorf("exec in sandbox %q: %w", h.id, err)
	}
	out := execOutcome{exitCode: res.ExitCode, timedOut: res.TimedOut, oomKilled: res.OOMKilled, duration: res.Duration}
	if res.OOMKilled {
		out.exitCode = 137
		stderr.note(fmt.Sprintf("nox: the command was killed because the sandbox exceeded its memory limit (%s)\n", formatBytes(h.b.meta.MemoryBytes)))
	}
	out.stdout, out.stdoutTruncated = stdout.finish()
	out.stderr, out.stderrTruncated = stderr.finish()
	return out, nil
}

// storageKills returns how often the storage monitor killed b's processes.
func (s *store) storageKills(b *box) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.storageKills
}

// exec runs one command in sandbox id and waits for it.
func (s *store) exec(ctx context.Context, id string, p execParams) (execOutcome, error) {
	h, err := s.startExec(ctx, id, p)
	if err != nil {
		return execOutcome{}, err
	}
	return h.run(ctx, nil, nil)
}

// capWriter keeps the first max bytes written to it and forwards them, as
// complete UTF-8 characters, to an optional chunk callback.
type capWriter struct {
	mu        sync.Mutex
	max       int64
	buf       []byte
	truncated bool
	onChunk   func(string)
	pending   []byte // an incomplete character at the end of the last write
}

func newCapWriter(max int64, onChunk func(string)) *capWriter {
	return &capWriter{max: max, onChunk: onChunk}
}

// Write never fails and never blocks on the client: output beyond the cap
// is counted as written and dropped.
func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if room := w.max - int64(len(w.buf)); int64(len(p)) > room {
		p = p[:max(room, 0)]
		w.truncated = true
	}
	w.buf = append(w.buf, p...)
	if w.onChunk != nil && len(p) > 0 {
		data := append(w.pending, p...)
		cut := completePrefix(data)
		w.pending = slices.Clone(data[cut:])
		if cut > 0 {
			w.onChunk(strings.ToValidUTF8(string(data[:cut]), "\uFFFD"))
		}
	}
	return n, nil
}

// note appends a message after the captured output, even past the cap.
func (w *capWriter) note(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, msg...)
	if w.onChunk != nil {
		w.onChunk(strings.ToValidUTF8(string(w.pending)+msg, "\uFFFD"))
		w.pending = nil
	}
}

// finish flushes a pending partial character and returns the output as
// valid UTF-8.
func (w *capWriter) finish() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onChunk != nil && len(w.pending) > 0 {
		w.onChunk(strings.ToValidUTF8(string(w.pending), "\uFFFD"))
		w.pending = nil
	}
	return strings.ToValidUTF8(string(w.buf), "\uFFFD"), w.truncated
}

// completePrefix returns the length of the longest prefix of b that does
// not end inside a multi-byte UTF-8 character that may still be completed.
func completePrefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
