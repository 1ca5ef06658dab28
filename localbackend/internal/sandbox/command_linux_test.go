package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// allTiers runs f in a sandbox of each tier the host provides.
func allTiers(t *testing.T, f func(t *testing.T, s *Sandbox)) {
	for _, tier := range []Tier{TierNamespaces, TierRootNamespaces, TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			if tier == TierRootNamespaces && !isRoot() {
				t.Skip("needs root")
			}
			m := newManager(t, tier)
			s, _ := start(t, m, key("cmd"), Limits{Pids: 256})
			f(t, s)
		})
	}
}

// startCmd starts argv with e's other fields, output into out; the
// command is killed and waited for at the end of the test.
func startCmd(t testing.TB, s *Sandbox, e ExecSpec, out *lockedBuffer, argv ...string) *Command {
	t.Helper()
	e.Argv, e.Env, e.Stdout, e.Stderr = argv, append(testEnv(), e.Env...), out, out
	if e.Timeout == 0 {
		e.Timeout = time.Minute
	}
	c, err := s.Start(context.Background(), e)
	if err != nil {
		t.Fatalf("Start(%q): %v", argv, err)
	}
	t.Cleanup(func() {
		c.Kill()
		_, _ = c.Wait(context.Background())
	})
	return c
}

// waitCmd waits for c, failing the test on an error.
func waitCmd(t testing.TB, c *Command) ExecResult {
	t.Helper()
	r, err := c.Wait(context.Background())
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return r
}

// writeAll writes p to c's stdin.
func writeAll(t testing.TB, c *Command, p []byte) {
	t.Helper()
	if n, err := c.WriteStdin(context.Background(), p); err != nil || n != len(p) {
		t.Fatalf("WriteStdin: %d of %d bytes, %v", n, len(p), err)
	}
}

// awaitOutput waits until out contains s (a generous bound: it fails
// only when the command is stuck).
func awaitOutput(t testing.TB, out *lockedBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output %q", s, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// crlf undoes a terminal's output translation of "\n" to "\r\n".
func crlf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func TestStdinRoundTrip(t *testing.T) {
	allTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		c := startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "sh", "-c", "read x; echo got $x")
		writeAll(t, c, []byte("hello\n"))
		if r := waitCmd(t, c); r.ExitCode != 0 || out.String() != "got hello\n" {
			t.Fatalf("%+v %q", r, out.String())
		}
	})
}

// TestStdinLarge sends several MiB, in one write that fills the pipe
// many times over, and in many small ones.
func TestStdinLarge(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("big"), Limits{})
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:]) + "  -\n"

	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "sha256sum")
	t0 := time.Now()
	writeAll(t, c, data)
	if err := c.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if r := waitCmd(t, c); r.ExitCode != 0 || out.String() != want {
		t.Fatalf("sha256sum: %+v %q, want %q", r, out.String(), want)
	}
	t.Logf("8 MiB through sha256sum in %v", time.Since(t0))

	var wc lockedBuffer
	c = startCmd(t, s, ExecSpec{OpenStdin: true}, &wc, "wc", "-c")
	for p := data; len(p) > 0; p = p[min(len(p), 1000):] {
		writeAll(t, c, p[:min(len(p), 1000)])
	}
	if err := c.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if r := waitCmd(t, c); r.ExitCode != 0 || strings.TrimSpace(wc.String()) != fmt.Sprint(len(data)) {
		t.Fatalf("wc -c: %+v %q", r, wc.String())
	}
}

func TestStdinClose(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("eof"), Limits{})
	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "cat")
	writeAll(t, c, []byte("abc"))
	if err := c.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	if r := waitCmd(t, c); r.ExitCode != 0 || out.String() != "abc" {
		t.Fatalf("cat: %+v %q", r, out.String())
	}
	if _, err := c.WriteStdin(context.Background(), []byte("x")); !errors.Is(err, ErrNoStdin) {
		t.Errorf("WriteStdin after CloseStdin: %v", err)
	}
	if err := c.CloseStdin(); !errors.Is(err, ErrNoStdin) {
		t.Errorf("second CloseStdin: %v", err)
	}

	// Without OpenStdin there is none (and stdin reads end at once).
	c = startCmd(t, s, ExecSpec{}, &out, "cat")
	if _, err := c.WriteStdin(context.Background(), []byte("x")); !errors.Is(err, ErrNoStdin) {
		t.Errorf("WriteStdin without stdin: %v", err)
	}
	if err := c.CloseStdin(); !errors.Is(err, ErrNoStdin) {
		t.Errorf("CloseStdin without stdin: %v", err)
	}
	if err := c.Resize(WinSize{Rows: 1, Cols: 1}); !errors.Is(err, ErrNoTTY) {
		t.Errorf("Resize without a terminal: %v", err)
	}
	if r := waitCmd(t, c); r.ExitCode != 0 {
		t.Errorf("cat of nothing: %+v", r)
	}

	// A command that exits without reading: the write ends, not hangs.
	c = startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "true")
	waitCmd(t, c)
	if _, err := c.WriteStdin(context.Background(), make([]byte, 1<<20)); !errors.Is(err, ErrNoStdin) {
		t.Errorf("WriteStdin after the command ended: %v", err)
	}
}

// TestStdinBlocksUntilCtx: a write to a command that does not read fills
// the pipe and returns when ctx ends, with what it wrote; Kill ends the
// command and a write blocked meanwhile.
func TestStdinBlocksUntilCtx(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("full"), Limits{})
	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "sleep", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	n, err := c.WriteStdin(ctx, make([]byte, 4<<20))
	if !errors.Is(err, context.DeadlineExceeded) || n >= 4<<20 {
		t.Fatalf("WriteStdin to a full pipe: %d bytes, %v", n, err)
	}
	t.Logf("the pipe took %d bytes", n)

	blocked := make(chan error, 1)
	go func() {
		_, err := c.WriteStdin(context.Background(), make([]byte, 1<<20))
		blocked <- err
	}()
	c.Kill()
	if r := waitCmd(t, c); r.ExitCode != 137 || r.Signal != syscall.SIGKILL {
		t.Errorf("after Kill: %+v", r)
	}
	if err := <-blocked; !errors.Is(err, ErrNoStdin) {
		t.Errorf("write blocked during Kill: %v", err)
	}
}

func TestTTY(t *testing.T) {
	allTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		script := "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; stty size; echo TERM=$TERM; stty size < /dev/tty"
		c := startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 33, Cols: 101}}, &out, "sh", "-c", script)
		r := waitCmd(t, c)
		got := crlf(out.String())
		if r.ExitCode != 0 || !regexp.MustCompile(`^/dev/pts/\d+\nall-ttys\n33 101\nTERM=xterm-256color\n33 101\n$`).MatchString(got) {
			t.Fatalf("%+v %q", r, got)
		}
		// The request's TERM wins; a terminal's stderr is its output.
		out = lockedBuffer{}
		c = startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}, Env: []string{"TERM=dumb"}}, &out, "sh", "-c", "echo TERM=$TERM >&2")
		if r := waitCmd(t, c); r.ExitCode != 0 || crlf(out.String()) != "TERM=dumb\n" {
			t.Fatalf("%+v %q", r, out.String())
		}
		// Typed input is echoed and read.
		out = lockedBuffer{}
		c = startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "sh", "-c", "read x; echo got $x")
		writeAll(t, c, []byte("hi\n"))
		if r := waitCmd(t, c); r.ExitCode != 0 || crlf(out.String()) != "hi\ngot hi\n" {
			t.Fatalf("%+v %q", r, out.String())
		}
	})
}

// TestTTYResize: stty size follows Resize, and the command gets SIGWINCH.
func TestTTYResize(t *testing.T) {
	allTiers(t, testTTYResize)
}

func testTTYResize(t *testing.T, s *Sandbox) {
	var out lockedBuffer
	script := `trap 'stty size; exit 0' WINCH; stty size; echo ready; while :; do sleep 0.05; done`
	c := startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "sh", "-c", script)
	awaitOutput(t, &out, "ready")
	if err := c.Resize(WinSize{Rows: 50, Cols: 132}); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if r := waitCmd(t, c); r.ExitCode != 0 || crlf(out.String()) != "24 80\nready\n50 132\n" {
		t.Fatalf("%+v %q", r, out.String())
	}
	if err := c.Resize(WinSize{Rows: 1, Cols: 1}); !errors.Is(err, ErrNoTTY) {
		t.Errorf("Resize after the end: %v", err)
	}
}

// TestTTYCtrlC: Ctrl-C typed on the terminal interrupts the foreground
// process group.
func TestTTYCtrlC(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("intr"), Limits{})
	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "sh", "-c", "echo ready; sleep 1000; echo not-interrupted")
	awaitOutput(t, &out, "ready")
	// Ctrl-C again until the shell ends, as a user would: on a loaded
	// host the first may arrive while the shell is still starting sleep.
	done := make(chan ExecResult, 1)
	go func() { done <- waitCmd(t, c) }()
	var r ExecResult
	for i := 0; ; i++ {
		writeAll(t, c, []byte{0x03})
		select {
		case r = <-done:
		case <-time.After(500 * time.Millisecond):
			if i < 20 {
				continue
			}
			r = <-done
		}
		break
	}
	if r.ExitCode != 130 || r.Signal != syscall.SIGINT || strings.Contains(out.String(), "not-interrupted") {
		t.Fatalf("%+v %q", r, out.String())
	}
}

// TestTTYCloseStdin: CloseStdin types Ctrl-D: cat ends; the terminal
// stays writable.
func TestTTYCloseStdin(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("veof"), Limits{})
	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "sh", "-c", "cat; echo cat-ended; read x; echo got $x")
	writeAll(t, c, []byte("line\n"))
	if err := c.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	awaitOutput(t, &out, "cat-ended")
	writeAll(t, c, []byte("more\n"))
	if r := waitCmd(t, c); r.ExitCode != 0 || !strings.HasSuffix(crlf(out.String()), "cat-ended\nmore\ngot more\n") {
		t.Fatalf("%+v %q", r, out.String())
	}
	if _, err := c.WriteStdin(context.Background(), []byte("x")); !errors.Is(err, ErrNoStdin) {
		t.Errorf("WriteStdin after the end: %v", err)
	}
	if err := c.CloseStdin(); !errors.Is(err, ErrNoStdin) {
		t.Errorf("CloseStdin after the end: %v", err)
	}
}

func TestSignal(t *testing.T) {
	allTiers(t, func(t *testing.T, s *Sandbox) {
		var out lockedBuffer
		c := startCmd(t, s, ExecSpec{}, &out, "sleep", "1000")
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("Signal: %v", err)
		}
		r := waitCmd(t, c)
		if r.ExitCode != 143 || r.Signal != syscall.SIGTERM || r.TimedOut {
			t.Fatalf("after SIGTERM: %+v", r)
		}
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("Signal after the end: %v", err)
		}
		for _, sig := range []syscall.Signal{0, -1, 65} {
			if err := c.Signal(sig); err == nil {
				t.Errorf("Signal(%d): no error", sig)
			}
		}
		// The whole process group: the shell and its child.
		c = startCmd(t, s, ExecSpec{}, &out, "sh", "-c", "sleep 1000; echo survived")
		if err := c.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("Signal: %v", err)
		}
		if r := waitCmd(t, c); r.ExitCode != 129 || strings.Contains(out.String(), "survived") {
			t.Fatalf("after SIGHUP: %+v %q", r, out.String())
		}
		// A command that is not (or no more) registered in the init.
		if err := s.signal(1<<40, syscall.SIGKILL); err != nil {
			t.Errorf("signal to no command: %v", err)
		}
	})
}

// TestKillTree: Kill ends the command and its background children,
// with and without cgroups, and leaves earlier background processes.
func TestKillTree(t *testing.T) {
	for _, noCgroups := range []bool{false, true} {
		t.Run(fmt.Sprintf("noCgroups=%v", noCgroups), func(t *testing.T) {
			m, err := New(Options{Tier: TierAuto, StateDir: t.TempDir(), NoCgroups: noCgroups})
			if err != nil {
				t.Skip(err)
			}
			defer m.Close()
			s, _ := start(t, m, key("kill"), Limits{})
			sh(t, s, "sleep 1000 >/dev/null 2>&1 &")
			var out lockedBuffer
			c := startCmd(t, s, ExecSpec{}, &out, "sh", "-c", "sleep 1001 & sleep 1002 & echo started; wait")
			awaitOutput(t, &out, "started")
			c.Kill()
			if r := waitCmd(t, c); r.ExitCode != 137 || r.TimedOut {
				t.Fatalf("after Kill: %+v", r)
			}
			ps := cmdlines(t, s)
			if strings.Contains(ps, "sleep 1001") || strings.Contains(ps, "sleep 1002") {
				t.Errorf("children survive Kill:\n%s", ps)
			}
			if !strings.Contains(ps, "sleep 1000") {
				t.Errorf("an earlier background process died:\n%s", ps)
			}
			c.Kill() // after the end: nothing
		})
	}
}

// TestStartErrors: what Start reports and what Wait does.
func TestStartErrors(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("errs"), Limits{})
	if _, err := s.Start(context.Background(), ExecSpec{Argv: []string{"true"}, Dir: "/workspace/missing", Env: testEnv(), OpenStdin: true}); !errors.Is(err, ErrNoWorkdir) {
		t.Errorf("missing workdir: %v", err)
	}
	if _, err := s.Start(context.Background(), ExecSpec{Argv: []string{"true"}, Dir: "/workspace/missing", Env: testEnv(), TTY: &WinSize{Rows: 1, Cols: 1}}); !errors.Is(err, ErrNoWorkdir) {
		t.Errorf("missing workdir with a terminal: %v", err)
	}
	for _, tty := range []*WinSize{nil, {Rows: 24, Cols: 80}} {
		var out lockedBuffer
		c := startCmd(t, s, ExecSpec{TTY: tty, OpenStdin: true}, &out, "no-such-command")
		if r := waitCmd(t, c); r.ExitCode != 127 || !strings.Contains(out.String(), "not found") {
			t.Errorf("tty=%v: %+v %q", tty != nil, r, out.String())
		}
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("Signal to a command that never ran: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Start(ctx, ExecSpec{Argv: []string{"true"}, Env: testEnv()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Start: %v", err)
	}
	// Wait's ctx kills, as Exec's does; a second Wait gets the result.
	var out lockedBuffer
	c := startCmd(t, s, ExecSpec{}, &out, "sleep", "1000")
	wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer wcancel()
	if _, err := c.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a deadline: %v", err)
	}
	if _, err := c.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Wait: %v", err)
	}
	// The timeout counts from the start.
	c = startCmd(t, s, ExecSpec{Timeout: 200 * time.Millisecond}, &out, "sleep", "1000")
	if r := waitCmd(t, c); r.ExitCode != 124 || !r.TimedOut {
		t.Errorf("timeout: %+v", r)
	}
}

// TestExecWithTTY: Exec runs a command on a terminal too, and one with a
// stdin pipe that nobody writes (end-of-file at once).
func TestExecWithTTY(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("exectty"), Limits{})
	var out lockedBuffer
	r, err := s.Exec(context.Background(), ExecSpec{Argv: []string{"tty"}, Env: testEnv(), Stdout: &out, Timeout: time.Minute, TTY: &WinSize{Rows: 24, Cols: 80}})
	if err != nil || r.ExitCode != 0 || !strings.HasPrefix(out.String(), "/dev/pts/") {
		t.Fatalf("%+v %v %q", r, err, out.String())
	}
	out = lockedBuffer{}
	r, err = s.Exec(context.Background(), ExecSpec{Argv: []string{"cat"}, Env: testEnv(), Stdout: &out, Timeout: time.Minute, OpenStdin: true})
	if err != nil || r.ExitCode != 0 || out.String() != "" {
		t.Fatalf("%+v %v %q", r, err, out.String())
	}
}

// TestStartConcurrent: several commands with stdin at once (run with
// -race), each getting its own data.
func TestStartConcurrent(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("conc"), Limits{Pids: 256})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			data := bytes.Repeat([]byte(fmt.Sprintf("line %d\n", i)), 100000)
			var out lockedBuffer
			c, err := s.Start(context.Background(), ExecSpec{Argv: []string{"sh", "-c", "sort -u; echo done"}, Env: testEnv(), Stdout: &out, Timeout: time.Minute, OpenStdin: true})
			if err != nil {
				t.Errorf("Start %d: %v", i, err)
				return
			}
			go func() { _ = c.Signal(syscall.SIGCONT) }() // harmless, concurrent with the writes
			if _, err := c.WriteStdin(context.Background(), data); err != nil {
				t.Errorf("WriteStdin %d: %v", i, err)
			}
			if err := c.CloseStdin(); err != nil {
				t.Errorf("CloseStdin %d: %v", i, err)
			}
			r, err := c.Wait(context.Background())
			if want := fmt.Sprintf("line %d\ndone\n", i); err != nil || r.ExitCode != 0 || out.String() != want {
				t.Errorf("command %d: %+v %v %q, want %q", i, r, err, out.String(), want)
			}
		})
	}
	wg.Wait()
}

// TestUnwaitedCommand: a started command ends on its own (its timeout)
// whether Wait is called or not, and Stop does not wait for a Wait.
func TestUnwaitedCommand(t *testing.T) {
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("unwaited"), Limits{})
	c, err := s.Start(context.Background(), ExecSpec{Argv: []string{"sleep", "1001"}, Env: testEnv(), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Contains(cmdlines(t, s), "sleep 1001") {
		if time.Now().After(deadline) {
			t.Fatal("the timeout did not kill a command nobody waits for")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := waitCmd(t, c); r.ExitCode != 124 || !r.TimedOut {
		t.Errorf("Wait after the timeout: %+v", r)
	}

	if _, err := s.Start(context.Background(), ExecSpec{Argv: []string{"sleep", "1002"}, Env: testEnv(), OpenStdin: true}); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Stop hangs on a command nobody waits for")
	}
}

// TestNoFDLeak: the server keeps no descriptor of a command once it
// ended: pipes, terminals (received from the init or its own).
func TestNoFDLeak(t *testing.T) {
	allTiers(t, func(t *testing.T, s *Sandbox) {
		round := func() {
			var out lockedBuffer
			c := startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "cat")
			writeAll(t, c, []byte("x\n"))
			if err := c.CloseStdin(); err != nil {
				t.Fatal(err)
			}
			waitCmd(t, c)
			c = startCmd(t, s, ExecSpec{OpenStdin: true}, &out, "head", "-n1")
			writeAll(t, c, []byte("x\n"))
			waitCmd(t, c) // the pipe left open: the end closes it
			c = startCmd(t, s, ExecSpec{TTY: &WinSize{Rows: 24, Cols: 80}}, &out, "no-such-command")
			waitCmd(t, c)
			if err := c.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
		round() // warm: command cgroups are kept for reuse
		before := openFDs(t)
		for range 10 {
			round()
		}
		if after := openFDs(t); after != before {
			t.Errorf("open descriptors: %d before, %d after", before, after)
		}
	})
}

// openFDs counts the test process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
