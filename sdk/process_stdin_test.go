package sdk

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// stdinServer is a fake backend's stdin endpoint: it hands what each
// request's body brings, as it arrives, to got.
type stdinServer struct {
	got    chan string
	mu     sync.Mutex
	closes int
}

func (s *stdinServer) serve(w http.ResponseWriter, r *http.Request) {
	var total int64
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			total += int64(n)
			s.got <- string(buf[:n])
		}
		if err != nil {
			break
		}
	}
	closed := r.URL.Query().Get("close") == "true"
	if closed {
		s.mu.Lock()
		s.closes++
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"written": total, "closed": closed})
}

// receive waits for n bytes to reach the backend and returns them. A
// write that does not arrive before the writer is closed was not
// streamed: the wait fails after a long time rather than flaking.
func (s *stdinServer) receive(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	deadline := time.After(30 * time.Second)
	for b.Len() < n {
		select {
		case part := <-s.got:
			b.WriteString(part)
		case <-deadline:
			t.Fatalf("the backend got %q of a %d-byte write before Close: the write was not streamed", b.String(), n)
		}
	}
	return b.String()
}

// TestStdinStreams checks that the writes of Process.Stdin reach the
// backend as they are made, in one request, and that Close closes
// standard input with one more.
func TestStdinStreams(t *testing.T) {
	t.Parallel()
	s := &stdinServer{got: make(chan string, 16)}
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
		},
		"POST /v1/sandboxes/{id}/processes/{pid}/stdin": s.serve,
	})
	for name, c := range map[string]*Client{"socket": ps.client(WithTimeout(time.Second)), "in process": ps.inProcess()} {
		t.Run(name, func(t *testing.T) {
			p, err := c.Sandbox("demo").Process(t.Context(), "1")
			assertNoErr(t, err)
			before := len(ps.requests())
			w := p.Stdin(t.Context())
			start := time.Now()
			for _, line := range []string{"read x\n", "echo got $x\n"} {
				if _, err := w.Write([]byte(line)); err != nil {
					t.Fatal(err)
				}
				assertEq(t, "received", s.receive(t, len(line)), line)
				if name == "socket" {
					// The stream outlives the Client's timeout.
					time.Sleep(600 * time.Millisecond)
				}
			}
			t.Logf("two writes reached the backend in %s", time.Since(start))
			assertNoErr(t, w.Close())
			_, err = w.Write([]byte("late"))
			if err == nil {
				t.Error("a write after Close succeeded")
			}
			reqs := ps.requests()[before:]
			want := "POST /v1/sandboxes/demo/processes/1/stdin?\nPOST /v1/sandboxes/demo/processes/1/stdin?close=true"
			assertEq(t, "requests", strings.Join(reqs, "\n"), want)
		})
	}
	s.mu.Lock()
	assertEq(t, "closes", s.closes, 2)
	s.mu.Unlock()
}

// TestStdinCalls checks WriteStdin, CloseStdin, a writer closed without
// a write, and how a refused stream is reported.
func TestStdinCalls(t *testing.T) {
	t.Parallel()
	s := &stdinServer{got: make(chan string, 16)}
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, procRecord(r.PathValue("pid"), "running", 0))
		},
		"POST /v1/sandboxes/{id}/processes/{pid}/stdin": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("pid") == "nostdin" {
				writeJSON(w, http.StatusConflict, map[string]string{"error": `process "nostdin": started without stdin`})
				return
			}
			s.serve(w, r)
		},
	})
	c := ps.client()
	ctx := t.Context()
	p, err := c.Sandbox("demo").Process(ctx, "1")
	assertNoErr(t, err)
	assertNoErr(t, p.WriteStdin(ctx, []byte("y\n")))
	assertEq(t, "received", s.receive(t, 2), "y\n")
	assertNoErr(t, p.CloseStdin(ctx))
	assertNoErr(t, p.Stdin(ctx).Close())

	np, err := c.Sandbox("demo").Process(ctx, "nostdin")
	assertNoErr(t, err)
	assertIs(t, np.WriteStdin(ctx, []byte("x")), ErrConflict)
	w := np.Stdin(ctx)
	var werr error
	for range 100 { // the refusal reaches a later write, or Close
		if _, werr = w.Write([]byte("x")); werr != nil {
			break
		}
	}
	cerr := w.Close()
	if werr != nil {
		assertIs(t, werr, ErrConflict)
	}
	assertIs(t, cerr, ErrConflict)
	want := []string{
		"POST /v1/sandboxes/demo/processes/1/stdin?",
		"POST /v1/sandboxes/demo/processes/1/stdin?close=true",
		"POST /v1/sandboxes/demo/processes/1/stdin?close=true",
		"POST /v1/sandboxes/demo/processes/nostdin/stdin?",
		"POST /v1/sandboxes/demo/processes/nostdin/stdin?",
	}
	var got []string
	for _, r := range ps.requests() {
		if strings.Contains(r, "/stdin") {
			got = append(got, r)
		}
	}
	assertEq(t, "requests", strings.Join(got, "\n"), strings.Join(want, "\n"))
}
