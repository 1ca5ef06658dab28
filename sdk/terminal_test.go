package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// termServer is a fake backend's terminal endpoint: it checks the
// request, sends a prompt, reads what the client sends (typed bytes and
// control messages) until an eof message, answers, then ends as end says.
type termServer struct {
	t   *testing.T
	end string // "exit", "drop" or "refuse"

	mu       sync.Mutex
	received []string // "binary:<bytes>" or the text of a control message
	queries  []string
	auth     []string
}

func (s *termServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.queries = append(s.queries, r.URL.RawQuery)
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	if s.end == "refuse" {
		writeJSON(w, http.StatusConflict, map[string]string{"error": `process "1" has no terminal`})
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.t.Errorf("accept: %v", err)
		return
	}
	defer conn.CloseNow()
	ctx := context.Background()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte("$ ")); err != nil {
		s.t.Errorf("write: %v", err)
		return
	}
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			s.t.Errorf("read: %v", err)
			return
		}
		msg := string(data)
		if typ == websocket.MessageBinary {
			msg = "binary:" + msg
		}
		s.mu.Lock()
		s.received = append(s.received, msg)
		s.mu.Unlock()
		if strings.Contains(msg, `"eof"`) {
			break
		}
	}
	_ = conn.Write(ctx, websocket.MessageBinary, []byte("hi\r\n"))
	if s.end == "drop" {
		return // CloseNow: the connection ends without an exit message
	}
	exit, _ := json.Marshal(map[string]any{"type": "exit", "process": procRecord("1", "exited", 3)})
	_ = conn.Write(ctx, websocket.MessageText, exit)
	_ = conn.Close(websocket.StatusNormalClosure, "")
}

// newTermBackend serves a process "1" on a terminal, its start and its
// kill, with s as its terminal endpoint.
func newTermBackend(t *testing.T, s *termServer) *procServer {
	rec := procRecord("1", "running", 0)
	rec["pty"] = true
	return newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"POST /v1/sandboxes/{id}/processes": func(w http.ResponseWriter, r *http.Request) {
			var req map[string]any
			_ = json.NewDecoder(r.Body).Decode(&req)
			if pty, _ := req["pty"].(map[string]any); pty["rows"] != 30.0 || pty["cols"] != 100.0 {
				t.Errorf("start request %v: want a 30x100 pty", req)
			}
			writeJSON(w, http.StatusCreated, rec)
		},
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, rec)
		},
		"DELETE /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, procRecord("1", "exited", 137))
		},
		"GET /v1/sandboxes/{id}/processes/{pid}/terminal": s.serve,
	})
}

// TestTerminal drives a terminal session over a socket, in process (the
// in-process transport hijacks the connection) and with WithDebug: the
// output, typed bytes, resize and eof messages, the exit message, the
// token and the hangup parameter.
func TestTerminal(t *testing.T) {
	t.Parallel()
	s := &termServer{t: t, end: "exit"}
	ps := newTermBackend(t, s)
	var debug bytes.Buffer
	clients := map[string]*Client{
		"socket":     ps.client(WithToken("tok")),
		"in process": ps.inProcess(WithToken("tok")),
		"debug":      ps.client(WithToken("tok"), WithDebug(&syncWriter{w: &debug})),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			term, err := c.Sandbox("demo").Terminal(t.Context(), TerminalOptions{Size: TermSize{Rows: 30, Cols: 100}})
			assertNoErr(t, err)
			prompt := make([]byte, 2)
			_, err = io.ReadFull(term, prompt)
			assertNoErr(t, err)
			assertEq(t, "prompt", string(prompt), "$ ")
			_, err = term.Write([]byte("echo hi\r"))
			assertNoErr(t, err)
			assertNoErr(t, term.Resize(40, 120))
			assertNoErr(t, term.CloseWrite())
			rest, err := io.ReadAll(term)
			assertNoErr(t, err)
			assertEq(t, "output", string(rest), "hi\r\n")
			rec, err := term.Wait()
			assertNoErr(t, err)
			assertEq(t, "exit code", rec.ExitCode, 3)
			assertEq(t, "process record", term.Process().Record().State, ProcessExited)
			assertNoErr(t, term.Close())
			_, err = term.Write([]byte("x"))
			if err == nil {
				t.Error("a write after Close succeeded")
			}
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := []string{"binary:echo hi\r", `{"type":"resize","rows":40,"cols":120}`, `{"type":"eof"}`}
	for i := 0; i < len(s.received); i += 3 {
		assertEq(t, "received", strings.Join(s.received[i:i+3], "|"), strings.Join(want, "|"))
	}
	assertEq(t, "sessions", len(s.received), 3*len(clients))
	for i := range s.queries {
		assertEq(t, "query", s.queries[i], "hangup=true")
		assertEq(t, "authorization", s.auth[i], "Bearer tok")
	}
	if !strings.Contains(debug.String(), "< 101 Switching Protocols") {
		t.Errorf("debug output does not show the upgrade:\n%s", debug.String())
	}
}

// TestTerminalLost checks that a connection that ends before the exit
// message is reported as lost, and Attach's parameters.
func TestTerminalLost(t *testing.T) {
	t.Parallel()
	s := &termServer{t: t, end: "drop"}
	ps := newTermBackend(t, s)
	p, err := ps.inProcess().Sandbox("demo").Process(t.Context(), "1")
	assertNoErr(t, err)
	term, err := p.Attach(t.Context(), 5)
	assertNoErr(t, err)
	_, err = term.Write([]byte("x"))
	assertNoErr(t, err)
	assertNoErr(t, term.CloseWrite())
	out, err := io.ReadAll(term)
	assertIs(t, err, ErrTerminalLost)
	assertEq(t, "output", string(out), "$ hi\r\n")
	_, err = term.Wait()
	assertIs(t, err, ErrTerminalLost)
	assertNoErr(t, term.Close())
	s.mu.Lock()
	assertEq(t, "query", s.queries[0], "from=5")
	s.mu.Unlock()
}

// TestTerminalRefused checks that a refused attach is an *APIError and
// that Terminal kills the process it started when its attach fails.
func TestTerminalRefused(t *testing.T) {
	t.Parallel()
	s := &termServer{t: t, end: "refuse"}
	ps := newTermBackend(t, s)
	for _, c := range []*Client{ps.client(), ps.inProcess()} {
		_, err := c.Sandbox("demo").Terminal(t.Context(), TerminalOptions{Size: TermSize{Rows: 30, Cols: 100}})
		assertIs(t, err, ErrConflict)
	}
	kills := 0
	for _, r := range ps.requests() {
		if strings.HasPrefix(r, "DELETE ") {
			kills++
		}
	}
	assertEq(t, "kills", kills, 2)
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestTerminalSplitsLargeWrites checks that a large write (a paste)
// travels in messages a backend accepts, in order.
func TestTerminalSplitsLargeWrites(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	var got bytes.Buffer
	rec := procRecord("1", "running", 0)
	rec["pty"] = true
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, rec)
		},
		"GET /v1/sandboxes/{id}/processes/{pid}/terminal": func(w http.ResponseWriter, r *http.Request) {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			conn.SetReadLimit(1 << 20) // as nox's server
			for {
				typ, data, err := conn.Read(r.Context())
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if typ == websocket.MessageText {
					break // eof
				}
				mu.Lock()
				sizes = append(sizes, len(data))
				got.Write(data)
				mu.Unlock()
			}
			exit, _ := json.Marshal(map[string]any{"type": "exit", "process": procRecord("1", "exited", 0)})
			_ = conn.Write(r.Context(), websocket.MessageText, exit)
			_ = conn.Close(websocket.StatusNormalClosure, "")
		},
	})
	p, err := ps.client().Sandbox("demo").Process(t.Context(), "1")
	assertNoErr(t, err)
	term, err := p.Attach(t.Context(), 0)
	assertNoErr(t, err)
	paste := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16+3)
	n, err := term.Write(paste)
	assertNoErr(t, err)
	assertEq(t, "written", n, len(paste))
	assertNoErr(t, term.CloseWrite())
	_, err = io.Copy(io.Discard, term)
	assertNoErr(t, err)
	_, err = term.Wait()
	assertNoErr(t, err)
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(got.Bytes(), paste) {
		t.Errorf("the backend got %d bytes, not the %d of the paste", got.Len(), len(paste))
	}
	for _, s := range sizes {
		if s > maxTerminalWrite {
			t.Errorf("a message of %d bytes", s)
		}
	}
}
