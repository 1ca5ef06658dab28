package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// allProcessExts are the extensions of a backend with every process
// feature.
var allProcessExts = []string{ExtInfo, ExtProcesses, ExtProcessesTerminal, ExtExecStdin, ExtExecStream}

// procServer serves GET /v1/info (with exts and limits) and routes, a
// map from ServeMux patterns without the base path ("POST
// /v1/sandboxes/{id}/processes") to handlers, under basePath. It records
// every request's method, path and query.
type procServer struct {
	t      *testing.T
	mux    *http.ServeMux
	mu     sync.Mutex
	seen   []string // "METHOD /path?query"
	limits map[string]any
	exts   []string
}

func newProcServer(t *testing.T, exts []string, routes map[string]http.HandlerFunc) *procServer {
	t.Helper()
	ps := &procServer{t: t, mux: http.NewServeMux(), exts: exts,
		limits: map[string]any{"streamHeartbeatSeconds": 1, "maxProcessWaitSeconds": 2}}
	ps.mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1",
			"backend": map[string]string{"name": "fake", "version": "1"}, "extensions": ps.exts, "limits": ps.limits})
	})
	for pattern, h := range routes {
		ps.mux.HandleFunc(pattern, h)
	}
	return ps
}

func (ps *procServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	ps.seen = append(ps.seen, r.Method+" "+strings.TrimPrefix(r.URL.Path, basePath)+"?"+r.URL.RawQuery)
	ps.mu.Unlock()
	http.StripPrefix(basePath, ps.mux).ServeHTTP(w, r)
}

// requests returns the requests seen so far but GET /v1/info.
func (ps *procServer) requests() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []string
	for _, s := range ps.seen {
		if !strings.HasPrefix(s, "GET /v1/info") {
			out = append(out, s)
		}
	}
	return out
}

// client returns a client for ps over a loopback socket.
func (ps *procServer) client(opts ...Option) *Client {
	ps.t.Helper()
	srv := httptest.NewServer(ps)
	ps.t.Cleanup(srv.Close)
	c, err := New(srv.URL+basePath, append([]Option{WithRetry(testPolicy())}, opts...)...)
	assertNoErr(ps.t, err)
	return c
}

// inProcess returns a client for ps through WithHandler.
func (ps *procServer) inProcess(opts ...Option) *Client {
	ps.t.Helper()
	c, err := New("http://nox.invalid"+basePath, append([]Option{WithRetry(testPolicy()), WithHandler(ps)}, opts...)...)
	assertNoErr(ps.t, err)
	return c
}

// procRecord is a Process record as the API sends it.
func procRecord(id, state string, exitCode int) map[string]any {
	rec := map[string]any{"id": id, "cmd": []string{"sleep", "9"}, "state": state,
		"startedAt": "2030-01-02T03:04:05Z", "outputBytes": 0, "outputStart": 0}
	if state == "exited" {
		rec["exitCode"] = exitCode
		rec["endedAt"] = "2030-01-02T03:04:06Z"
	}
	return rec
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// TestProcessCalls checks the request of every process call but the
// streams, with every request validated against the contract, and the
// records read back.
func TestProcessCalls(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	bodies := map[string]string{}
	keep := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[r.Method+" "+r.URL.Path] = string(b)
		mu.Unlock()
	}
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"POST /v1/sandboxes/{id}/processes": func(w http.ResponseWriter, r *http.Request) {
			keep(r)
			rec := procRecord("7", "running", 0)
			rec["tag"], rec["pty"], rec["stdin"] = "web", true, true
			writeJSON(w, http.StatusCreated, rec)
		},
		"GET /v1/sandboxes/{id}/processes": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{procRecord("7", "running", 0), procRecord("8", "exited", 3)}})
		},
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("pid") != "7" {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": `process "` + r.PathValue("pid") + `" not found`})
				return
			}
			writeJSON(w, http.StatusOK, procRecord("7", "running", 0))
		},
		"POST /v1/sandboxes/{id}/processes/{pid}/signal": func(w http.ResponseWriter, r *http.Request) {
			keep(r)
			writeJSON(w, http.StatusOK, procRecord("7", "running", 0))
		},
		"POST /v1/sandboxes/{id}/processes/{pid}/resize": func(w http.ResponseWriter, r *http.Request) {
			keep(r)
			w.WriteHeader(http.StatusNoContent)
		},
		"DELETE /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			rec := procRecord("7", "exited", 137)
			rec["signal"] = "KILL"
			writeJSON(w, http.StatusOK, rec)
		},
	})
	vt := newValidatingTransport(t, HandlerTransport(ps))
	c, err := New("http://nox.invalid"+basePath, WithTransport(vt), WithToken("t"))
	assertNoErr(t, err)
	ctx := t.Context()
	sb := c.Sandbox("demo")

	p, err := sb.Start(ctx, []string{"python3", "-m", "http.server"}, StartOptions{Workdir: "/workspace/site",
		Env: map[string]string{"A": "1"}, Timeout: 1500 * time.Millisecond, Stdin: true, PTY: &TermSize{Rows: 30, Cols: 100}, Tag: "web"})
	assertNoErr(t, err)
	assertEq(t, "id", p.ID(), "7")
	if rec := p.Record(); rec.Tag != "web" || !rec.PTY || !rec.Stdin || !rec.Running() || rec.StartedAt.IsZero() {
		t.Errorf("Start's record = %+v", rec)
	}
	assertEq(t, "start body", bodies["POST /v1/sandboxes/demo/processes"],
		`{"cmd":["python3","-m","http.server"],"env":{"A":"1"},"pty":{"cols":100,"rows":30},"stdin":true,"tag":"web","timeoutSeconds":2,"workdir":"/workspace/site"}`)

	list, err := sb.Processes(ctx, ProcessListOptions{Tag: "web"})
	assertNoErr(t, err)
	if len(list) != 2 || list[1].ExitCode != 3 || list[1].State != ProcessExited || list[1].EndedAt.IsZero() {
		t.Errorf("Processes = %+v", list)
	}

	again, err := sb.Process(ctx, "7")
	assertNoErr(t, err)
	assertEq(t, "reattached state", again.Record().State, ProcessRunning)
	_, err = sb.Process(ctx, "9")
	assertIs(t, err, ErrNotFound)

	assertNoErr(t, p.Signal(ctx, SIGTERM))
	assertEq(t, "signal body", bodies["POST /v1/sandboxes/demo/processes/7/signal"], `{"signal":"TERM"}`)
	assertNoErr(t, p.Resize(ctx, 40, 120))
	assertEq(t, "resize body", bodies["POST /v1/sandboxes/demo/processes/7/resize"], `{"cols":120,"rows":40}`)
	rec, err := p.Kill(ctx)
	assertNoErr(t, err)
	if rec.State != ProcessExited || rec.ExitCode != 137 || rec.Signal != SIGKILL {
		t.Errorf("Kill = %+v", rec)
	}
	assertEq(t, "record after kill", p.Record().ExitCode, 137)

	want := []string{
		"POST /v1/sandboxes/demo/processes?",
		"GET /v1/sandboxes/demo/processes?tag=web",
		"GET /v1/sandboxes/demo/processes/7?",
		"GET /v1/sandboxes/demo/processes/9?",
		"POST /v1/sandboxes/demo/processes/7/signal?",
		"POST /v1/sandboxes/demo/processes/7/resize?",
		"DELETE /v1/sandboxes/demo/processes/7?",
	}
	assertEq(t, "requests", strings.Join(ps.requests(), "\n"), strings.Join(want, "\n"))
	vt.mu.Lock()
	defer vt.mu.Unlock()
	for _, err := range vt.errs {
		t.Error(err)
	}
}

// TestProcessesUnsupported checks that every process call fails with
// ErrUnsupported, without a request, on a backend that does not
// advertise the extension.
func TestProcessesUnsupported(t *testing.T) {
	t.Parallel()
	ps := newProcServer(t, []string{ExtInfo, ExtProcesses}, nil)
	c := ps.client()
	ctx := t.Context()
	sb := c.Sandbox("demo")
	_, err := sb.Terminal(ctx, TerminalOptions{})
	assertIs(t, err, ErrUnsupported)
	ps.exts = []string{ExtInfo}
	c = ps.client()
	sb = c.Sandbox("demo")
	_, err = sb.Start(ctx, []string{"true"}, StartOptions{})
	assertIs(t, err, ErrUnsupported)
	_, err = sb.Processes(ctx, ProcessListOptions{})
	assertIs(t, err, ErrUnsupported)
	_, err = sb.Process(ctx, "1")
	assertIs(t, err, ErrUnsupported)
	if got := ps.requests(); len(got) != 0 {
		t.Errorf("requests sent: %q", got)
	}
	_, err = sb.Start(ctx, nil, StartOptions{})
	assertIs(t, err, ErrInvalidArgument)
	_, err = c.Sandbox("").Processes(ctx, ProcessListOptions{})
	assertIs(t, err, ErrInvalidArgument)
}

// TestWaitAsksAgain checks that Wait asks again while the process runs,
// with the longest wait the backend advertises, and returns the final
// record.
func TestWaitAsksAgain(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	waits := 0
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
		},
		"GET /v1/sandboxes/{id}/processes/{pid}/wait": func(w http.ResponseWriter, r *http.Request) {
			if got := r.URL.Query().Get("timeoutSeconds"); got != "2" {
				t.Errorf("timeoutSeconds = %q, want the advertised 2", got)
			}
			mu.Lock()
			waits++
			n := waits
			mu.Unlock()
			if n < 3 {
				writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
				return
			}
			writeJSON(w, http.StatusOK, procRecord("1", "exited", 5))
		},
	})
	// WithTimeout shorter than the wait: Wait's requests get the wait
	// on top of it.
	c := ps.client(WithTimeout(time.Second))
	p, err := c.Sandbox("demo").Process(t.Context(), "1")
	assertNoErr(t, err)
	start := time.Now()
	rec, err := p.Wait(t.Context())
	assertNoErr(t, err)
	t.Logf("Wait took %s over %d requests answered at once", time.Since(start), waits)
	if rec.State != ProcessExited || rec.ExitCode != 5 {
		t.Errorf("Wait = %+v", rec)
	}
	assertEq(t, "wait requests", waits, 3)
}

// TestExecStdin checks how ExecRequest.Stdin is sent: as text when it is
// UTF-8, in base64 otherwise, not at all when empty, and refused before
// any exec request when it is too large or the backend would drop it.
func TestExecStdin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		exts   []string
		stdin  io.Reader
		stream bool
		want   string // the stdin members of the request body
		err    error
	}{
		{name: "text", exts: allProcessExts, stdin: strings.NewReader("héllo\n"), want: `"stdin":"héllo\n"`},
		{name: "text streamed", exts: allProcessExts, stdin: strings.NewReader("hi"), stream: true, want: `"stdin":"hi"`},
		{name: "bytes", exts: allProcessExts, stdin: bytes.NewReader([]byte{0xff, 0, 1}), want: `"stdin":"/wAB","stdinEncoding":"base64"`},
		{name: "empty", exts: []string{ExtInfo}, stdin: strings.NewReader(""), want: ``},
		{name: "nil", exts: []string{ExtInfo}, want: ``},
		{name: "no extension", exts: []string{ExtInfo}, stdin: strings.NewReader("x"), err: ErrUnsupported},
		{name: "too large", exts: allProcessExts, stdin: strings.NewReader("12345"), err: ErrTooLarge},
		{name: "unreadable", exts: allProcessExts, stdin: io.MultiReader(strings.NewReader("a"), failingReader{}), err: errRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got string
			result := func(w http.ResponseWriter, r *http.Request) string {
				body, _ := io.ReadAll(r.Body)
				var m map[string]json.RawMessage
				_ = json.Unmarshal(body, &m)
				var parts []string
				for _, k := range []string{"stdin", "stdinEncoding"} {
					if v, ok := m[k]; ok {
						parts = append(parts, `"`+k+`":`+string(v))
					}
				}
				return strings.Join(parts, ",")
			}
			ps := newProcServer(t, tc.exts, map[string]http.HandlerFunc{
				"POST /v1/sandboxes/{id}/exec": func(w http.ResponseWriter, r *http.Request) {
					got = result(w, r)
					writeJSON(w, http.StatusOK, map[string]any{"exitCode": 0, "stdout": "", "stderr": "", "durationMs": 1})
				},
				"POST /v1/sandboxes/{id}/exec/stream": func(w http.ResponseWriter, r *http.Request) {
					got = result(w, r)
					w.Header().Set("Content-Type", "text/event-stream")
					writeEvent(w, "exit", map[string]any{"exitCode": 0, "stdout": "", "stderr": "", "durationMs": 1})
				},
			})
			ps.limits["maxStdinBytes"] = 4 << 10
			if tc.name == "too large" {
				ps.limits["maxStdinBytes"] = 4
			}
			c := ps.client()
			req := ExecRequest{Cmd: []string{"cat"}, Stdin: tc.stdin}
			var err error
			if tc.stream {
				_, err = c.ExecStream(t.Context(), "demo", req, StreamOptions{})
			} else {
				_, err = c.Exec(t.Context(), "demo", req)
			}
			if tc.err != nil {
				assertIs(t, err, tc.err)
				if reqs := ps.requests(); len(reqs) != 0 {
					t.Errorf("requests sent: %q", reqs)
				}
				return
			}
			assertNoErr(t, err)
			assertEq(t, "stdin members", got, tc.want)
		})
	}
}

// errRead is the error of failingReader.
var errRead = errors.New("read failed")

// failingReader fails every read with errRead.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errRead }
