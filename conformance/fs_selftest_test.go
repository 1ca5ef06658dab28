package conformance_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// fsMaxUpload is the upload limit of the files self-tests' backend: the
// large file and the atomic replaces are this big and 2 MiB.
const fsMaxUpload = 4 << 20

// fsReference serves the reference backend for the files checks, with
// uploads limited to fsMaxUpload.
func fsReference(t *testing.T) http.Handler { return fsReferenceLimit(t, fsMaxUpload) }

// fsReferenceLimit serves the reference backend with uploads limited to
// maxUpload.
func fsReferenceLimit(t *testing.T, maxUpload int64) http.Handler {
	t.Helper()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir(),
		Limits: driver.Limits{MaxTTL: 2 * time.Hour, MaxTimeout: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{MaxUploadBytes: maxUpload, StreamHeartbeat: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var fsURLPath = regexp.MustCompile(`^/v1/sandboxes/([^/]+)/fs/([a-z]+)$`)

// fsOp is the files operation r makes ("" for none): file, stat, list,
// mkdir, remove, move or watch.
func fsOp(r *http.Request) string {
	if m := fsURLPath.FindStringSubmatch(r.URL.Path); m != nil {
		return m[2]
	}
	return ""
}

// onFS calls f for requests of operation op with method, and passes the
// others to h.
func onFS(h http.Handler, method, op string, f func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == method && fsOp(r) == op {
			f(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// editQuery changes r's query with f.
func editQuery(r *http.Request, f func(q url.Values)) {
	q := r.URL.Query()
	f(q)
	r.URL.RawQuery = q.Encode()
}

// editJSON changes r's JSON body with f.
func editJSON(r *http.Request, f func(body map[string]any)) {
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	f(body)
	b, _ = json.Marshal(body)
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// sideRequest is a request a fault makes of the backend beside the
// client's request r, addressed to the same host (the server refuses
// requests addressed to names other than localhost).
func sideRequest(r *http.Request, method, target string, body io.Reader) *http.Request {
	req := httptest.NewRequestWithContext(r.Context(), method, target, body)
	req.Host = r.Host
	return req
}

// record serves r with h into a recorder.
func record(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// hookWriter passes a stream through, letting write change each piece.
type hookWriter struct {
	http.ResponseWriter
	write func(p []byte) []byte
}

func (h *hookWriter) Write(p []byte) (int, error) {
	if _, err := h.ResponseWriter.Write(h.write(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *hookWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// cutWriter stops writing a body after n bytes.
type cutWriter struct {
	http.ResponseWriter
	n int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.n <= 0 {
		return len(p), nil
	}
	k := min(len(p), c.n)
	c.n -= k
	_, err := c.ResponseWriter.Write(p[:k])
	return len(p), err
}

// fsFault is a files backend with one deliberate bug, and what the suite
// must say about it: the checks that fail and the one deviation named.
type fsFault struct {
	name      string
	wrap      func(t *testing.T, h http.Handler) http.Handler
	failed    []string
	deviation string
}

func fsFaults() []fsFault {
	own := func(name, check string, wrap func(t *testing.T, h http.Handler) http.Handler) fsFault {
		return fsFault{name: name, wrap: wrap, failed: []string{check}, deviation: "check:" + check}
	}
	return []fsFault{
		own("range ignored", "fs/read-range", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "file", func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("Range")
				h.ServeHTTP(w, r)
			})
		}),
		own("no Last-Modified", "fs/read", func(_ *testing.T, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fsOp(r) == "file" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
					rec := record(h, r)
					rec.Header().Del("Last-Modified")
					copyRecorded(w, rec)
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
		{name: "create answered 200", deviation: "status:writeFile:200",
			// Every check that creates a file through the API sees it; it
			// is one deviation of writeFile.
			failed: []string{"fs/write-create-replace", "fs/write-conditional", "fs/write-parents-mode", "fs/binary-safe", "fs/large-file"},
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return onFS(h, http.MethodPut, "file", func(w http.ResponseWriter, r *http.Request) {
					rec := record(h, r)
					if rec.Code == http.StatusCreated {
						rec.Code = http.StatusOK
					}
					copyRecorded(w, rec)
				})
			}},
		own("validators ignored", "fs/read-conditional", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "file", func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("If-None-Match")
				r.Header.Del("If-Modified-Since")
				h.ServeHTTP(w, r)
			})
		}),
		own("writes in place", "fs/write-atomic", func(_ *testing.T, h http.Handler) http.Handler {
			// Truncates an existing file first (when the body fits the
			// limit and the write is unconditional), then writes.
			return onFS(h, http.MethodPut, "file", func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("If-Match") == "" && r.Header.Get("If-None-Match") == "" && r.ContentLength > 0 && r.ContentLength <= fsMaxUpload {
					stat := sideRequest(r, http.MethodGet, strings.Replace(r.URL.RequestURI(), "/fs/file", "/fs/stat", 1), nil)
					if record(h, stat).Code == http.StatusOK {
						empty := sideRequest(r, http.MethodPut, r.URL.RequestURI(), http.NoBody)
						empty.Header.Set("Content-Type", "application/octet-stream")
						record(h, empty)
					}
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("preconditions ignored", "fs/write-conditional", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodPut, "file", func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("If-Match")
				r.Header.Del("If-None-Match")
				h.ServeHTTP(w, r)
			})
		}),
		own("parents always made", "fs/write-parents-mode", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodPut, "file", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { q["parents"] = []string{"true"} })
				h.ServeHTTP(w, r)
			})
		}),
		own("small files read as text", "fs/binary-safe", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "file", func(w http.ResponseWriter, r *http.Request) {
				rec := record(h, r)
				if rec.Code == http.StatusOK && rec.Body.Len() < 4096 {
					b := bytes.ReplaceAll(rec.Body.Bytes(), []byte{0}, nil)
					rec.Body = bytes.NewBuffer(b)
					rec.Header().Set("Content-Length", strconv.Itoa(len(b)))
				}
				copyRecorded(w, rec)
			})
		}),
		own("large reads cut", "fs/large-file", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "file", func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(&cutWriter{ResponseWriter: w, n: 3 << 20}, r)
			})
		}),
		own("links followed by stat", "fs/stat", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "stat", func(w http.ResponseWriter, r *http.Request) {
				rec := record(h, r)
				var fi map[string]any
				if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &fi) == nil && fi["type"] == "symlink" {
					fi["type"] = "file"
					delete(fi, "linkTarget")
					b, _ := json.Marshal(fi)
					rec.Body = bytes.NewBuffer(b)
					rec.Header().Set("Content-Length", strconv.Itoa(len(b)))
				}
				copyRecorded(w, rec)
			})
		}),
		own("depth ignored", "fs/list", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "list", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { delete(q, "depth") })
				h.ServeHTTP(w, r)
			})
		}),
		own("pageSize ignored", "fs/list-paging", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "list", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { delete(q, "pageSize") })
				h.ServeHTTP(w, r)
			})
		}),
		own("mkdir always -p", "fs/mkdir", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodPost, "mkdir", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) { b["parents"] = true })
				h.ServeHTTP(w, r)
			})
		}),
		own("remove of /workspace answered 204", "fs/remove", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodPost, "remove", func(w http.ResponseWriter, r *http.Request) {
				var p string
				editJSON(r, func(b map[string]any) { p, _ = b["path"].(string) })
				if p == "/workspace" || p == "." {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("move always overwrites", "fs/move", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodPost, "move", func(w http.ResponseWriter, r *http.Request) {
				editJSON(r, func(b map[string]any) { b["overwrite"] = true })
				h.ServeHTTP(w, r)
			})
		}),
		own("links to /etc followed", "fs/paths-contained", func(t *testing.T, h http.Handler) http.Handler {
			host, err := os.ReadFile("/etc/passwd")
			if err != nil {
				t.Skipf("no /etc/passwd to escape to: %v", err)
			}
			return onFS(h, http.MethodGet, "file", func(w http.ResponseWriter, r *http.Request) {
				if p := r.URL.Query().Get("path"); strings.HasSuffix(p, "etc-link/passwd") {
					w.Header().Set("Content-Type", "application/octet-stream")
					w.Header().Set("ETag", `"host"`)
					w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
					_, _ = w.Write(host)
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
		own("errors without the path", "fs/errors-name-path", func(_ *testing.T, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fsOp(r) == "" || fsOp(r) == "watch" {
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
		{name: "unknown sandboxes created", failed: []string{"fs/unknown-sandbox-404"}, deviation: "unknown-sandbox",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if m := fsURLPath.FindStringSubmatch(r.URL.Path); m != nil && strings.Contains(m[1], "never-created") {
						create := sideRequest(r, http.MethodPut, "/v1/sandboxes/"+m[1], strings.NewReader(`{}`))
						create.Header.Set("Content-Type", "application/json")
						record(h, create)
					}
					h.ServeHTTP(w, r)
				})
			}},
		{name: "slow watch", failed: []string{"fs/watch-create"}, deviation: "watch-latency",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return onFS(h, http.MethodGet, "watch", func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(&hookWriter{ResponseWriter: w, write: func(p []byte) []byte {
						if bytes.Contains(p, []byte("made-by-exec")) {
							time.Sleep(800 * time.Millisecond)
						}
						return p
					}}, r)
				})
			}},
		{name: "no ready event", failed: []string{"fs/watch-create", "fs/watch-events", "fs/watch-recursive"}, deviation: "watch-ready-first",
			wrap: func(_ *testing.T, h http.Handler) http.Handler {
				return onFS(h, http.MethodGet, "watch", func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(&hookWriter{ResponseWriter: w, write: func(p []byte) []byte {
						return bytes.Replace(p, []byte("event: ready\ndata: {}\n\n"), nil, 1)
					}}, r)
				})
			}},
		own("writes not coalesced", "fs/watch-events", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "watch", func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(&hookWriter{ResponseWriter: w, write: func(p []byte) []byte {
					if bytes.Contains(p, []byte(`"type":"write"`)) {
						return bytes.Repeat(p, 200)
					}
					return p
				}}, r)
			})
		}),
		own("recursive ignored", "fs/watch-recursive", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "watch", func(w http.ResponseWriter, r *http.Request) {
				editQuery(r, func(q url.Values) { delete(q, "recursive") })
				h.ServeHTTP(w, r)
			})
		}),
		own("watch of a file accepted", "fs/watch-errors", func(_ *testing.T, h http.Handler) http.Handler {
			return onFS(h, http.MethodGet, "watch", func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Query().Get("path"), "/file") {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "event: ready\ndata: {}\n\n")
					return
				}
				h.ServeHTTP(w, r)
			})
		}),
	}
}

// fsSlow are the files checks that take longest; a fault's run leaves
// them out unless they are what it targets.
var fsSlow = []string{"fs/large-file", "fs/write-atomic"}

// runFS runs the files checks (the slow ones only when named in keep)
// against h.
func runFS(t *testing.T, h http.Handler, keep []string) (*conformance.Report, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var ids []string
	for _, c := range conformance.Checks() {
		if strings.HasPrefix(c.ID, "fs/") && (!slices.Contains(fsSlow, c.ID) || slices.Contains(keep, c.ID)) {
			ids = append(ids, regexp.QuoteMeta(c.ID))
		}
	}
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Run = "^(" + strings.Join(ids, "|") + ")$"
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

// TestFilesChecksPassReference runs every files check against the
// reference backend: all pass, none skipped.
func TestFilesChecksPassReference(t *testing.T) {
	t.Parallel()
	rep, text := runFS(t, fsReference(t), fsSlow)
	var notPassed []string
	for _, r := range rep.Results {
		if r.Status != conformance.StatusPass {
			notPassed = append(notPassed, r.ID+" "+string(r.Status))
		}
	}
	if len(notPassed) > 0 || len(rep.Results) < 20 {
		t.Errorf("%d files checks, not passed: %q\n%s", len(rep.Results), notPassed, text)
	}
	for _, s := range []string{"note: create of a file by a command reported", "note: 4.0 MiB written in"} {
		if !strings.Contains(text, s) {
			t.Errorf("report lacks the note %q:\n%s", s, text)
		}
	}
	t.Logf("report:\n%s", text)
}

// TestFilesChecksCatchFaults runs the files checks against backends with
// one deliberate bug each: exactly the checks aimed at it fail, and the
// bug is one deviation of the summary.
func TestFilesChecksCatchFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the files checks twenty times")
	}
	t.Parallel()
	for _, f := range fsFaults() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			rep, text := runFS(t, f.wrap(t, fsReference(t)), f.failed)
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

// TestLargeFileBoundedMemory runs fs/large-file and checks the suite's
// process allocated far less than the file: it is streamed both ways,
// never held (the backend runs in-process too, and streams as well).
func TestLargeFileBoundedMemory(t *testing.T) {
	const size = 64 << 20
	srv := httptest.NewServer(fsReferenceLimit(t, size))
	t.Cleanup(srv.Close)
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Run = "^fs/large-file$"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if len(rep.Results) != 1 || rep.Results[0].Status != conformance.StatusPass {
		t.Fatalf("fs/large-file: %+v", rep.Results)
	}
	grew := after.TotalAlloc - before.TotalAlloc
	if grew > size/4 {
		t.Errorf("a %d-byte file round trip allocated %d bytes: something holds it", size, grew)
	}
	t.Logf("a %d MiB round trip allocated %.1f MiB; %s", size>>20, float64(grew)/(1<<20), rep.Results[0].Notes)
}

// TestFilesChecksFollowProfiles checks how the files checks are selected
// for a backend that does not offer the files extensions: outside the core
// and extended profiles, a skip inside profile all (failing a certified
// run); for one that offers them, run under extended and all.
func TestFilesChecksFollowProfiles(t *testing.T) {
	t.Parallel()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir(),
		Extensions: []string{api.ExtSandboxesGet, api.ExtSandboxesList, api.ExtExecFlags}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	without, err := server.New(b, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		h       http.Handler
		profile conformance.Profile
		// runs: the files checks run; outside: their skips lie outside
		// the profile.
		runs, outside bool
	}{
		{"without, core", without, conformance.ProfileCore, false, true},
		{"without, extended", without, conformance.ProfileExtended, false, true},
		{"without, all", without, conformance.ProfileAll, false, false},
		{"with, core", fsReference(t), conformance.ProfileCore, false, true},
		{"with, extended", fsReference(t), conformance.ProfileExtended, true, false},
		{"with, all", fsReference(t), conformance.ProfileAll, true, false},
	} {
		srv := httptest.NewServer(c.h)
		t.Cleanup(srv.Close)
		cfg := conformance.NewConfig()
		cfg.BaseURL, cfg.Profile = srv.URL, c.profile
		s, err := conformance.NewSession(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ch := range s.Checks() {
			if !strings.HasPrefix(ch.ID, "fs/") {
				continue
			}
			n++
			why := s.SkipReason(ch)
			if (why == "") != c.runs || (why != "" && s.OutsideProfile(ch) != c.outside) {
				t.Errorf("%s: %s: skip reason %q, outside profile %v; want runs %v, outside %v", c.name, ch.ID, why, s.OutsideProfile(ch), c.runs, c.outside)
			}
		}
		if n < 20 {
			t.Errorf("%s: %d files checks", c.name, n)
		}
	}
}
