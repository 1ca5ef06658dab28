package conformance_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
	"github.com/noxrunner/nox/membackend"
)

var (
	execPath       = regexp.MustCompile(`^/v1/sandboxes/([^/]+)/exec$`)
	sandboxURLPath = regexp.MustCompile(`^/v1/sandboxes/([^/]+)$`)
)

// breakBackend wraps a conforming handler and makes it misbehave: exec on
// an unknown sandbox answers 200, and re-creating an existing sandbox
// answers an expiresAt that is not RFC 3339. Creates are serialized so the
// first create of an id is always the one that gets a good answer.
func breakBackend(h http.Handler) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := execPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code == http.StatusNotFound {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"exitCode":0,"stdout":"","stderr":"","durationMs":1}`))
				return
			}
			copyRecorded(w, rec)
			return
		}
		if m := sandboxURLPath.FindStringSubmatch(r.URL.Path); m != nil && (r.Method == http.MethodPut || r.Method == http.MethodDelete) {
			mu.Lock()
			defer mu.Unlock()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			id := m[1]
			if r.Method == http.MethodDelete {
				delete(seen, id)
				copyRecorded(w, rec)
				return
			}
			if rec.Code == http.StatusOK && seen[id] {
				var body map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
				body["expiresAt"] = time.Now().Add(time.Hour).Format(time.DateTime) // not RFC 3339
				b, _ := json.Marshal(body)
				rec.Body = bytes.NewBuffer(b)
				rec.Header().Del("Content-Length")
			}
			if rec.Code == http.StatusOK {
				seen[id] = true
			}
			copyRecorded(w, rec)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// TestSuiteCatchesBrokenBackend feeds the suite a backend with three
// deliberate bugs and checks that exactly the checks that should notice
// them fail.
func TestSuiteCatchesBrokenBackend(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(breakBackend(reference{faults: membackend.Faults{UploadFollowsDotDot: true}}.handler(t)))
	defer srv.Close()

	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.ExpiryGrace = 5 * time.Second
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// exec on an unknown sandbox answers 200
		"exec/unknown-sandbox-404",
		"sandbox/delete",     // exec after delete
		"sandbox/ttl-expiry", // exec after expiry
		// non-RFC 3339 expiresAt on ensure
		"sandbox/create-idempotent",
		"sandbox/create-concurrent",
		// uploads follow ../
		"files/hostile-archives-contained",
	}
	got := rep.Failed()
	slices.Sort(got)
	slices.Sort(want)
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("failed checks:\n got %q\nwant %q\nreport:\n%s", got, want, text.String())
	}
	// Each bug is one deviation of the summary.
	assertSet(t, "deviations", deviationIDs(rep), []string{"unknown-sandbox", "timestamps", "check:files/hostile-archives-contained"}, text.String())
	for _, res := range rep.Results {
		if res.Status == conformance.StatusError {
			t.Errorf("%s: status error (the suite broke): %s", res.ID, res.Message)
		}
	}
	if rep.OK() {
		t.Error("OK() = true for a broken backend")
	}
	// The failures say what was wrong, with the request and response.
	for _, s := range []string{
		"FAIL  exec/unknown-sandbox-404 (",
		"request:  POST /v1/sandboxes/",
		`response: 200 application/json {"exitCode":0`,
		`is not RFC 3339`,
		`string doesn't match the format "date-time"`,
		"hostile archive entries were written outside dest",
		"PASS  exec/argv-verbatim (",
		"Deviations (3, each listed once):",
		"checks: sandbox/delete, sandbox/ttl-expiry, exec/unknown-sandbox-404",
		"FAILED: ",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q", s)
		}
	}
	t.Logf("report of the broken backend:\n%s", text.String())
	checkWriters(t, rep)
}

// TestSuiteCatchesBrokenLocalBackend wraps the real local backend with the
// HTTP-level bugs of breakBackend.
func TestSuiteCatchesBrokenLocalBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite against the local backend")
	}
	t.Parallel()
	srv := httptest.NewServer(breakBackend(localBackend(t, "", nil)))
	defer srv.Close()
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.SkipSlow = srv.URL, true
	// The bugs are in sandbox and exec answers; the other groups against
	// the local backend are TestLocalBackendConforms's and make
	// conformance's (two minutes saved under CI's load).
	cfg.Run = "^(health|info|sandbox|exec)/"
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"exec/unknown-sandbox-404", "sandbox/delete", "sandbox/create-idempotent", "sandbox/create-concurrent"}
	got := rep.Failed()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		var text bytes.Buffer
		_ = rep.WriteText(&text)
		t.Errorf("failed checks:\n got %q\nwant %q\nreport:\n%s", got, want, text.String())
	}
}

// checkWriters checks the JSON and JUnit forms of a report.
func checkWriters(t *testing.T, rep *conformance.Report) {
	t.Helper()
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		OK      bool `json:"ok"`
		Results []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if decoded.OK != rep.OK() || len(decoded.Results) != len(rep.Results) {
		t.Errorf("JSON report: ok %v, %d results; want %v, %d", decoded.OK, len(decoded.Results), rep.OK(), len(rep.Results))
	}
	var ju bytes.Buffer
	if err := rep.WriteJUnit(&ju); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suite    struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatalf("JUnit report: %v\n%s", err, ju.String())
	}
	failures := rep.Counts()[conformance.StatusFail]
	for _, res := range rep.Results {
		if rep.Certify && res.Status == conformance.StatusSkip && !res.OutsideProfile {
			failures++ // a skip inside the profile fails a certified run
		}
	}
	if suites.Tests != len(rep.Results) || suites.Failures != failures || len(suites.Suite.Cases) != len(rep.Results) {
		t.Errorf("JUnit report: tests %d failures %d cases %d; want %d, %d, %d",
			suites.Tests, suites.Failures, len(suites.Suite.Cases), len(rep.Results), failures, len(rep.Results))
	}
}

func TestUnreachableBackendIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	cfg := conformance.NewConfig()
	cfg.BaseURL = url
	cfg.Run = "^health/"
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Results) != 1 || rep.Results[0].Status != conformance.StatusError {
		t.Errorf("unreachable backend: OK %v, results %+v; want one error", rep.OK(), rep.Results)
	}
}

func TestAuthBearer(t *testing.T) {
	srv := reference{token: "s3cret"}.serve(t)
	t.Run("with token", func(t *testing.T) {
		cfg := conformance.NewConfig()
		cfg.BaseURL, cfg.Token = srv.URL, "s3cret"
		cfg.Run = "^(auth|health|sandbox/create$|exec/argv)"
		conformancetest.Run(t, cfg)
	})
	t.Run("without token", func(t *testing.T) {
		cfg := conformance.NewConfig()
		cfg.BaseURL = srv.URL
		rep, err := conformance.RunSuite(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || !strings.Contains(rep.Results[0].Message, "requires a bearer token") {
			t.Errorf("without a token: OK %v, first result %+v", rep.OK(), rep.Results[0])
		}
	})
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []conformance.Config{
		{},
		{BaseURL: "127.0.0.1:8080"},
		{BaseURL: "http://x", Level: "max"},
		{BaseURL: "http://x", Run: "("},
		{BaseURL: "http://x", Profile: "gold"},
		{BaseURL: "http://x", Certify: true, SkipSlow: true},
		{BaseURL: "http://x", Certify: true, Run: "^health/"},
	} {
		if _, err := conformance.RunSuite(t.Context(), cfg); err == nil {
			t.Errorf("RunSuite(%+v): no error", cfg)
		}
	}
}

func TestLevelSelection(t *testing.T) {
	srv := reference{}.serve(t)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Level, cfg.SkipSlow = srv.URL, conformance.LevelMinimum, true
	cfg.Run = "^(health/ok|files/download-missing-404|info/shape|sandbox/ttl-expiry)$"
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]conformance.Status{}
	for _, r := range rep.Results {
		got[r.ID] = r.Status
	}
	want := map[string]conformance.Status{
		"health/ok": conformance.StatusPass, "files/download-missing-404": conformance.StatusSkip,
		"info/shape": conformance.StatusSkip, "sandbox/ttl-expiry": conformance.StatusSkip,
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("%s: %s, want %s", id, got[id], st)
		}
	}
	if !rep.OK() {
		t.Error("OK() = false with only passes and skips")
	}
}

// rewrite wraps h: for requests match accepts, the recorded response is
// passed through fix before it is sent.
func rewrite(h http.Handler, match func(*http.Request) bool, fix func(*httptest.ResponseRecorder)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		rec.Header().Del("Content-Length")
		fix(rec)
		copyRecorded(w, rec)
	})
}

var exitEvent = regexp.MustCompile(`event: exit\ndata: [^\n]*\n\n`)

// eachBugDeviations are the deviations the summary names for each case of
// TestSuiteCatchesEachBug: one each.
var eachBugDeviations = map[string][]string{
	"timeout leaves processes running":                 {"check:exec/timeout-kills-process-tree"},
	"output not capped":                                {"check:exec/large-output-capped"},
	"ttlSeconds above the advertised maximum accepted": {"check:sandbox/create-ttl-over-max"},
	// Uploads and writeFile are limited each on its own: one deviation
	// each.
	"upload above maxUploadBytes accepted": {"check:files/upload-too-large-413", "check:fs/write-too-large-413"},
	"touch answers 204":                    {"status:touchSandbox:204"},
	"stream without exit event":            {"check:exec/stream-events"},
	"404 as text/plain":                    {"error-body:404"},
	"503 without Retry-After":              {"check:exec/saturated-503"},
	"commands queued without bound":        {"check:exec/saturated-503"},
	"commands run one at a time":           {"check:exec/concurrent"},
}

// serialExec runs the plain exec requests of exec/concurrent's sandbox
// one at a time, whatever the backend advertises (only its: the other
// checks' commands would wait behind its and fail their own time bounds).
func serialExec(h http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec") && strings.Contains(r.URL.Path, "conc") {
			mu.Lock()
			defer mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// notStream selects every request but those answered with a stream a
// recorder would hold until it ends (watches, process output) or with a
// WebSocket, which a recorder cannot carry.
func notStream(r *http.Request) bool {
	return !strings.HasSuffix(r.URL.Path, "/fs/watch") && !strings.HasSuffix(r.URL.Path, "/output") && r.Header.Get("Upgrade") == ""
}

// TestSuiteCatchesEachBug gives the suite backends with one bug each and
// checks exactly the expected checks fail.
func TestSuiteCatchesEachBug(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite several times")
	}
	t.Parallel()
	cases := []struct {
		name  string
		ref   reference
		wrap  func(http.Handler) http.Handler
		fails []string
		// report holds what the text report must say.
		report []string
	}{
		{"timeout leaves processes running", reference{faults: membackend.Faults{TimeoutKillsOnlyCommand: true}}, nil,
			[]string{"exec/timeout-kills-process-tree"}, nil},
		{"output not capped", reference{faults: membackend.Faults{NoOutputCap: true}}, nil,
			[]string{"exec/large-output-capped"}, nil},
		{"ttlSeconds above the advertised maximum accepted", reference{acceptTTLAboveMax: true}, nil,
			[]string{"sandbox/create-ttl-over-max"},
			[]string{"create with ttlSeconds 86401, one above the advertised maxTtlSeconds: status 200, want 400", "request:  PUT /v1/sandboxes/"}},
		{"upload above maxUploadBytes accepted", reference{acceptUploadAboveMax: true}, nil,
			[]string{"files/upload-too-large-413", "fs/write-too-large-413"},
			[]string{"(maxUploadBytes 1048576), with Content-Length: ", "(maxUploadBytes 1048576), chunked, without Content-Length: status 200, want 413",
				"<streamed body, 1051648 bytes sent>", "refused uploads left files in dest"}},
		{"touch answers 204", reference{},
			func(h http.Handler) http.Handler {
				return rewrite(h, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/touch") },
					func(rec *httptest.ResponseRecorder) {
						if rec.Code == 200 {
							rec.Code = 204
						}
					})
			},
			[]string{"sandbox/touch-extends-expiry"}, nil},
		{"stream without exit event", reference{},
			func(h http.Handler) http.Handler {
				return rewrite(h, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/exec/stream") },
					func(rec *httptest.ResponseRecorder) {
						rec.Body = bytes.NewBuffer(exitEvent.ReplaceAll(rec.Body.Bytes(), nil))
					})
			},
			[]string{"exec/stream-events"}, nil},
		{"503 without Retry-After", reference{maxConcurrentExecs: 4},
			func(h http.Handler) http.Handler {
				return rewrite(h, notStream,
					func(rec *httptest.ResponseRecorder) {
						if rec.Code == http.StatusServiceUnavailable {
							rec.Header().Del("Retry-After")
						}
					})
			},
			[]string{"exec/saturated-503"}, []string{"503 without Retry-After in seconds"}},
		{"commands queued without bound", reference{maxConcurrentExecs: 4, execQueueWait: time.Minute}, nil,
			[]string{"exec/saturated-503"}, []string{"it is queued, want 503 with Retry-After"}},
		{"commands run one at a time", reference{}, serialExec, []string{"exec/concurrent"}, nil},
		{"404 as text/plain", reference{},
			func(h http.Handler) http.Handler {
				return rewrite(h, notStream,
					func(rec *httptest.ResponseRecorder) {
						if rec.Code == 404 {
							rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
							rec.Body = bytes.NewBufferString("not found\n")
						}
					})
			},
			[]string{
				// (sandbox/create-invalid-ttl's cleanup deletes ids never
				// created: a set-up step, the subject of delete-unknown)
				"sandbox/touch-unknown-404",
				"sandbox/delete",
				"sandbox/delete-unknown",
				"exec/unknown-sandbox-404",
				"files/download-missing-404",
				"files/unknown-sandbox-404",
				"sandbox/get",
				"exec/stream-errors",
				"fs/errors-name-path",
				"fs/list",
				"fs/mkdir",
				"fs/move",
				"fs/remove",
				"fs/unknown-sandbox-404",
				"fs/write-parents-mode",
				"proc/unknown-process-404",
				"proc/unknown-sandbox-404",
				"proc/terminal-errors",
			}, nil},
	}
	// The runs mostly wait (sleeps, timeouts), so six run at once,
	// outside go test's -parallel limit (more overload a 2-core machine,
	// and timing checks then fail for the machine's sake); the subtests
	// then judge their reports.
	reports := make([]*conformance.Report, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i, c := range cases {
		h := c.ref.handler(t)
		if c.wrap != nil {
			h = c.wrap(h)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		cfg := conformance.NewConfig()
		cfg.BaseURL, cfg.SkipSlow = srv.URL, true
		// Only the groups of the checks the bug must fail run: a bug in
		// one area fails no check of another (the reference tests run
		// the whole suite), and N whole suites at once overload CI.
		cfg.Run = groupsOf(c.fails)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i], errs[i] = conformance.RunSuite(t.Context(), cfg)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := reports[i], errs[i]
			if err != nil {
				t.Fatal(err)
			}
			got, want := rep.Failed(), slices.Clone(c.fails)
			slices.Sort(got)
			slices.Sort(want)
			var text bytes.Buffer
			_ = rep.WriteText(&text)
			if !slices.Equal(got, want) {
				t.Errorf("failed checks:\n got %q\nwant %q\nreport:\n%s", got, want, text.String())
			}
			assertSet(t, "deviations", deviationIDs(rep), eachBugDeviations[c.name], text.String())
			for _, s := range c.report {
				if !strings.Contains(text.String(), s) {
					t.Errorf("text report lacks %q:\n%s", s, text.String())
				}
			}
		})
	}
}

// groupsOf returns a Config.Run pattern matching every check of the
// groups (the part of an id before "/") of ids.
func groupsOf(ids []string) string {
	var groups []string
	for _, id := range ids {
		g, _, _ := strings.Cut(id, "/")
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return "^(" + strings.Join(groups, "|") + ")/"
}

// TestPlainV1Backend checks that a backend without GET /v1/info is tested
// as plain v1: every extension check is skipped and the rest pass.
func TestPlainV1Backend(t *testing.T) {
	t.Parallel()
	inner := reference{}.handler(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/info" {
			http.NotFound(w, r) // text/plain, as a v1 server without the route would
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.ExpiryGrace = 3 * time.Second // the TTL check waits all of it
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !rep.OK() {
		t.Errorf("plain v1 reference backend failed:\n%s", text.String())
	}
	for _, r := range rep.Results {
		if (r.Level == conformance.LevelExtension) != (r.Status == conformance.StatusSkip) {
			t.Errorf("%s (level %s): status %s", r.ID, r.Level, r.Status)
		}
	}
	if !strings.Contains(text.String(), "plain v1 backend") {
		t.Errorf("report does not say the backend is plain v1:\n%s", text.String())
	}
}

// deviationIDs returns the ids of a report's deviations.
func deviationIDs(rep *conformance.Report) []string {
	var ids []string
	for _, d := range rep.Deviations {
		ids = append(ids, d.ID)
	}
	return ids
}
