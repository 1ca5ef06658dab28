package sdk

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
)

// The tests in this file run the process calls end to end: the SDK, the
// HTTP layer (package server) and the reference backend (membackend),
// whose processes are real host processes.

// newSandbox creates a sandbox for a test and returns its handle.
func newSandbox(t *testing.T, c *Client, id string) *Sandbox {
	t.Helper()
	sb := c.Sandbox(id)
	_, err := sb.Create(t.Context(), CreateOptions{})
	assertNoErr(t, err)
	return sb
}

// outputOf ranges over a process's whole output and returns its stdout
// and stderr.
func outputOf(t *testing.T, p *Process, from int64) (stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	next := from
	for ch, err := range p.Output(t.Context(), from) {
		assertNoErr(t, err)
		if ch.Offset != next {
			t.Errorf("chunk at offset %d, want %d", ch.Offset, next)
		}
		next = ch.Offset + int64(len(ch.Data))
		if ch.Stream == "stderr" {
			e.Write(ch.Data)
		} else {
			o.Write(ch.Data)
		}
	}
	return o.String(), e.String()
}

// TestProcessEndToEnd starts a process fed through stdin, reads its
// output and waits for it, then finds it again from another client.
func TestProcessEndToEnd(t *testing.T) {
	t.Parallel()
	for name, setupFn := range map[string]func(*testing.T, ...Option) (*Client, *testbackend.Backend){
		"socket": setup, "in process": setupInProcess,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, f := setupFn(t)
			ctx := t.Context()
			sb := newSandbox(t, c, "procs")
			p, err := sb.Start(ctx, []string{"sh", "-c", "read x; echo got $x; read y; echo and $y >&2; exit 3"},
				StartOptions{Stdin: true, Tag: "reader"})
			assertNoErr(t, err)
			w := p.Stdin(ctx)
			_, err = io.WriteString(w, "hi\n")
			assertNoErr(t, err)
			_, err = io.WriteString(w, "more\n")
			assertNoErr(t, err)
			assertNoErr(t, w.Close())
			rec, err := p.Wait(ctx)
			assertNoErr(t, err)
			assertEq(t, "exit code", rec.ExitCode, 3)
			stdout, stderr := outputOf(t, p, 0)
			assertEq(t, "stdout", stdout, "got hi\n")
			assertEq(t, "stderr", stderr, "and more\n")

			// Another program finds it by id, or by tag.
			other, err := New(c.BaseURL())
			if name == "in process" {
				other, err = New(c.BaseURL(), WithHandler(f))
			}
			assertNoErr(t, err)
			again, err := other.Sandbox("procs").Process(ctx, p.ID())
			assertNoErr(t, err)
			if r := again.Record(); r.State != ProcessExited || r.ExitCode != 3 || r.Tag != "reader" {
				t.Errorf("record found again: %+v", r)
			}
			list, err := other.Sandbox("procs").Processes(ctx, ProcessListOptions{Tag: "reader"})
			assertNoErr(t, err)
			if len(list) != 1 || list[0].ID != p.ID() {
				t.Errorf("Processes(tag reader) = %+v", list)
			}
			// Stdout and stderr are read apart: either may come first.
			from := int64(4)
			if strings.HasPrefix(stderr, "and") {
				chunks, err := collect(again.Output(ctx, 0))
				assertNoErr(t, err)
				if chunks[0].Stream == "stderr" {
					from += int64(len(stderr))
				}
			}
			stdout, _ = outputOf(t, again, from)
			assertEq(t, "stdout from 4 bytes into it", stdout, "hi\n")
		})
	}
}

// TestProcessSignals ends processes with TERM and with Kill, and checks
// that writing to an ended process's stdin is a conflict.
func TestProcessSignals(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := t.Context()
	sb := newSandbox(t, c, "signals")
	p, err := sb.Start(ctx, []string{"sleep", "60"}, StartOptions{Stdin: true})
	assertNoErr(t, err)
	assertNoErr(t, p.Signal(ctx, SIGTERM))
	rec, err := p.Wait(ctx)
	assertNoErr(t, err)
	if rec.ExitCode != 143 || rec.Signal != SIGTERM {
		t.Errorf("after TERM: %+v", rec)
	}
	assertIs(t, p.WriteStdin(ctx, []byte("x")), ErrConflict)

	tree, err := sb.Start(ctx, []string{"sh", "-c", "sleep 60 & sleep 60"}, StartOptions{})
	assertNoErr(t, err)
	rec, err = tree.Kill(ctx)
	assertNoErr(t, err)
	if rec.State != ProcessExited || rec.ExitCode != 137 {
		t.Errorf("after Kill: %+v", rec)
	}
	_, err = sb.Process(ctx, "no-such-process")
	assertIs(t, err, ErrNotFound)
}

// cutter cuts the answers to output streams after limit bytes, the first
// cuts times, as a flaky network does.
type cutter struct {
	f     *testbackend.Backend
	limit int
	cuts  atomic.Int32
	max   int32
}

func (c *cutter) hook(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasSuffix(r.URL.Path, "/output") || r.Header.Get("X-Cut") != "" || c.cuts.Load() >= c.max {
		return false
	}
	c.cuts.Add(1)
	r = r.Clone(r.Context())
	r.Header.Set("X-Cut", "1")
	c.f.ServeHTTP(&cutWriter{ResponseWriter: w, left: c.limit}, r)
	return true
}

// cutWriter aborts the answer once left bytes were written.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) >= w.left {
		_, _ = w.ResponseWriter.Write(p[:w.left])
		w.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is cut
	}
	w.left -= len(p)
	return w.ResponseWriter.Write(p)
}

func (w *cutWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// TestOutputAcrossCuts follows a process that prints for a while across
// connections cut mid-event, and checks that no byte is lost or
// repeated.
func TestOutputAcrossCuts(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	cut := &cutter{f: f, limit: 300, max: 4}
	f.SetHook(cut.hook)
	ctx := t.Context()
	sb := newSandbox(t, c, "cuts")
	p, err := sb.Start(ctx, []string{"sh", "-c", "i=0; while [ $i -lt 120 ]; do i=$((i+1)); echo line $i; sleep 0.005; done"}, StartOptions{})
	assertNoErr(t, err)
	stdout, _ := outputOf(t, p, 0)
	var want strings.Builder
	for i := 1; i <= 120; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	assertEq(t, "output", stdout, want.String())
	assertEq(t, "cuts", cut.cuts.Load(), int32(4))
	// A cut request passes the hook twice.
	assertEq(t, "output requests", f.Count(http.MethodGet, "/output"), 2*4+1)
}

// readUntil reads r until what it read contains want, and returns it;
// it fails the test when r ends first.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading until %q: %v; read %q", want, err, got)
		}
	}
	return string(got)
}

// TestTerminalEndToEnd runs a shell on a terminal over a socket and in
// process: tty, stty size, a resize, and the exit code; then attaches to
// a terminal process and detaches from it.
func TestTerminalEndToEnd(t *testing.T) {
	t.Parallel()
	for name, setupFn := range map[string]func(*testing.T, ...Option) (*Client, *testbackend.Backend){
		"socket": setup, "in process": setupInProcess,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _ := setupFn(t, WithToken("tok"))
			ctx := t.Context()
			sb := newSandbox(t, c, "term")
			term, err := sb.Terminal(ctx, TerminalOptions{Cmd: []string{"sh"}, Size: TermSize{Rows: 24, Cols: 80}})
			assertNoErr(t, err)
			defer term.Close()
			_, err = io.WriteString(term, "tty; stty size\n")
			assertNoErr(t, err)
			got := readUntil(t, term, "24 80")
			if !strings.Contains(got, "/dev/pts/") {
				t.Errorf("tty printed %q", got)
			}
			assertNoErr(t, term.Resize(30, 100))
			_, err = io.WriteString(term, "stty size\n")
			assertNoErr(t, err)
			readUntil(t, term, "30 100")
			_, err = io.WriteString(term, "exit 3\n")
			assertNoErr(t, err)
			_, err = io.Copy(io.Discard, term)
			assertNoErr(t, err)
			rec, err := term.Wait()
			assertNoErr(t, err)
			assertEq(t, "exit code", rec.ExitCode, 3)

			// A terminal process outlives its attachments.
			p, err := sb.Start(ctx, []string{"sh"}, StartOptions{PTY: &TermSize{Rows: 24, Cols: 80}})
			assertNoErr(t, err)
			a1, err := p.Attach(ctx, 0)
			assertNoErr(t, err)
			_, err = io.WriteString(a1, "echo one $((1+1))\n")
			assertNoErr(t, err)
			readUntil(t, a1, "one 2")
			assertNoErr(t, a1.Close())
			info, err := p.Info(ctx)
			assertNoErr(t, err)
			assertEq(t, "state after detaching", info.State, ProcessRunning)
			a2, err := p.Attach(ctx, 0)
			assertNoErr(t, err)
			readUntil(t, a2, "one 2") // replayed
			assertNoErr(t, a2.CloseWrite())
			_, err = io.Copy(io.Discard, a2)
			assertNoErr(t, err)
			rec, err = a2.Wait()
			assertNoErr(t, err)
			assertEq(t, "exit code after Ctrl-D", rec.ExitCode, 0)
		})
	}
}

// TestExecStdinEndToEnd sends text and bytes to a command's stdin.
func TestExecStdinEndToEnd(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := t.Context()
	sb := newSandbox(t, c, "stdin")
	res, err := sb.Exec(ctx, ExecRequest{Cmd: []string{"cat"}, Stdin: strings.NewReader("hello\n")})
	assertNoErr(t, err)
	assertEq(t, "stdout", res.Stdout, "hello\n")
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	res, err = sb.ExecStream(ctx, ExecRequest{Cmd: []string{"sh", "-c", "wc -c | tr -d ' '"}, Stdin: bytes.NewReader(all)}, StreamOptions{})
	assertNoErr(t, err)
	assertEq(t, "bytes counted", res.Stdout, "256\n")
	res, err = sb.Shell(ctx, "read a; echo got $a", ShellOptions{Stdin: strings.NewReader("x\n")})
	assertNoErr(t, err)
	assertEq(t, "shell stdout", res.Stdout, "got x\n")
}
