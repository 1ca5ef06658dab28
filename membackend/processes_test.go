package membackend_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
)

// newSandbox returns a backend with one sandbox, "s".
func newSandbox(t *testing.T, cfg membackend.Config) *membackend.Backend {
	t.Helper()
	b, err := membackend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.Create(context.Background(), "s", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// start starts argv in sandbox s.
func start(t *testing.T, b *membackend.Backend, req driver.ProcessRequest) driver.Process {
	t.Helper()
	if req.Workdir == "" {
		req.Workdir = "/workspace"
	}
	p, err := b.StartProcess(context.Background(), "s", req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll reads a process's output to its end.
func readAll(t *testing.T, p driver.Process, from int64) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := p.Output(from)
	var out, errb bytes.Buffer
	for {
		c, err := r.Next(ctx)
		if err == io.EOF {
			return out.String(), errb.String()
		}
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		if c.Stream == driver.Stderr {
			errb.Write(c.Data)
		} else {
			out.Write(c.Data)
		}
	}
}

func wait(t *testing.T, p driver.Process) driver.ProcessInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return info
}

func TestProcessLifecycle(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; pwd; exit 3"}, Tag: "t"})
	info := wait(t, p)
	if info.State != driver.ProcessExited || info.ExitCode != 3 || info.Tag != "t" || info.EndedAt.IsZero() {
		t.Fatalf("record = %+v", info)
	}
	out, errs := readAll(t, p, 0)
	if out != "out\n/workspace\n" || errs != "err\n" {
		t.Fatalf("stdout %q stderr %q", out, errs)
	}
	list, err := b.ListProcesses(context.Background(), "s")
	if err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := b.Process(context.Background(), "s", "99"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("unknown process: %v", err)
	}
	if _, err := b.Process(context.Background(), "nope", "1"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("unknown sandbox: %v", err)
	}
}

func TestProcessNotFoundExits127(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"no-such-program-here"}})
	if info := wait(t, p); info.ExitCode != 127 {
		t.Fatalf("exit = %d", info.ExitCode)
	}
	if _, errs := readAll(t, p, 0); !strings.Contains(errs, "not found") {
		t.Fatalf("stderr = %q", errs)
	}
}

func TestProcessStdin(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"sh", "-c", "read x; echo got $x; exec cat"}, Stdin: true})
	ctx := context.Background()
	if _, err := p.WriteStdin(ctx, strings.NewReader("hi\nrest")); err != nil {
		t.Fatal(err)
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteStdin(ctx, strings.NewReader("late")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("write after close: %v", err)
	}
	wait(t, p)
	if out, _ := readAll(t, p, 0); out != "got hi\nrest" {
		t.Fatalf("stdout = %q", out)
	}
	q := start(t, b, driver.ProcessRequest{Argv: []string{"true"}})
	if _, err := q.WriteStdin(ctx, strings.NewReader("x")); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("write without stdin: %v", err)
	}
}

func TestProcessTerminal(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{
		Argv: []string{"sh", "-c", `tty; stty size; read x; stty size; echo "got $x"`},
		PTY:  &driver.TermSize{Rows: 30, Cols: 100},
	})
	// Wait for the first size, then resize and type a line.
	r := p.Output(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var seen bytes.Buffer
	for !strings.Contains(seen.String(), "30 100") {
		c, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("output so far %q: %v", seen.String(), err)
		}
		seen.Write(c.Data)
	}
	if err := p.Resize(driver.TermSize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteStdin(ctx, strings.NewReader("line\n")); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	out, _ := readAll(t, p, 0)
	if !regexp.MustCompile(`^/dev/pts/\d+\r\n30 100\r\n`).MatchString(out) || !strings.Contains(out, "40 120\r\ngot line") {
		t.Fatalf("terminal output %q", out)
	}
}

func TestProcessSignalKillTimeout(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"sleep", "60"}})
	if err := p.Signal(driver.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if info := wait(t, p); info.ExitCode != 143 || info.Signal != driver.SIGTERM {
		t.Fatalf("after TERM: %+v", info)
	}
	if err := p.Signal(driver.SIGTERM); err != nil {
		t.Fatalf("signal to an ended process: %v", err)
	}
	q := start(t, b, driver.ProcessRequest{Argv: []string{"sh", "-c", "sleep 60 & sleep 60"}})
	info, err := q.Kill(context.Background())
	if err != nil || info.ExitCode != 137 {
		t.Fatalf("kill: %+v, %v", info, err)
	}
	r := start(t, b, driver.ProcessRequest{Argv: []string{"sleep", "60"}, Timeout: 100 * time.Millisecond})
	if info := wait(t, r); info.ExitCode != 124 || !info.TimedOut {
		t.Fatalf("timeout: %+v", info)
	}
}

func TestProcessLimits(t *testing.T) {
	b := newSandbox(t, membackend.Config{Limits: driver.Limits{MaxProcessesPerSandbox: 1, MaxProcessRecords: 2}})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"sleep", "60"}})
	_, err := b.StartProcess(context.Background(), "s", driver.ProcessRequest{Argv: []string{"true"}, Workdir: "/workspace"})
	if !errors.Is(err, driver.ErrBusy) {
		t.Fatalf("second running process: %v", err)
	}
	p.Kill(context.Background())
	for range 3 {
		wait(t, start(t, b, driver.ProcessRequest{Argv: []string{"true"}}))
	}
	list, _ := b.ListProcesses(context.Background(), "s")
	if len(list) != 2 || list[0].ID != "3" || list[1].ID != "4" {
		t.Fatalf("records = %+v", list)
	}
}

func TestProcessesEndWithSandbox(t *testing.T) {
	b := newSandbox(t, membackend.Config{})
	p := start(t, b, driver.ProcessRequest{Argv: []string{"sleep", "60"}})
	if err := b.Delete(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if info := wait(t, p); info.State != driver.ProcessExited {
		t.Fatalf("after delete: %+v", info)
	}
}
