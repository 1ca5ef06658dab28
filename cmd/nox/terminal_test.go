package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/noxrunner/nox/internal/testbackend"
)

// onTerminal starts nox as a subprocess on a new pseudo-terminal of
// rows x cols, as its controlling terminal (so the terminal's SIGWINCH
// reaches it), and returns the terminal's master side. A nox still
// running after a minute is killed, which ends the test's reads.
func onTerminal(t *testing.T, cmd *exec.Cmd, rows, cols uint16) *os.File {
	t.Helper()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatalf("starting nox on a terminal: %v", err)
	}
	watchdog := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() {
		watchdog.Stop()
		_ = cmd.Process.Kill()
		_ = ptmx.Close()
	})
	return ptmx
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("nox: %v", err)
	}
	return 0
}

// sizeRe is what stty size prints.
var sizeRe = regexp.MustCompile(`(\d+) (\d+)\r\n`)

// sttySize types stty size and returns the size it prints next.
func sttySize(t *testing.T, term io.ReadWriter) string {
	t.Helper()
	if _, err := io.WriteString(term, "stty size\r"); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		if m := sizeRe.FindSubmatch(got); m != nil {
			return string(m[1]) + " " + string(m[2])
		}
		n, err := term.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading stty size: %v; read %q", err, got)
		}
	}
}

// TestShellOnATerminal runs nox shell on a pseudo-terminal: the remote
// shell has a terminal of this one's size (tty, stty size), follows a
// resize, gets Ctrl-C, and nox exits with the shell's exit code.
func TestShellOnATerminal(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	mustNox(t, 0, "", "--base-url", url, "create", "tty")
	cmd := noxProcess(t, url, "shell", "tty")
	term := onTerminal(t, cmd, 25, 90)

	if _, err := io.WriteString(term, "tty\r"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "/dev/pts/")
	if got := sttySize(t, term); got != "25 90" {
		t.Errorf("stty size = %s, want 25 90", got)
	}

	// The resize reaches nox as SIGWINCH, then the remote terminal;
	// until it has, stty size still prints the old size.
	if err := pty.Setsize(term, &pty.Winsize{Rows: 40, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; ; i++ {
		got := sttySize(t, term)
		if got == "40 132" {
			t.Logf("the resize arrived after %s (%d stty size)", time.Since(start), i+1)
			break
		}
		if got != "25 90" || i == 200 {
			t.Fatalf("stty size = %s after a resize to 40 132", got)
		}
	}

	// Ctrl-C interrupts the remote command, not nox. Each step waits for
	// the shell (a known prompt, or output that the echo of what was
	// typed does not hold), as a user does.
	for _, step := range []struct{ typed, want string }{
		{"PS1='P''S> '\r", "PS> "},
		// The child prints once it is the terminal's foreground job.
		{"sh -c 'echo $((100+23)); exec sleep 60'\r", "123"},
		{"\x03", "PS> "},
		{"echo $((6*7))\r", "42"},
	} {
		if _, err := io.WriteString(term, step.typed); err != nil {
			t.Fatal(err)
		}
		readUntil(t, term, step.want)
	}

	if _, err := io.WriteString(term, "exit 3\r"); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, term) // until nox exits (EIO)
	if code := exitCode(t, cmd); code != 3 {
		t.Errorf("nox shell exited %d, want the shell's 3", code)
	}
}

// TestAttach attaches to a process started with --pty from a terminal,
// detaches with Ctrl-], and attaches again with a piped standard input,
// against the reference backend and the local one.
func TestAttach(t *testing.T) {
	for kind, url := range backends(t) {
		t.Run(kind, func(t *testing.T) { attach(t, url) })
	}
}

func attach(t *testing.T, url string) {
	base := []string{"--base-url", url}
	mustNox(t, 0, "", append(base, "create", "att")...)
	pid := strings.TrimSpace(mustNox(t, 0, "", append(base, "start", "att", "--pty", "--", "sh")...).stdout)

	cmd := noxProcess(t, url, "attach", "att", pid)
	term := onTerminal(t, cmd, 24, 80)
	readUntil(t, term, "Ctrl-] detaches")
	if _, err := io.WriteString(term, "echo $((1000+234))\r"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "1234")
	if _, err := term.Write([]byte{detachKey}); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "detached")
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("nox attach exited %d after detaching, want 0", code)
	}
	if r := mustNox(t, 0, "", append(base, "ps", "att")...); !strings.Contains(r.stdout, "running") {
		t.Errorf("after detaching, ps shows:\n%s", r.stdout)
	}

	// A piped standard input is typed; nox exits with the exit code.
	r := mustNox(t, 4, "echo $((40+2)); exit 4\n", append(base, "attach", "att", pid)...)
	for _, want := range []string{"1234", "42"} { // replayed, then new
		if !strings.Contains(r.stdout, want) {
			t.Errorf("attach printed %q, without %s", r.stdout, want)
		}
	}
}

// TestShellLocalOnATerminal runs nox --local shell on a pseudo-terminal:
// the terminal's WebSocket goes to the local daemon over its unix socket.
func TestShellLocalOnATerminal(t *testing.T) {
	dataDir := needLocal(t)
	local := []string{"--local", "--data-dir", dataDir}
	mustNox(t, 0, "", append(local, "create", "lt", "--wait")...)
	cmd := noxProcess(t, "", append(local, "shell", "lt")...)
	term := onTerminal(t, cmd, 30, 100)
	if _, err := io.WriteString(term, "tty\r"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "/dev/pts/")
	if got := sttySize(t, term); got != "30 100" {
		t.Errorf("stty size = %s, want 30 100", got)
	}
	if _, err := io.WriteString(term, "exit 7\r"); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, term)
	if code := exitCode(t, cmd); code != 7 {
		t.Errorf("nox --local shell exited %d, want the shell's 7", code)
	}
	mustNox(t, 0, "", append(local, "delete", "lt")...)
}
