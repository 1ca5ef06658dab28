package conformance_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// The limits of the processes self-tests' backend: small enough for the
// checks of limits to run cheaply.
const (
	procOutputBytes = 64 << 10
	procMaxRunning  = 4
	procMaxStdin    = 64 << 10
)

// procReference serves the reference backend for the processes checks.
func procReference(t *testing.T) http.Handler {
	t.Helper()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir(),
		Extensions: []string{api.ExtSandboxesGet, api.ExtSandboxesList, api.ExtExecFlags, api.ExtExecStream,
			api.ExtExecStdin, api.ExtProcesses},
		Limits: driver.Limits{MaxTTL: 2 * time.Hour, MaxTimeout: 10 * time.Minute,
			ProcessOutputBytes: procOutputBytes, MaxProcessesPerSandbox: procMaxRunning, MaxStdinBytes: procMaxStdin}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{StreamHeartbeat: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// procCheckIDs are the ids of the checks of the processes extensions
// and of exec.stdin.
func procCheckIDs() []string {
	var ids []string
	for _, c := range conformance.Checks() {
		if strings.HasPrefix(c.ID, "proc/") || strings.HasPrefix(c.ID, "exec/stdin") && c.ID != "exec/stdin-empty" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// runProc runs the processes checks against h.
func runProc(t *testing.T, h http.Handler) (*conformance.Report, string) {
	t.Helper()
	return runChecks(t, h, procCheckIDs())
}

// runChecks runs the checks ids, in the profile all, against h and
// returns the report and its text.
func runChecks(t *testing.T, h http.Handler, ids []string) (*conformance.Report, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = regexp.QuoteMeta(id)
	}
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Run = "^(" + strings.Join(quoted, "|") + ")$"
	cfg.Profile = conformance.ProfileAll
	cfg.Parallelism = 4
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	return rep, text.String()
}

// TestProcChecksPassReference runs every processes check against the
// reference backend: all pass, none skipped.
func TestProcChecksPassReference(t *testing.T) {
	t.Parallel()
	rep, text := runProc(t, procReference(t))
	var notPassed []string
	for _, r := range rep.Results {
		if r.Status != conformance.StatusPass {
			notPassed = append(notPassed, r.ID+" "+string(r.Status))
		}
	}
	if len(notPassed) > 0 || len(rep.Results) != len(procCheckIDs()) {
		t.Errorf("%d processes checks, not passed: %q\n%s", len(rep.Results), notPassed, text)
	}
	t.Logf("report:\n%s", text)
}

var procURLPath = regexp.MustCompile(`^/v1/sandboxes/([^/]+)/processes(?:/([^/]+)(?:/([a-z]+))?)?$`)

// procOp is the processes operation r makes: "start" or "list" on the
// collection, "process" (get, kill) on a process, or the last element of
// the path (wait, output, stdin, signal, resize, terminal); "" for none.
func procOp(r *http.Request) string {
	m := procURLPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m == nil:
		return ""
	case m[2] == "" && r.Method == http.MethodPost:
		return "start"
	case m[2] == "":
		return "list"
	case m[3] == "":
		return "process"
	}
	return m[3]
}

// onProc calls f for requests of processes operation op with method, and
// passes the others to h.
func onProc(h http.Handler, method, op string, f func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == method && procOp(r) == op {
			f(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// streamHook passes an event stream through, letting edit change each
// piece the server writes (the server writes an event, or an event's id
// line, in one piece).
type streamHook struct {
	http.ResponseWriter
	edit func(p []byte) []byte
}

func (s *streamHook) Write(p []byte) (int, error) {
	if _, err := s.ResponseWriter.Write(s.edit(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *streamHook) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *streamHook) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// onOutput edits every piece of every output stream with edit.
func onOutput(h http.Handler, edit func(p []byte) []byte) http.Handler {
	return onProc(h, http.MethodGet, "output", func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&streamHook{ResponseWriter: w, edit: edit}, r)
	})
}

// procFault is a processes backend with one deliberate bug, and what the
// suite must say about it: the checks that fail and the one deviation
// named.
type procFault struct {
	name      string
	wrap      func(t *testing.T, h http.Handler) http.Handler
	failed    []string
	deviation string
}

// jsonError answers a JSON Error.
func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":`+strconv.Quote(msg)+`}`)
}

// wsProxy serves terminals through a WebSocket proxy in front of h that
// drops the client's messages drop accepts; a refused handshake is
// passed back as it came.
func wsProxy(t *testing.T, h http.Handler, drop func(websocket.MessageType, []byte) bool) http.Handler {
	inner := httptest.NewServer(h)
	t.Cleanup(inner.Close)
	return onProc(h, http.MethodGet, "terminal", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			h.ServeHTTP(w, r)
			return
		}
		hdr := http.Header{}
		if a := r.Header.Get("Authorization"); a != "" {
			hdr.Set("Authorization", a)
		}
		back, resp, err := websocket.Dial(r.Context(), inner.URL+r.URL.RequestURI(), &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			if resp == nil {
				jsonError(w, http.StatusBadGateway, err.Error())
				return
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		front, err := websocket.Accept(w, r, nil)
		if err != nil {
			_ = back.CloseNow()
			return
		}
		done := make(chan struct{}, 2)
		pump := func(from, to *websocket.Conn, filter bool) {
			defer func() { done <- struct{}{} }()
			for {
				typ, b, err := from.Read(r.Context())
				if err != nil {
					st := websocket.CloseStatus(err)
					if st == -1 {
						st = websocket.StatusGoingAway
					}
					_ = to.Close(st, "")
					return
				}
				if filter && drop(typ, b) {
					continue
				}
				if err := to.Write(r.Context(), typ, b); err != nil {
					_ = from.CloseNow()
					return
				}
			}
		}
		go pump(front, back, true)
		go pump(back, front, false)
		<-done
		<-done
	})
}

// killedForgotten answers 404 to a GET of a process once it was killed.
func killedForgotten(h http.Handler) http.Handler {
	var mu sync.Mutex
	killed := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := procOp(r)
		switch {
		case op == "process" && r.Method == http.MethodDelete:
			mu.Lock()
			killed[r.URL.Path] = true
			mu.Unlock()
		case op == "process" && r.Method == http.MethodGet:
			mu.Lock()
			gone := killed[r.URL.Path]
			mu.Unlock()
			if gone {
				jsonError(w, http.StatusNotFound, "process not found")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

var (
	idLine    = regexp.MustCompile(`id: \d+\n`)
	exitEv    = regexp.MustCompile(`event: exit\n(data: [^\n]*\n)+\n`)
	truncEv   = regexp.MustCompile(`event: truncated\n(data: [^\n]*\n)+\n`)
	base64Val = regexp.MustCompile(`"dataBase64":"[^"]*"`)
)

func procFaults() []procFault {
	own := func(name, check string, wrap func(t *testing.T, h http.Handler) http.Handler) procFault {
		return procFault{name: name, wrap: wrap, failed: []string{check}, deviation: "check:" + check}
	}
	return []procFault{
		{name: "start answered 200", failed: []string{"proc/start"}, deviation: "status:startProcess:200",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return onProc(h, http.MethodPost, "start", func(w http.ResponseWriter, r *http.Request) {
					rec := record(h, r)
					if rec.Code == http.StatusCreated {
						rec.Code = http.StatusOK
					}
					copyRecorded(w, rec)
				})
			}},
		own("get without endedAt", "proc/get", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "process", func(w http.ResponseWriter, r *http.Request) {
				rec := record(h, r)
				var p map[string]any
				if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &p) == nil {
					delete(p, "endedAt")
					b, _ := json.Marshal(p)
					rec.Body = bytes.NewBuffer(b)
					rec.Header().Set("Content-Length", strconv.Itoa(len(b)))
				}
				copyRecorded(w, rec)
			})
		}),
		own("tag filter ignored", "proc/list", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "list", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { delete(q, "tag") })
				h.ServeHTTP(w, r)
			})
		}),
		own("wait answers at once", "proc/wait", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "wait", func(w http.ResponseWriter, r *http.Request) {
				if n, err := strconv.Atoi(r.URL.Query().Get("timeoutSeconds")); err == nil && n >= 0 {
					r.URL.Path, r.URL.RawQuery = strings.TrimSuffix(r.URL.Path, "/wait"), ""
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("404 without the process id", "proc/unknown-process-404", func(_ *testing.T, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if op := procOp(r); op == "" || op == "terminal" || op == "output" {
					h.ServeHTTP(w, r)
					return
				}
				rec := record(h, r)
				if rec.Code == http.StatusNotFound && !strings.Contains(r.URL.Path, "never-created") {
					rec.Body = bytes.NewBufferString(`{"error":"not found"}`)
					rec.Header().Del("Content-Length")
				}
				copyRecorded(w, rec)
			})
		}),
		{name: "unknown sandboxes created", failed: []string{"proc/unknown-sandbox-404", "proc/terminal-errors"}, deviation: "unknown-sandbox",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if m := procURLPath.FindStringSubmatch(r.URL.Path); m != nil && strings.Contains(m[1], "never-created") {
						create := sideRequest(r, http.MethodPut, "/v1/sandboxes/"+m[1], strings.NewReader(`{}`))
						create.Header.Set("Content-Type", "application/json")
						record(h, create)
					}
					h.ServeHTTP(w, r)
				})
			}},
		own("pty rows 0 accepted", "proc/invalid-request-400", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "start", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) {
					if pty, ok := b["pty"].(map[string]any); ok && pty["rows"] == float64(0) {
						pty["rows"] = 24
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("Last-Event-ID ignored", "proc/output-replay", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "output", func(w http.ResponseWriter, r *http.Request) {
				if _, err := strconv.Atoi(r.Header.Get("Last-Event-ID")); err == nil {
					r.Header.Del("Last-Event-ID")
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("ids not offsets", "proc/output-replay", func(_ *testing.T, h http.Handler) http.Handler {
			return onOutput(h, func(p []byte) []byte { return idLine.ReplaceAll(p, []byte("id: 0\n")) })
		}),
		{name: "no exit event", failed: []string{"proc/output-follow", "proc/output-end"}, deviation: "process-output-exit",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return onOutput(h, func(p []byte) []byte { return exitEv.ReplaceAll(p, nil) })
			}},
		own("follow=false ignored", "proc/output-end", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "output", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) {
					if q.Get("follow") == "false" {
						delete(q, "follow")
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("no truncated event", "proc/output-truncated", func(_ *testing.T, h http.Handler) http.Handler {
			return onOutput(h, func(p []byte) []byte { return truncEv.ReplaceAll(p, nil) })
		}),
		own("binary output as replacement characters", "proc/output-binary", func(_ *testing.T, h http.Handler) http.Handler {
			return onOutput(h, func(p []byte) []byte { return base64Val.ReplaceAll(p, []byte(`"data":"\ufffd"`)) })
		}),
		own("stderr labelled stdout", "proc/output-streams", func(_ *testing.T, h http.Handler) http.Handler {
			return onOutput(h, func(p []byte) []byte {
				return bytes.ReplaceAll(p, []byte(`"stream":"stderr"`), []byte(`"stream":"stdout"`))
			})
		}),
		own("stdin close ignored", "proc/stdin", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "stdin", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) {
					if q.Get("close") == "true" {
						delete(q, "close")
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("INT sent as KILL", "proc/signal", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "signal", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) {
					if b["signal"] == "INT" {
						b["signal"] = "KILL"
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("killed records forgotten", "proc/kill", func(_ *testing.T, h http.Handler) http.Handler { return killedForgotten(h) }),
		own("timeoutSeconds ignored", "proc/timeout", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "start", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) {
					if t, ok := b["timeoutSeconds"].(float64); ok && t > 0 {
						delete(b, "timeoutSeconds")
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("process killed with its stream", "proc/survives-disconnect", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "output", func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				if r.Context().Err() != nil {
					kill := sideRequest(r, http.MethodDelete, strings.TrimSuffix(r.URL.Path, "/output"), nil)
					kill = kill.WithContext(context.WithoutCancel(r.Context()))
					record(h, kill)
				}
			})
		}),
		own("pty size ignored", "proc/pty", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "start", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) {
					if pty, ok := b["pty"].(map[string]any); ok && pty["rows"] == float64(33) {
						b["pty"] = map[string]any{"rows": 24, "cols": 80}
					}
				})
				h.ServeHTTP(w, r)
			})
		}),
		own("resize ignored", "proc/pty-resize", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodPost, "resize", func(w http.ResponseWriter, r *http.Request) {
				rec := record(h, sideRequest(r, http.MethodGet, strings.TrimSuffix(r.URL.Path, "/resize"), nil))
				if rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), `"pty":true`) && strings.Contains(rec.Body.String(), `"state":"running"`) {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
		{name: "maxProcessesPerSandbox not enforced", failed: []string{"proc/max-processes-503"}, deviation: "check:proc/max-processes-503",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return advertise(h, map[string]int64{"maxProcessesPerSandbox": procMaxRunning - 2})
			}},
		own("resize messages dropped", "proc/terminal", func(t *testing.T, h http.Handler) http.Handler {
			return wsProxy(t, h, func(typ websocket.MessageType, b []byte) bool {
				return typ == websocket.MessageText && bytes.Contains(b, []byte(`"resize"`))
			})
		}),
		own("426 answered 400", "proc/terminal-errors", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "terminal", func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Upgrade") == "" {
					jsonError(w, http.StatusBadRequest, "not a WebSocket request")
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("hangup ignored", "proc/terminal-hangup", func(_ *testing.T, h http.Handler) http.Handler {
			return onProc(h, http.MethodGet, "terminal", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { delete(q, "hangup") })
				h.ServeHTTP(w, r)
			})
		}),
		own("stdin dropped on exec/stream", "exec/stdin", func(_ *testing.T, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec/stream") {
					editJSON(r, func(b map[string]any) { delete(b, "stdin") })
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("bad base64 accepted", "exec/stdin-invalid-400", func(_ *testing.T, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec") {
					editJSON(r, func(b map[string]any) {
						if s, ok := b["stdin"].(string); ok && b["stdinEncoding"] == "base64" {
							if _, err := base64.StdEncoding.DecodeString(s); err != nil {
								b["stdin"] = ""
							}
						}
					})
				}
				h.ServeHTTP(w, r)
			})
		}),
		{name: "maxStdinBytes not enforced", failed: []string{"exec/stdin-too-large-400"}, deviation: "check:exec/stdin-too-large-400",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return advertise(h, map[string]int64{"maxStdinBytes": 1024})
			}},
	}
}

// TestProcChecksCatchFaults runs the processes checks against backends
// with one deliberate bug each: exactly the checks aimed at it fail, and
// the bug is one deviation of the summary.
func TestProcChecksCatchFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processes checks for each of many faults")
	}
	t.Parallel()
	for _, f := range procFaults() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			rep, text := runProc(t, f.wrap(t, procReference(t)))
			assertSet(t, "failed checks", rep.Failed(), f.failed, text)
			assertSet(t, "deviations", deviationIDs(rep), []string{f.deviation}, text)
			for _, r := range rep.Results {
				if r.Status == conformance.StatusError || r.Status == conformance.StatusSkip {
					t.Errorf("%s: %s: %s", r.ID, r.Status, r.Message)
				}
			}
		})
	}
}
