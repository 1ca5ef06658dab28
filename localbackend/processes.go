package localbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/proctable"
	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// starter is an environment that can start a command without waiting for
// it: the sandbox runtime's (see sandboxEnv). Processes and exec stdin
// need it.
type starter interface {
	StartCommand(ctx context.Context, e sandbox.ExecSpec) (command, error)
}

// command is a started command, as *sandbox.Command provides it.
type command interface {
	Wait(ctx context.Context) (sandbox.ExecResult, error)
	WriteStdin(ctx context.Context, p []byte) (int, error)
	CloseStdin() error
	Signal(sig syscall.Signal) error
	Resize(size sandbox.WinSize) error
	Kill()
}

// processesFile is the name of a sandbox's process records, in its
// directory.
const processesFile = "processes.json"

// newProcessTable returns the process table of b.
func (s *store) newProcessTable(b *box) *proctable.Table {
	return proctable.New(proctable.Config{
		MaxRunning: s.cfg.MaxProcessesPerSandbox, MaxRecords: s.cfg.MaxProcessRecords,
		OutputBytes: s.cfg.ProcessOutputBytes,
		OnChange:    func() { s.saveProcesses(b) },
	})
}

// saveProcesses writes b's process records to its directory, so that a
// restarted server shows the processes that ran as lost rather than
// forgetting them. The write is atomic but not fsynced: after a host
// crash the last change may be missing (the sandbox's metadata, which
// is, does not depend on it). Once the store is closing nothing is
// written: the processes its shutdown kills are lost like those of a
// crash.
func (s *store) saveProcesses(b *box) {
	b.procMu.Lock()
	defer b.procMu.Unlock()
	s.mu.Lock()
	skip := s.closed || b.deleting
	s.mu.Unlock()
	if skip {
		return
	}
	data, err := json.Marshal(b.procs.List())
	if err != nil {
		return
	}
	name := filepath.Join(s.boxDir(b.meta.Key), processesFile)
	tmp := name + ".tmp"
	err = os.WriteFile(tmp, data, 0o600)
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		s.log.Warn("saving process records", "sessionId", b.meta.SessionID, "err", err)
	}
}

// loadProcesses restores the process records of the sandbox with key
// into b: the processes that ran are lost.
func (s *store) loadProcesses(b *box) {
	data, err := os.ReadFile(filepath.Join(s.boxDir(b.meta.Key), processesFile))
	if err != nil {
		return
	}
	var recs []driver.ProcessInfo
	if err := json.Unmarshal(data, &recs); err != nil {
		s.log.Warn("skipping unreadable process records", "sessionId", b.meta.SessionID, "err", err)
		return
	}
	b.procs.Restore(recs)
}

// startProcess starts a process in sandbox id. Like a command it counts
// as activity, but it does not keep the sandbox past its TTL: expiry and
// delete stop the environment and every process with it.
func (s *store) startProcess(ctx context.Context, id string, req driver.ProcessRequest) (driver.Process, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	if err == nil {
		s.touchLocked(b)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := s.checkWorkdir(b, req.Workdir); err != nil {
		return nil, err
	}
	s.liftRestriction(b)
	env, err := s.startEnv(ctx, b)
	if err != nil {
		return nil, err
	}
	st, ok := env.(starter)
	if !ok {
		return nil, fmt.Errorf("this backend's runtime cannot start processes: %w", ErrUnavailable)
	}
	vars := req.Env
	if req.PTY != nil {
		if _, set := vars["TERM"]; !set {
			vars = map[string]string{"TERM": "xterm-256color"}
			for k, v := range req.Env {
				vars[k] = v
			}
		}
	}
	spec := sandbox.ExecSpec{Argv: req.Argv, Dir: req.Workdir, Env: commandEnv(s.baseEnv(b), vars), Timeout: req.Timeout, OpenStdin: req.Stdin}
	if req.PTY != nil {
		spec.TTY = &sandbox.WinSize{Rows: req.PTY.Rows, Cols: req.PTY.Cols}
	}
	return b.procs.Start(req, func(sink proctable.Sink) (proctable.Runner, error) {
		spec.Stdout, spec.Stderr = sink.Stdout(), sink.Stderr()
		cmd, err := st.StartCommand(ctx, spec)
		switch {
		case errors.Is(err, sandbox.ErrNoWorkdir):
			return nil, fmt.Errorf("workdir: %q does not exist in the sandbox or is not a directory: %w", req.Workdir, ErrInvalid)
		case err != nil:
			if s.deleted(b) {
				return nil, notFound(id)
			}
			return nil, fmt.Errorf("start process in sandbox %q: %w", id, err)
		}
		return &processRunner{cmd: cmd, sink: sink, memory: b.meta.MemoryBytes}, nil
	})
}

// processRunner is a process's command in the sandbox runtime.
type processRunner struct {
	cmd    command
	sink   proctable.Sink
	memory int64 // the sandbox's memory limit, for the OOM note
}

// Wait waits for the command; an error of the runtime (the sandbox
// stopped under it) ends the process as killed.
func (r *processRunner) Wait() proctable.Exit {
	res, err := r.cmd.Wait(context.Background())
	if err != nil {
		return proctable.Exit{ExitCode: 137, Signal: driver.SIGKILL}
	}
	e := proctable.Exit{ExitCode: res.ExitCode, TimedOut: res.TimedOut, OOMKilled: res.OOMKilled}
	if res.Signal != 0 && !res.TimedOut {
		e.Signal = proctable.SignalName(res.Signal)
	}
	if res.OOMKilled {
		e.ExitCode, e.Signal = 137, driver.SIGKILL
		_, _ = fmt.Fprintf(r.sink.Stderr(), "nox: the process was killed because the sandbox exceeded its memory limit (%s)\n", quantity.FormatBytes(r.memory))
	}
	return e
}

func (r *processRunner) WriteStdin(ctx context.Context, p []byte) (int, error) {
	return r.cmd.WriteStdin(ctx, p)
}

func (r *processRunner) CloseStdin() error { return r.cmd.CloseStdin() }

func (r *processRunner) Signal(sig driver.Signal) error {
	n, ok := proctable.SyscallSignal(sig)
	if !ok {
		return fmt.Errorf("signal: unknown signal %q: %w", sig, ErrInvalid)
	}
	return r.cmd.Signal(n)
}

func (r *processRunner) Resize(size driver.TermSize) error {
	return r.cmd.Resize(sandbox.WinSize{Rows: size.Rows, Cols: size.Cols})
}

func (r *processRunner) Kill() { r.cmd.Kill() }

// process returns process pid of sandbox id.
func (s *store) process(id, pid string) (driver.Process, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return b.procs.Get(pid)
}

// processes returns the process records of sandbox id.
func (s *store) processes(id string) ([]driver.ProcessInfo, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return b.procs.List(), nil
}

var _ driver.Processes = driverBackend{}

// StartProcess starts a process in sandbox id.
func (d driverBackend) StartProcess(ctx context.Context, id string, req driver.ProcessRequest) (driver.Process, error) {
	return d.b.store.startProcess(ctx, id, req)
}

// ListProcesses returns the process records of sandbox id.
func (d driverBackend) ListProcesses(_ context.Context, id string) ([]driver.ProcessInfo, error) {
	return d.b.store.processes(id)
}

// Process returns process pid of sandbox id.
func (d driverBackend) Process(_ context.Context, id, pid string) (driver.Process, error) {
	return d.b.store.process(id, pid)
}
