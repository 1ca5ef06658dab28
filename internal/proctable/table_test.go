package proctable_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/proctable"
)

// fakeRunner is a command that ends when told to (end) or killed.
type fakeRunner struct {
	sink   proctable.Sink
	end    chan proctable.Exit
	mu     sync.Mutex
	stdin  strings.Builder
	closed bool
	sigs   []driver.Signal
	size   driver.TermSize
}

func (f *fakeRunner) Wait() proctable.Exit { return <-f.end }
func (f *fakeRunner) WriteStdin(_ context.Context, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stdin.Write(p)
	return len(p), nil
}
func (f *fakeRunner) CloseStdin() error { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }
func (f *fakeRunner) Signal(s driver.Signal) error {
	f.mu.Lock()
	f.sigs = append(f.sigs, s)
	f.mu.Unlock()
	return nil
}
func (f *fakeRunner) Resize(s driver.TermSize) error {
	f.mu.Lock()
	f.size = s
	f.mu.Unlock()
	return nil
}
func (f *fakeRunner) Kill() {
	select {
	case f.end <- proctable.Exit{ExitCode: 137, Signal: driver.SIGKILL}:
	default:
	}
}

// startFake starts a fake process in tb.
func startFake(t *testing.T, tb *proctable.Table, req driver.ProcessRequest) (driver.Process, *fakeRunner) {
	t.Helper()
	f := &fakeRunner{end: make(chan proctable.Exit, 1)}
	p, err := tb.Start(req, func(sink proctable.Sink) (proctable.Runner, error) {
		f.sink = sink
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func waitEnd(t *testing.T, p driver.Process) driver.ProcessInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestTableRecords(t *testing.T) {
	var changes atomic.Int32
	tb := proctable.New(proctable.Config{OnChange: func() { changes.Add(1) }})
	p, f := startFake(t, tb, driver.ProcessRequest{Argv: []string{"a", "b"}, Workdir: "/workspace", Tag: "web"})
	info := p.Info()
	if info.ID != "1" || info.State != driver.ProcessRunning || info.Tag != "web" || info.Workdir != "/workspace" || info.StartedAt.IsZero() {
		t.Fatalf("running record = %+v", info)
	}
	f.sink.Stdout().Write([]byte("hello"))
	f.end <- proctable.Exit{ExitCode: 3}
	info = waitEnd(t, p)
	if info.State != driver.ProcessExited || info.ExitCode != 3 || info.OutputBytes != 5 || info.EndedAt.IsZero() {
		t.Fatalf("ended record = %+v", info)
	}
	if n := changes.Load(); n != 2 {
		t.Fatalf("OnChange called %d times, want 2 (start, end)", n)
	}
	if _, err := tb.Get("2"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get(2) = %v", err)
	}
}

func TestTableStartFailureLeavesNoRecord(t *testing.T) {
	tb := proctable.New(proctable.Config{MaxRunning: 1})
	boom := errors.New("boom")
	_, err := tb.Start(driver.ProcessRequest{}, func(proctable.Sink) (proctable.Runner, error) { return nil, boom })
	if !errors.Is(err, boom) || len(tb.List()) != 0 || tb.Running() != 0 {
		t.Fatalf("err %v, %d records, %d running", err, len(tb.List()), tb.Running())
	}
	startFake(t, tb, driver.ProcessRequest{}) // the slot was given back
}

func TestTableLimits(t *testing.T) {
	tb := proctable.New(proctable.Config{MaxRunning: 2, MaxRecords: 2})
	p1, f1 := startFake(t, tb, driver.ProcessRequest{})
	startFake(t, tb, driver.ProcessRequest{})
	_, err := tb.Start(driver.ProcessRequest{}, func(proctable.Sink) (proctable.Runner, error) { t.Fatal("started"); return nil, nil })
	if !errors.Is(err, driver.ErrBusy) || !strings.Contains(err.Error(), "maxProcessesPerSandbox") {
		t.Fatalf("third running: %v", err)
	}
	f1.end <- proctable.Exit{}
	waitEnd(t, p1)
	startFake(t, tb, driver.ProcessRequest{}) // forgets record 1
	list := tb.List()
	if len(list) != 2 || list[0].ID != "2" || list[1].ID != "3" {
		t.Fatalf("records = %+v", list)
	}
	tb2 := proctable.New(proctable.Config{MaxRecords: 1})
	startFake(t, tb2, driver.ProcessRequest{})
	if _, err := tb2.Start(driver.ProcessRequest{}, nil); !errors.Is(err, driver.ErrBusy) || !strings.Contains(err.Error(), "maxProcessRecords") {
		t.Fatalf("records full of running processes: %v", err)
	}
}

func TestTableStdin(t *testing.T) {
	tb := proctable.New(proctable.Config{})
	ctx := context.Background()
	none, _ := startFake(t, tb, driver.ProcessRequest{})
	if _, err := none.WriteStdin(ctx, strings.NewReader("x")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("no stdin: %v", err)
	}
	p, f := startFake(t, tb, driver.ProcessRequest{Stdin: true})
	if n, err := p.WriteStdin(ctx, strings.NewReader("abc")); n != 3 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if p.Info().Stdin {
		t.Fatal("stdin still reported open after CloseStdin")
	}
	if _, err := p.WriteStdin(ctx, strings.NewReader("x")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("after close: %v", err)
	}
	if f.stdin.String() != "abc" || !f.closed {
		t.Fatalf("runner got %q, closed %v", f.stdin.String(), f.closed)
	}
	tty, tf := startFake(t, tb, driver.ProcessRequest{PTY: &driver.TermSize{Rows: 1, Cols: 1}})
	if err := tty.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if _, err := tty.WriteStdin(ctx, strings.NewReader("after eof")); err != nil {
		t.Fatalf("a terminal stays writable after end-of-file: %v", err)
	}
	if err := tty.Resize(driver.TermSize{Rows: 5, Cols: 6}); err != nil || tf.size.Rows != 5 {
		t.Fatalf("resize: %v, %+v", err, tf.size)
	}
	if err := p.Resize(driver.TermSize{Rows: 5, Cols: 6}); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("resize without a terminal: %v", err)
	}
	tf.end <- proctable.Exit{}
	waitEnd(t, tty)
	if _, err := tty.WriteStdin(ctx, strings.NewReader("x")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("write after the end: %v", err)
	}
	if err := tty.Signal(driver.SIGTERM); err != nil {
		t.Fatalf("signal after the end: %v", err)
	}
}

func TestTableKillAndClose(t *testing.T) {
	tb := proctable.New(proctable.Config{})
	p, _ := startFake(t, tb, driver.ProcessRequest{})
	info, err := p.Kill(context.Background())
	if err != nil || info.ExitCode != 137 || info.Signal != driver.SIGKILL {
		t.Fatalf("kill: %+v, %v", info, err)
	}
	q, _ := startFake(t, tb, driver.ProcessRequest{})
	tb.Close(context.Background())
	if info := waitEnd(t, q); info.State != driver.ProcessExited {
		t.Fatalf("after Close: %+v", info)
	}
	if _, err := tb.Start(driver.ProcessRequest{}, nil); !errors.Is(err, proctable.ErrClosed) {
		t.Fatalf("start after Close: %v", err)
	}
}

func TestTableRestoreMarksRunningLost(t *testing.T) {
	tb := proctable.New(proctable.Config{})
	tb.Restore([]driver.ProcessInfo{
		{ID: "4", State: driver.ProcessRunning, Stdin: true, OutputBytes: 10},
		{ID: "7", State: driver.ProcessExited, ExitCode: 2},
	})
	p, err := tb.Get("4")
	if err != nil {
		t.Fatal(err)
	}
	info := waitEnd(t, p)
	if info.State != driver.ProcessLost || info.Stdin || info.OutputStart != 10 {
		t.Fatalf("restored running record = %+v", info)
	}
	next, _ := startFake(t, tb, driver.ProcessRequest{})
	if next.Info().ID != "8" {
		t.Fatalf("new id after restore = %s, want 8", next.Info().ID)
	}
	if _, err := p.WriteStdin(context.Background(), strings.NewReader("x")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("stdin of a lost process: %v", err)
	}
	if _, err := p.Kill(context.Background()); err != nil {
		t.Fatalf("kill of a lost process: %v", err)
	}
}

// failingRunner's terminal is gone: Resize and CloseStdin fail, as they
// do while a process ends, before its end is recorded.
type failingRunner struct{ fakeRunner }

func (f *failingRunner) Resize(driver.TermSize) error { return errors.New("input/output error") }
func (f *failingRunner) CloseStdin() error            { return errors.New("input/output error") }

// A resize or end-of-file that races with the process's end is a
// conflict (the process has ended), never an internal error.
func TestTableRunnerFailuresAreConflicts(t *testing.T) {
	tb := proctable.New(proctable.Config{})
	f := &failingRunner{fakeRunner{end: make(chan proctable.Exit, 1)}}
	p, err := tb.Start(driver.ProcessRequest{PTY: &driver.TermSize{Rows: 1, Cols: 1}}, func(sink proctable.Sink) (proctable.Runner, error) {
		f.sink = sink
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(20 * time.Millisecond); f.end <- proctable.Exit{} }()
	if err := p.Resize(driver.TermSize{Rows: 2, Cols: 2}); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("resize as the process ends: %v", err)
	}
	if err := p.CloseStdin(); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("end-of-file after the end: %v", err)
	}
}
