package proctable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/noxrunner/nox/driver"
)

// Config bounds a Table.
type Config struct {
	// MaxRunning is the most processes running at once (0: no limit).
	MaxRunning int
	// MaxRecords is the most records kept; the oldest ended ones are
	// forgotten first (0: no limit).
	MaxRecords int
	// OutputBytes is the output kept per process (must be positive).
	OutputBytes int64
	// OnChange, when set, is called after a process started or ended,
	// without the table's locks held (a backend persists Records there).
	OnChange func()
}

// Runner is a started command as a backend hands it to a Table. The
// table calls Wait once, from its own goroutine; the other methods may be
// called concurrently with it and with each other.
type Runner interface {
	// Wait waits until the command has ended (its timeout included) and
	// its output was written to the Sink, and says how it ended.
	Wait() Exit
	// WriteStdin writes p to standard input, blocking while it is full
	// until ctx ends.
	WriteStdin(ctx context.Context, p []byte) (int, error)
	// CloseStdin closes standard input (on a terminal: types Ctrl-D).
	CloseStdin() error
	// Signal sends sig to the command's process group.
	Signal(sig driver.Signal) error
	// Resize sets the terminal's window size.
	Resize(size driver.TermSize) error
	// Kill kills the command and everything it started.
	Kill()
}

// Exit is how a command ended.
type Exit struct {
	// ExitCode is the exit status (124 timeout, 126/127 could not start,
	// 128+N killed by signal N).
	ExitCode int
	// Signal names the signal that killed it, or "".
	Signal driver.Signal
	// TimedOut and OOMKilled say what killed it.
	TimedOut, OOMKilled bool
}

// StartFunc starts a command whose output goes to sink. An error means
// no command runs (it is returned to the client as it is).
type StartFunc func(sink Sink) (Runner, error)

// Table is the processes of one sandbox. It is safe for concurrent use.
type Table struct {
	cfg Config

	mu      sync.Mutex
	procs   []*process // oldest first
	byID    map[string]*process
	nextID  int64
	running int
	closed  bool
}

// New returns an empty table.
func New(cfg Config) *Table {
	if cfg.OutputBytes <= 0 {
		cfg.OutputBytes = 1 << 20
	}
	return &Table{cfg: cfg, byID: map[string]*process{}, nextID: 1}
}

// ErrClosed is returned by Start on a closed table.
var ErrClosed = errors.New("the sandbox is ending")

// Start reserves a slot and a record for req, starts the command with
// start and returns the process. sandbox names the sandbox in messages.
func (t *Table) Start(req driver.ProcessRequest, start StartFunc) (driver.Process, error) {
	p, err := t.reserve(req)
	if err != nil {
		return nil, err
	}
	r, err := start(Sink{p.out})
	if err != nil {
		t.unreserve(p)
		return nil, err
	}
	p.run = r
	go p.supervise()
	t.changed()
	return p, nil
}

// reserve checks the limits and adds a running record for req.
func (t *Table) reserve(req driver.ProcessRequest) (*process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("start process: %w: %w", ErrClosed, driver.ErrUnavailable)
	}
	if t.cfg.MaxRunning > 0 && t.running >= t.cfg.MaxRunning {
		return nil, fmt.Errorf("the sandbox already runs %d processes, the most it may (maxProcessesPerSandbox): %w", t.running, driver.ErrBusy)
	}
	if t.cfg.MaxRecords > 0 && len(t.procs) >= t.cfg.MaxRecords && !t.forgetOldestEndedLocked() {
		return nil, fmt.Errorf("the sandbox keeps %d process records, all running (maxProcessRecords): %w", len(t.procs), driver.ErrBusy)
	}
	p := &process{
		t:    t,
		out:  newOutputLog(t.cfg.OutputBytes),
		done: make(chan struct{}),
		info: driver.ProcessInfo{
			ID:        strconv.FormatInt(t.nextID, 10),
			Tag:       req.Tag,
			Argv:      slices.Clone(req.Argv),
			Workdir:   req.Workdir,
			PTY:       req.PTY != nil,
			Stdin:     req.Stdin || req.PTY != nil,
			State:     driver.ProcessRunning,
			StartedAt: time.Now().UTC(),
		},
	}
	t.nextID++
	t.running++
	t.procs = append(t.procs, p)
	t.byID[p.info.ID] = p
	return p, nil
}

// unreserve removes the record of a command that did not start.
func (t *Table) unreserve(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running--
	delete(t.byID, p.info.ID)
	if i := slices.Index(t.procs, p); i >= 0 {
		t.procs = slices.Delete(t.procs, i, i+1)
	}
}

// forgetOldestEndedLocked drops the oldest ended record; false when all
// run.
func (t *Table) forgetOldestEndedLocked() bool {
	for i, p := range t.procs {
		if p.ended() {
			delete(t.byID, p.info.ID)
			t.procs = slices.Delete(t.procs, i, i+1)
			return true
		}
	}
	return false
}

// changed calls OnChange.
func (t *Table) changed() {
	if t.cfg.OnChange != nil {
		t.cfg.OnChange()
	}
}

// Get returns process id; ErrNotFound naming it when there is none.
func (t *Table) Get(id string) (driver.Process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byID[id]
	if !ok {
		return nil, fmt.Errorf("process %q: %w", id, driver.ErrNotFound)
	}
	return p, nil
}

// List returns the records, oldest first.
func (t *Table) List() []driver.ProcessInfo {
	t.mu.Lock()
	procs := slices.Clone(t.procs)
	t.mu.Unlock()
	out := make([]driver.ProcessInfo, len(procs))
	for i, p := range procs {
		out[i] = p.Info()
	}
	return out
}

// Running returns the number of processes running.
func (t *Table) Running() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running
}

// Close refuses new processes and kills the running ones; it returns once
// they have ended or ctx ends. Records stay readable.
func (t *Table) Close(ctx context.Context) {
	t.mu.Lock()
	t.closed = true
	procs := slices.Clone(t.procs)
	t.mu.Unlock()
	for _, p := range procs {
		if !p.ended() && p.run != nil {
			p.run.Kill()
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
	}
}

// Restore adds records of an earlier run of the backend: those that were
// running are lost (their processes are gone), and none has output
// kept. New ids continue after theirs.
func (t *Table) Restore(records []driver.ProcessInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rec := range records {
		if _, dup := t.byID[rec.ID]; dup {
			continue
		}
		if rec.State == driver.ProcessRunning {
			rec.State = driver.ProcessLost
		}
		rec.Stdin = false
		rec.OutputStart = rec.OutputBytes
		p := &process{t: t, info: rec, out: newOutputLog(1), done: make(chan struct{})}
		p.out.start, p.out.end = rec.OutputBytes, rec.OutputBytes
		p.out.closed = true
		close(p.done)
		t.procs = append(t.procs, p)
		t.byID[rec.ID] = p
		if n, err := strconv.ParseInt(rec.ID, 10, 64); err == nil && n >= t.nextID {
			t.nextID = n + 1
		}
	}
}

// process is one record and, while it runs, its command.
type process struct {
	t    *Table
	run  Runner // nil for a restored record
	out  *outputLog
	done chan struct{} // closed when ended

	mu          sync.Mutex
	info        driver.ProcessInfo // output fields filled in by Info
	stdinClosed bool

	stdinMu sync.Mutex // serialises WriteStdin calls
}

// supervise waits for the command and records its end.
func (p *process) supervise() {
	e := p.run.Wait()
	p.out.close()
	p.mu.Lock()
	p.info.State = driver.ProcessExited
	p.info.EndedAt = time.Now().UTC()
	p.info.ExitCode, p.info.Signal = e.ExitCode, e.Signal
	p.info.TimedOut, p.info.OOMKilled = e.TimedOut, e.OOMKilled
	p.info.Stdin = false
	p.mu.Unlock()
	// The slot is free before waiters learn of the end: a client that
	// waited for (or killed) a process may start the next at once.
	p.t.mu.Lock()
	p.t.running--
	p.t.mu.Unlock()
	close(p.done)
	p.t.changed()
}

func (p *process) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Info implements driver.Process.
func (p *process) Info() driver.ProcessInfo {
	p.mu.Lock()
	info := p.info
	info.Argv = slices.Clone(info.Argv)
	p.mu.Unlock()
	info.OutputStart, info.OutputBytes = p.out.bounds()
	return info
}

// Wait implements driver.Process.
func (p *process) Wait(ctx context.Context) (driver.ProcessInfo, error) {
	select {
	case <-p.done:
		return p.Info(), nil
	case <-ctx.Done():
		return driver.ProcessInfo{}, context.Cause(ctx)
	}
}

// Output implements driver.Process.
func (p *process) Output(from int64) driver.OutputReader {
	return &reader{l: p.out, next: max(from, 0)}
}

// stdinErr returns why standard input cannot be written, or nil.
func (p *process) stdinErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.ended():
		return fmt.Errorf("process %q has ended: %w", p.info.ID, driver.ErrConflict)
	case !p.info.PTY && !p.info.Stdin && !p.stdinClosed:
		return fmt.Errorf("process %q has no standard input (start it with stdin or pty): %w", p.info.ID, driver.ErrConflict)
	case p.stdinClosed:
		return fmt.Errorf("process %q: standard input is closed: %w", p.info.ID, driver.ErrConflict)
	}
	return nil
}

// WriteStdin implements driver.Process.
func (p *process) WriteStdin(ctx context.Context, r io.Reader) (int64, error) {
	if err := p.stdinErr(); err != nil {
		return 0, err
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := p.stdinErr(); err != nil {
				return total, err
			}
			w, err := p.run.WriteStdin(ctx, buf[:n])
			total += int64(w)
			if err != nil {
				if serr := p.stdinErr(); serr != nil {
					return total, serr
				}
				if ctx.Err() != nil {
					return total, context.Cause(ctx)
				}
				return total, fmt.Errorf("process %q: write standard input: %w: %w", p.info.ID, err, driver.ErrConflict)
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// CloseStdin implements driver.Process.
func (p *process) CloseStdin() error {
	if err := p.stdinErr(); err != nil {
		return err
	}
	p.mu.Lock()
	pty := p.info.PTY
	if !pty {
		p.stdinClosed = true
		p.info.Stdin = false
	}
	p.mu.Unlock()
	if err := p.run.CloseStdin(); err != nil {
		return p.runnerErr("close standard input", err)
	}
	return nil
}

// runnerErr is the error of a runner call that failed: the process is
// ending (its pipe or terminal closed before its end was recorded)
// almost always, so once it has ended within a moment the error is the
// conflict of an ended process; otherwise err, as a conflict too (the
// process's standard input or terminal is unusable).
func (p *process) runnerErr(op string, err error) error {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-p.done:
		return fmt.Errorf("process %q has ended: %w", p.info.ID, driver.ErrConflict)
	case <-t.C:
	}
	return fmt.Errorf("process %q: %s: %w: %w", p.info.ID, op, err, driver.ErrConflict)
}

// Signal implements driver.Process.
func (p *process) Signal(sig driver.Signal) error {
	if p.ended() || p.run == nil {
		return nil
	}
	if err := p.run.Signal(sig); err != nil {
		if errors.Is(err, driver.ErrInvalidArgument) {
			return err
		}
		if errors.Is(p.runnerErr("signal", err), driver.ErrConflict) && p.ended() {
			return nil // it ended meanwhile: the signal is moot
		}
		return fmt.Errorf("process %q: signal %s: %w", p.info.ID, sig, err)
	}
	return nil
}

// Resize implements driver.Process.
func (p *process) Resize(size driver.TermSize) error {
	if !p.Info().PTY {
		return fmt.Errorf("process %q has no terminal (start it with pty): %w", p.info.ID, driver.ErrConflict)
	}
	if p.ended() {
		return fmt.Errorf("process %q has ended: %w", p.info.ID, driver.ErrConflict)
	}
	if err := p.run.Resize(size); err != nil {
		return p.runnerErr("resize", err)
	}
	return nil
}

// Kill implements driver.Process.
func (p *process) Kill(ctx context.Context) (driver.ProcessInfo, error) {
	if !p.ended() && p.run != nil {
		p.run.Kill()
	}
	return p.Wait(ctx)
}
