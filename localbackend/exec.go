package localbackend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// defaultPath is the PATH of every command unless the request sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// commandEnv is the environment of a command: a clean default (PATH,
// HOME=/workspace, LANG=C.UTF-8, TMPDIR=/tmp) plus the sandbox's base
// variables (the egress proxy's) plus the request's variables, which win,
// never the server's, sorted by name.
func commandEnv(base, vars map[string]string) []string {
	all := map[string]string{"PATH": defaultPath, "HOME": workspaceDir, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
	maps.Copy(all, base)
	maps.Copy(all, vars)
	env := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		env = append(env, k+"="+all[k])
	}
	return env
}

// execHandle is a command admitted to run by store.startExec: the sandbox
// exists, a backend slot is held and the environment is up. It is the
// backend's driver.Execution: Wait or Abort must be called.
type execHandle struct {
	s           *store
	id          string
	b           *box
	env         environment
	spec        sandbox.ExecSpec // without Stdout and Stderr
	stdin       []byte           // written to the command's stdin (nil: none)
	releaseSlot func()
	once        sync.Once
}

var _ driver.Execution = (*execHandle)(nil)

// Abort releases the command's slot and its sandbox; it is done by Wait
// too, and later calls do nothing.
func (h *execHandle) Abort() {
	h.once.Do(func() {
		h.s.release(h.b, true)
		h.releaseSlot()
	})
}

// Wait runs the command. out, when non-nil, receives the output (up to
// the cap) as it is produced, as valid UTF-8 split on character
// boundaries; it must not block.
func (h *execHandle) Wait(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
	defer h.Abort()
	stdout := newCapWriter(h.s.cfg.MaxOutputBytes, chunksTo(out, driver.Stdout))
	stderr := newCapWriter(h.s.cfg.MaxOutputBytes, chunksTo(out, driver.Stderr))
	spec := h.spec
	spec.Stdout, spec.Stderr = stdout, stderr
	res, storageKilled, err := h.run(ctx, spec)
	var r driver.ExecResult
	switch {
	case ctx.Err() == nil && h.s.deleted(h.b):
		// Deleting the sandbox killed the command (or the environment
		// under it): a normal end, with the output produced so far.
		stderr.note(deletedNote)
		r = driver.ExecResult{ExitCode: 137, Duration: res.Duration}
	case storageKilled:
		// The storage monitor killed every process of the sandbox.
		stderr.note(storageKilledNote(h.b.meta.StorageBytes))
		r = driver.ExecResult{ExitCode: 137, Duration: res.Duration}
	case err == nil:
		r = driver.ExecResult{ExitCode: res.ExitCode, TimedOut: res.TimedOut, OOMKilled: res.OOMKilled, Duration: res.Duration}
		if res.OOMKilled {
			r.ExitCode = 137
			stderr.note(fmt.Sprintf("nox: the command was killed because the sandbox exceeded its memory limit (%s)\n", quantity.FormatBytes(h.b.meta.MemoryBytes)))
		}
	case ctx.Err() != nil:
		return driver.ExecResult{}, ctx.Err()
	case errors.Is(err, sandbox.ErrNoWorkdir):
		return driver.ExecResult{}, fmt.Errorf("workdir: %q does not exist in the sandbox or is not a directory: %w", spec.Dir, ErrInvalid)
	default:
		return driver.ExecResult{}, fmt.Errorf("exec in sandbox %q: %w", h.id, err)
	}
	r.Stdout, r.StdoutTruncated = stdout.finish()
	r.Stderr, r.StderrTruncated = stderr.finish()
	return r, nil
}

// run runs spec in the environment, rebuilding it once when it died since
// the command was admitted. storageKilled reports that the storage monitor
// killed the sandbox's processes while the command ran.
func (h *execHandle) run(ctx context.Context, spec sandbox.ExecSpec) (res sandbox.ExecResult, storageKilled bool, err error) {
	kills := h.s.storageKills(h.b)
	res, err = h.exec(ctx, h.env, spec)
	if errors.Is(err, sandbox.ErrStopped) {
		// The environment died since it was checked: rebuild it once.
		var env environment
		if env, err = h.s.startEnv(ctx, h.b); err == nil {
			kills = h.s.storageKills(h.b)
			res, err = h.exec(ctx, env, spec)
		}
	}
	storageKilled = (err != nil || res.ExitCode == 137) && ctx.Err() == nil && h.s.storageKills(h.b) != kills
	return res, storageKilled, err
}

// exec runs spec in env, writing h.stdin to its standard input when set.
func (h *execHandle) exec(ctx context.Context, env environment, spec sandbox.ExecSpec) (sandbox.ExecResult, error) {
	if h.stdin == nil {
		return env.Exec(ctx, spec)
	}
	st, ok := env.(starter)
	if !ok {
		return sandbox.ExecResult{}, fmt.Errorf("this backend's runtime cannot give commands a standard input: %w", ErrUnavailable)
	}
	spec.OpenStdin = true
	cmd, err := st.StartCommand(ctx, spec)
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// A command that exits without reading all of it is no error.
		_, _ = cmd.WriteStdin(wctx, h.stdin)
		_ = cmd.CloseStdin()
	}()
	return cmd.Wait(ctx)
}

// deletedNote is the stderr note of a command killed because its sandbox
// was deleted (or expired) while it ran.
const deletedNote = "nox: the command was killed because its sandbox was deleted\n"

// chunksTo returns the chunk callback of stream s for out (nil: none).
func chunksTo(out func(driver.Stream, string), s driver.Stream) func(string) {
	if out == nil {
		return nil
	}
	return func(data string) { out(s, data) }
}

// storageKills returns how often the storage monitor killed b's processes.
func (s *store) storageKills(b *box) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.storageKills
}
