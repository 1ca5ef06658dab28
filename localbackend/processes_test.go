package localbackend

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
)

// startProc starts a process in sandbox id of a real backend.
func startProc(t *testing.T, e *testEnv, id string, req driver.ProcessRequest) driver.Process {
	t.Helper()
	if req.Workdir == "" {
		req.Workdir = workspaceDir
	}
	p, err := driverBackend{e.b}.StartProcess(context.Background(), id, req)
	if err != nil {
		t.Fatalf("start %v: %v", req.Argv, err)
	}
	return p
}

// procOutput reads p's output from 0 to its end.
func procOutput(t *testing.T, p driver.Process) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := p.Output(0)
	var out, errb bytes.Buffer
	for {
		c, err := r.Next(ctx)
		if err == io.EOF {
			return out.String(), errb.String()
		}
		if err != nil {
			t.Fatalf("output: %v (so far %q)", err, out.String())
		}
		if c.Stream == driver.Stderr {
			errb.Write(c.Data)
		} else {
			out.Write(c.Data)
		}
	}
}

func procWait(t *testing.T, p driver.Process) driver.ProcessInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return info
}

func TestRealProcesses(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("pr", nil)
	ctx := context.Background()

	t.Run("output and exit", func(t *testing.T) {
		p := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Tag: "x"})
		if info := procWait(t, p); info.ExitCode != 3 || info.State != driver.ProcessExited || info.Tag != "x" {
			t.Fatalf("record %+v", info)
		}
		if out, errs := procOutput(t, p); out != "out\n" || errs != "err\n" {
			t.Fatalf("stdout %q stderr %q", out, errs)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		p := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"sh", "-c", "read x; echo got $x; exec wc -c"}, Stdin: true})
		if _, err := p.WriteStdin(ctx, strings.NewReader("hi\n"+strings.Repeat("z", 1<<20))); err != nil {
			t.Fatal(err)
		}
		if err := p.CloseStdin(); err != nil {
			t.Fatal(err)
		}
		procWait(t, p)
		if out, _ := procOutput(t, p); out != "got hi\n1048576\n" {
			t.Fatalf("stdout %q", out)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		p := startProc(t, e, "pr", driver.ProcessRequest{
			Argv: []string{"sh", "-c", `tty; stty size; read x; stty size; echo "got $x"`},
			PTY:  &driver.TermSize{Rows: 30, Cols: 100},
		})
		r := p.Output(0)
		var seen bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for !strings.Contains(seen.String(), "30 100") {
			c, err := r.Next(cctx)
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
		procWait(t, p)
		out, _ := procOutput(t, p)
		if !regexp.MustCompile(`^/dev/pts/\d+\r\n30 100\r\n`).MatchString(out) || !strings.Contains(out, "40 120\r\ngot line") {
			t.Fatalf("terminal output %q", out)
		}
	})
	t.Run("signal kill timeout", func(t *testing.T) {
		p := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"sleep", "60"}})
		if err := p.Signal(driver.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if info := procWait(t, p); info.ExitCode != 143 || info.Signal != driver.SIGTERM {
			t.Fatalf("after TERM: %+v", info)
		}
		q := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"sh", "-c", "sleep 60 & sleep 60"}})
		if info, err := q.Kill(ctx); err != nil || info.ExitCode != 137 {
			t.Fatalf("kill: %+v %v", info, err)
		}
		r := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"sleep", "60"}, Timeout: 200 * time.Millisecond})
		if info := procWait(t, r); info.ExitCode != 124 || !info.TimedOut {
			t.Fatalf("timeout: %+v", info)
		}
	})
	t.Run("not found", func(t *testing.T) {
		p := startProc(t, e, "pr", driver.ProcessRequest{Argv: []string{"no-such-program"}})
		if info := procWait(t, p); info.ExitCode != 127 {
			t.Fatalf("record %+v", info)
		}
		d := driverBackend{e.b}
		if _, err := d.Process(ctx, "pr", "999"); !errors.Is(err, driver.ErrNotFound) {
			t.Fatalf("unknown process: %v", err)
		}
		if _, err := d.StartProcess(ctx, "pr", driver.ProcessRequest{Argv: []string{"true"}, Workdir: "/workspace/missing"}); !errors.Is(err, driver.ErrInvalidArgument) {
			t.Fatalf("missing workdir: %v", err)
		}
	})
	t.Run("exec stdin", func(t *testing.T) {
		r := e.exec("pr", map[string]any{"cmd": []string{"cat"}, "stdin": "piped\n"})
		if r.Stdout != "piped\n" || r.ExitCode != 0 {
			t.Fatalf("exec with stdin: %+v", r)
		}
	})
}

// A restarted backend shows the processes that ran as lost.
func TestRealProcessesLostAfterRestart(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("rl", nil)
	p := startProc(t, e, "rl", driver.ProcessRequest{Argv: []string{"sleep", "60"}, Tag: "bg"})
	id := p.Info().ID
	c := e.b.cfg
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	e2 := serve(t, b2, "")
	e2.t = t
	d2 := driverBackend{b2}
	q, err := d2.Process(context.Background(), "rl", id)
	if err != nil {
		t.Fatal(err)
	}
	if info := q.Info(); info.State != driver.ProcessLost || info.Tag != "bg" {
		t.Fatalf("after restart: %+v", info)
	}
	next := startProc(t, e2, "rl", driver.ProcessRequest{Argv: []string{"true"}})
	if next.Info().ID == id {
		t.Fatalf("process id %s reused", id)
	}
}
