package sdk

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// Process is a handle on one process of a sandbox, started by Start or
// found again by Sandbox.Process (from any program: a process is not tied
// to the client that started it). Its methods are safe for concurrent
// use.
type Process struct {
	sb *Sandbox
	id string

	mu   sync.Mutex
	last ProcessInfo
}

// requireExt fails with an error matching ErrUnsupported when the backend
// does not advertise ext (its Info is fetched once per Client).
func (c *Client) requireExt(ctx context.Context, op, ext string) error {
	info, err := c.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("nox: %s: discovering the backend's extensions: %w", op, err)
	}
	if !info.Supports(ext) {
		return fmt.Errorf("nox: %s: the backend does not advertise extension %s: %w", op, ext, ErrUnsupported)
	}
	return nil
}

// checkProcessID rejects an empty process id before any request is made.
func checkProcessID(op, pid string) error {
	if pid == "" {
		return fmt.Errorf("nox: %s: empty process id: %w", op, ErrInvalidArgument)
	}
	return nil
}

// Start starts cmd (an argv, never interpreted by a shell) in the sandbox
// and returns as soon as it runs (extension ExtProcesses; ErrUnsupported
// without it). The process outlives the call, ctx and the Client: it runs
// until it exits, is killed, reaches opts.Timeout or the sandbox ends,
// and its record and output stay readable from any program (see
// Sandbox.Process). A command that cannot start (not found, not
// executable) is not an error: its record says it exited with 127 or
// 126. Start is not retried unless RetryPolicy.RetryNonIdempotent is set.
//
//meta:operation POST /v1/sandboxes/{sessionId}/processes
func (s *Sandbox) Start(ctx context.Context, cmd []string, opts StartOptions) (*Process, error) {
	const op = "startProcess"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("nox: %s: empty command: %w", op, ErrInvalidArgument)
	}
	if err := s.c.requireExt(ctx, op, ExtProcesses); err != nil {
		return nil, err
	}
	body := toGenProcess(cmd, opts)
	resp, err := s.c.do(ctx, call{op: op}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.StartProcess(ctx, s.id, body)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.Process
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return nil, fmt.Errorf("%w (the process may have started: list them with Processes)", err)
	}
	return s.newProcess(fromGenProcess(&g)), nil
}

// newProcess returns a handle on the process of record rec.
func (s *Sandbox) newProcess(rec ProcessInfo) *Process {
	return &Process{sb: s, id: rec.ID, last: rec}
}

// Processes returns the records of the sandbox's processes, running and
// ended, oldest first (extension ExtProcesses). The backend keeps a
// bounded number of records (Limits.MaxProcessRecords), forgetting the
// oldest ended ones first.
//
//meta:operation GET /v1/sandboxes/{sessionId}/processes
func (s *Sandbox) Processes(ctx context.Context, opts ProcessListOptions) ([]ProcessInfo, error) {
	const op = "listProcesses"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if err := s.c.requireExt(ctx, op, ExtProcesses); err != nil {
		return nil, err
	}
	params := &noxapi.ListProcessesParams{Tag: ptrIf(opts.Tag)}
	resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.ListProcesses(ctx, s.id, params)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.ProcessList
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return nil, err
	}
	out := make([]ProcessInfo, 0, len(g.Items))
	for i := range g.Items {
		out = append(out, fromGenProcess(&g.Items[i]))
	}
	return out, nil
}

// Process returns a handle on the process pid of the sandbox, after
// fetching its record (extension ExtProcesses): how another program
// reattaches to a process it did not start. An unknown pid is an error
// matching ErrNotFound.
func (s *Sandbox) Process(ctx context.Context, pid string) (*Process, error) {
	const op = "getProcess"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if err := checkProcessID(op, pid); err != nil {
		return nil, err
	}
	if err := s.c.requireExt(ctx, op, ExtProcesses); err != nil {
		return nil, err
	}
	p := &Process{sb: s, id: pid}
	if _, err := p.Info(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// ID returns the process id.
func (p *Process) ID() string { return p.id }

// Sandbox returns the sandbox the process runs in.
func (p *Process) Sandbox() *Sandbox { return p.sb }

// Record returns the process's record as last received, without a
// request: from Start or Sandbox.Process, then Info, Wait, Signal, Kill
// or the end of Output. Info fetches the current one.
func (p *Process) Record() ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// remember stores rec as the last record received and returns it.
func (p *Process) remember(rec ProcessInfo) ProcessInfo {
	p.mu.Lock()
	p.last = rec
	p.mu.Unlock()
	return rec
}

// record sends one request answered with the process's record, and
// remembers the record.
func (p *Process) record(ctx context.Context, cl call, send func(ctx context.Context) (*http.Response, error)) (ProcessInfo, error) {
	if err := checkID(cl.op, p.sb.id); err != nil {
		return ProcessInfo{}, err
	}
	if err := checkProcessID(cl.op, p.id); err != nil {
		return ProcessInfo{}, err
	}
	resp, err := p.sb.c.do(ctx, cl, send)
	if err != nil {
		return ProcessInfo{}, err
	}
	var g noxapi.Process
	if _, err := decodeJSON(cl.op, resp, &g); err != nil {
		return ProcessInfo{}, err
	}
	return p.remember(fromGenProcess(&g)), nil
}

// Info fetches the process's record as it is now.
//
//meta:operation GET /v1/sandboxes/{sessionId}/processes/{processId}
func (p *Process) Info(ctx context.Context) (ProcessInfo, error) {
	c := p.sb.c
	return p.record(ctx, call{op: "getProcess", idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.GetProcess(ctx, p.sb.id, p.id)
	})
}

// Kill kills the process and every process it started, waits until it
// has ended and returns its final record. Killing an ended process
// returns its record unchanged.
//
//meta:operation DELETE /v1/sandboxes/{sessionId}/processes/{processId}
func (p *Process) Kill(ctx context.Context) (ProcessInfo, error) {
	c := p.sb.c
	return p.record(ctx, call{op: "killProcess", idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.KillProcess(ctx, p.sb.id, p.id)
	})
}

// Signal sends sig (one of Signals) to the process's process group: the
// process and the children that stayed in its group, as a terminal does.
// An ended process ignores it.
//
//meta:operation POST /v1/sandboxes/{sessionId}/processes/{processId}/signal
func (p *Process) Signal(ctx context.Context, sig Signal) error {
	c := p.sb.c
	body := noxapi.SignalRequest{Signal: noxapi.SignalRequestSignal(sig)}
	_, err := p.record(ctx, call{op: "signalProcess"}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.SignalProcess(ctx, p.sb.id, p.id, body)
	})
	return err
}

// Resize sets the window size of the process's terminal (a process
// started with StartOptions.PTY); the process gets SIGWINCH. A process
// without a terminal, or ended, is an error matching ErrConflict.
//
//meta:operation POST /v1/sandboxes/{sessionId}/processes/{processId}/resize
func (p *Process) Resize(ctx context.Context, rows, cols int) error {
	const op = "resizeProcess"
	if err := checkID(op, p.sb.id); err != nil {
		return err
	}
	if err := checkProcessID(op, p.id); err != nil {
		return err
	}
	c := p.sb.c
	body := toGenTermSize(TermSize{Rows: rows, Cols: cols})
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.ResizeProcess(ctx, p.sb.id, p.id, body)
	})
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	return nil
}

// defaultProcessWait is the longest wait of one waitProcess request when
// the backend does not advertise Limits.MaxProcessWait: the contract's
// default.
const defaultProcessWait = 30 * time.Second

// Wait waits until the process has ended and returns its final record
// (state exited, or lost when the backend restarted meanwhile). It asks
// the backend to wait for up to Limits.MaxProcessWait at a time and asks
// again until the process ends or ctx does, so it may wait for any time;
// a connection lost meanwhile is retried (see RetryPolicy). Ending ctx
// does not affect the process.
//
//meta:operation GET /v1/sandboxes/{sessionId}/processes/{processId}/wait
func (p *Process) Wait(ctx context.Context) (ProcessInfo, error) {
	const op = "waitProcess"
	c := p.sb.c
	wait := defaultProcessWait
	if info := c.cachedInfo(); info != nil && info.Limits.MaxProcessWait > 0 {
		wait = info.Limits.MaxProcessWait
	}
	secs := seconds(wait)
	params := &noxapi.WaitProcessParams{TimeoutSeconds: &secs}
	cl := call{op: op, idempotent: true, extra: wait + 10*time.Second}
	for early := 0; ; {
		start := time.Now()
		rec, err := p.record(ctx, cl, func(ctx context.Context) (*http.Response, error) {
			return c.gen.WaitProcess(ctx, p.sb.id, p.id, params)
		})
		if err != nil {
			return ProcessInfo{}, err
		}
		if rec.State != ProcessRunning {
			return rec, nil
		}
		// A backend that answers well before the wait it was asked for
		// is not waited on in a tight loop.
		if time.Since(start) >= wait/2 {
			early = 0
			continue
		}
		early++
		if err := sleepContext(ctx, min(time.Duration(early)*100*time.Millisecond, 2*time.Second)); err != nil {
			return ProcessInfo{}, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
	}
}

// sleepContext sleeps for d, or until ctx ends (then it returns ctx's
// error).
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
