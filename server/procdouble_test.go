package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/server"
)

// procDouble is a double that also implements driver.Processes: its
// processes do nothing by themselves; tests script their output, exit,
// and read what they were sent.
type procDouble struct {
	*double

	pmu    sync.Mutex
	starts []driver.ProcessRequest
	procs  []*fakeProc
}

var _ driver.Processes = (*procDouble)(nil)

// procInfo is fullInfo with the processes extension and its limits.
func procInfo() driver.Info {
	in := fullInfo()
	in.Extensions = append(in.Extensions, api.ExtProcesses)
	in.Limits.MaxProcessesPerSandbox, in.Limits.MaxProcessRecords = 4, 16
	in.Limits.ProcessOutputBytes = 1 << 20
	return in
}

func newProcDouble() *procDouble { return &procDouble{double: &double{info: procInfo()}} }

func (d *procDouble) StartProcess(_ context.Context, id string, req driver.ProcessRequest) (driver.Process, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	d.starts = append(d.starts, req)
	p := newFakeProc(driver.ProcessInfo{
		ID: strconv.Itoa(len(d.procs) + 1), Tag: req.Tag, Argv: req.Argv, Workdir: req.Workdir,
		PTY: req.PTY != nil, Stdin: req.Stdin || req.PTY != nil,
		State: driver.ProcessRunning, StartedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	})
	d.procs = append(d.procs, p)
	return p, nil
}

func (d *procDouble) ListProcesses(_ context.Context, id string) ([]driver.ProcessInfo, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	var out []driver.ProcessInfo
	for _, p := range d.procs {
		out = append(out, p.Info())
	}
	return out, nil
}

func (d *procDouble) Process(_ context.Context, id, pid string) (driver.Process, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	for _, p := range d.procs {
		if p.info.ID == pid {
			return p, nil
		}
	}
	return nil, fmt.Errorf("process %q: %w", pid, driver.ErrNotFound)
}

// proc returns the process started n-th (from 1).
func (d *procDouble) proc(n int) *fakeProc {
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return d.procs[n-1]
}

// startedRequests returns the start requests received so far.
func (d *procDouble) startedRequests() []driver.ProcessRequest {
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return slices.Clone(d.starts)
}

// fakeProc is a scripted process.
type fakeProc struct {
	mu      sync.Mutex
	info    driver.ProcessInfo
	chunks  []driver.OutputChunk // every chunk produced; those below start are dropped
	start   int64                // the oldest offset kept
	changed chan struct{}        // closed and replaced at every change
	gone    bool                 // the sandbox ended: readers get ErrNotFound
	readers int                  // Next calls running
	waiters int                  // Wait calls waiting

	stdin       bytes.Buffer
	stdinClosed bool
	eofs        int // CloseStdin calls
	signals     []driver.Signal
	sizes       []driver.TermSize
}

func newFakeProc(in driver.ProcessInfo) *fakeProc {
	return &fakeProc{info: in, changed: make(chan struct{})}
}

// notify wakes up the waiters; p.mu is held.
func (p *fakeProc) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// emit appends output.
func (p *fakeProc) emit(s driver.Stream, data string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emitLocked(s, []byte(data))
}

func (p *fakeProc) emitLocked(s driver.Stream, data []byte) {
	p.chunks = append(p.chunks, driver.OutputChunk{Offset: p.info.OutputBytes, Stream: s, Data: bytes.Clone(data)})
	p.info.OutputBytes += int64(len(data))
	p.notify()
}

// drop forgets the output before offset.
func (p *fakeProc) drop(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = offset
}

// exit ends the process with code (and sig, when not "").
func (p *fakeProc) exit(code int, sig driver.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exitLocked(code, sig)
}

func (p *fakeProc) exitLocked(code int, sig driver.Signal) {
	if p.info.State != driver.ProcessRunning {
		return
	}
	p.info.State, p.info.ExitCode, p.info.Signal = driver.ProcessExited, code, sig
	p.info.EndedAt = p.info.StartedAt.Add(time.Second)
	p.notify()
}

// endSandbox makes the readers fail as when the sandbox ends.
func (p *fakeProc) endSandbox() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gone = true
	p.notify()
}

// waitFor waits until cond holds (checked with p.mu held) or 5 s passed.
func (p *fakeProc) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		p.mu.Lock()
		ok, ch := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not within 5s", what)
		}
	}
}

func (p *fakeProc) Info() driver.ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := p.info
	in.OutputStart = p.start
	return in
}

func (p *fakeProc) Wait(ctx context.Context) (driver.ProcessInfo, error) {
	for {
		p.mu.Lock()
		ended, ch := p.info.State != driver.ProcessRunning, p.changed
		if !ended {
			p.waiters++
		}
		p.mu.Unlock()
		if ended {
			return p.Info(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if ctx.Err() != nil {
			return driver.ProcessInfo{}, ctx.Err()
		}
	}
}

func (p *fakeProc) Output(from int64) driver.OutputReader { return &fakeReader{p: p, pos: from} }

func (p *fakeProc) WriteStdin(ctx context.Context, r io.Reader) (int64, error) {
	p.mu.Lock()
	if !p.info.Stdin || p.stdinClosed || p.info.State != driver.ProcessRunning {
		p.mu.Unlock()
		return 0, fmt.Errorf("process %q: stdin is closed: %w", p.info.ID, driver.ErrConflict)
	}
	p.mu.Unlock()
	var n int64
	buf := make([]byte, 4096)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			p.mu.Lock()
			p.stdin.Write(buf[:k])
			if p.info.PTY { // a terminal echoes
				p.emitLocked(driver.Stdout, buf[:k])
			}
			p.notify()
			p.mu.Unlock()
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// typed returns what was written to stdin.
func (p *fakeProc) typed() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdin.String()
}

func (p *fakeProc) CloseStdin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.info.Stdin || p.stdinClosed || p.info.State != driver.ProcessRunning {
		return fmt.Errorf("process %q: stdin is closed: %w", p.info.ID, driver.ErrConflict)
	}
	p.eofs++
	if !p.info.PTY { // a terminal stays open after Ctrl-D
		p.stdinClosed = true
	}
	p.notify()
	return nil
}

// sigNums are the numbers of the signals that end a fake process.
var sigNums = map[driver.Signal]int{driver.SIGHUP: 1, driver.SIGINT: 2, driver.SIGKILL: 9, driver.SIGTERM: 15}

func (p *fakeProc) Signal(sig driver.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info.State != driver.ProcessRunning {
		return nil
	}
	p.signals = append(p.signals, sig)
	if n, ok := sigNums[sig]; ok {
		p.exitLocked(128+n, sig)
	}
	p.notify()
	return nil
}

// received returns the signals received.
func (p *fakeProc) received() []driver.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.signals)
}

func (p *fakeProc) Resize(size driver.TermSize) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.info.PTY || p.info.State != driver.ProcessRunning {
		return fmt.Errorf("process %q has no terminal: %w", p.info.ID, driver.ErrConflict)
	}
	p.sizes = append(p.sizes, size)
	p.notify()
	return nil
}

// resized returns the sizes set.
func (p *fakeProc) resized() []driver.TermSize {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sizes)
}

func (p *fakeProc) Kill(ctx context.Context) (driver.ProcessInfo, error) {
	_ = p.Signal(driver.SIGKILL)
	return p.Wait(ctx)
}

// activeWaiters returns how many Wait calls are waiting.
func (p *fakeProc) activeWaiters() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiters
}

// fakeReader reads a fakeProc's output from pos.
type fakeReader struct {
	p       *fakeProc
	pos     int64
	dropped int64 // skipped since the last chunk returned
}

func (r *fakeReader) Next(ctx context.Context) (driver.OutputChunk, error) {
	p := r.p
	p.mu.Lock()
	p.readers++
	defer func() { p.readers--; p.mu.Unlock() }()
	for {
		if p.gone {
			return driver.OutputChunk{}, fmt.Errorf("sandbox %q: %w", "a", driver.ErrNotFound)
		}
		if r.pos < p.start {
			r.dropped += p.start - r.pos
			r.pos = p.start
		}
		for _, c := range p.chunks {
			end := c.Offset + int64(len(c.Data))
			if end > r.pos {
				c.Data = c.Data[r.pos-c.Offset:]
				c.Offset, c.Dropped = r.pos, r.dropped
				r.pos, r.dropped = end, 0
				return c, nil
			}
		}
		if p.info.State != driver.ProcessRunning {
			return driver.OutputChunk{}, io.EOF
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
			p.mu.Lock()
		case <-ctx.Done():
			p.mu.Lock()
			return driver.OutputChunk{}, ctx.Err()
		}
	}
}

// setupProcs serves a new procDouble (with info when non-nil).
func setupProcs(t testing.TB, opts server.Options, edit func(*driver.Info)) (*env, *procDouble) {
	t.Helper()
	d := newProcDouble()
	if edit != nil {
		edit(&d.double.info)
	}
	logs := &lockedBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	h, err := server.New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, d: d.double, url: srv.URL, token: opts.Token, logs: logs}, d
}
