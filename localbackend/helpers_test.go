package localbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func TestMain(m *testing.M) {
	MaybeRunInit()
	os.Exit(m.Run())
}

// testEnv is one backend behind an httptest server.
type testEnv struct {
	t      *testing.T
	httpc  *http.Client // validates every response against the contract
	b      *Backend
	rt     *fakeRuntime
	srv    *httptest.Server
	url    string
	token  string
	client *noxapi.ClientWithResponses
}

// testConfig is a Config for tests: a temporary data dir, and logs
// quiet but for warnings and errors, which go to the test's log (an answer of 500 is
// then explained in the failure).
func testConfig(t testing.TB) Config {
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	c.Logger = slog.New(slog.NewTextHandler(newTestLog(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c.ReaperInterval = 100 * time.Millisecond
	c.StreamHeartbeat = 200 * time.Millisecond
	c.MaxConcurrentExecs = 8
	return c
}

// testLog writes to a test's log until the test's cleanups have run;
// later writes (a backend goroutine ending late) are dropped.
type testLog struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestLog(t testing.TB) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() { // registered first, so it runs after the backend's Close
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// setup starts a backend on the fake runtime; mod adjusts the config.
func setup(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	c := testConfig(t)
	if mod != nil {
		mod(&c)
	}
	return start(t, c, &fakeRuntime{})
}

func start(t testing.TB, c Config, rt *fakeRuntime) *testEnv {
	c.applyDefaults()
	lim, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBackend(c, lim, func() (runtime, error) { return rt, nil })
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, b, c.Token)
	e.rt = rt
	return e
}

// serve puts b behind an httptest server closed (with b) at cleanup.
func serve(t testing.TB, b *Backend, token string) *testEnv {
	srv := httptest.NewServer(b.Handler())
	e := &testEnv{b: b, srv: srv, url: srv.URL, token: token, httpc: newValidatingClient(t)}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = b.Close()
	})
	cl, err := noxapi.NewClientWithResponses(srv.URL, noxapi.WithHTTPClient(e.httpc), noxapi.WithRequestEditorFn(func(ctx context.Context, r *http.Request) error {
		if e.token != "" {
			r.Header.Set("Authorization", "Bearer "+e.token)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	e.client = cl
	return e
}

// do sends a raw request; body is JSON-encoded unless it is a string or []byte.
func (e *testEnv) do(method, path string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	case []byte:
		r = bytes.NewReader(v)
	case io.Reader:
		r = v
	default:
		data, err := json.Marshal(v)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	switch body.(type) {
	case nil:
	case []byte, io.Reader:
		req.Header.Set("Content-Type", "application/x-tar")
	default:
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.httpc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

// expectError checks a JSON error answer's status and that its message
// contains want.
func expectError(t *testing.T, resp *http.Response, body []byte, status int, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json; body %s", resp.Request.URL.Path, ct, body)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\":...}: %v", body, err)
	}
	if !strings.Contains(e.Error, want) {
		t.Fatalf("error %q does not contain %q", e.Error, want)
	}
}

// create makes sandbox id with an optional JSON body.
func (e *testEnv) create(id string, body any) noxapi.CreateSandboxResult {
	e.t.Helper()
	if body == nil {
		body = map[string]any{"ttlSeconds": 600}
	}
	resp, data := e.do("PUT", "/v1/sandboxes/"+id, body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("create %s: %d %s", id, resp.StatusCode, data)
	}
	var r noxapi.CreateSandboxResult
	if err := json.Unmarshal(data, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// exec runs argv in sandbox id and returns the result.
func (e *testEnv) exec(id string, req map[string]any) noxapi.ExecResult {
	e.t.Helper()
	resp, data := e.do("POST", "/v1/sandboxes/"+id+"/exec", req)
	if resp.StatusCode != 200 {
		e.t.Fatalf("exec %v: %d %s", req, resp.StatusCode, data)
	}
	var r noxapi.ExecResult
	if err := json.Unmarshal(data, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func readFileIfExists(name string) ([]byte, error) { return os.ReadFile(name) }

// benchEnv starts a backend for benchmarks: on the real runtime when the
// host provides isolation, else on the host-process double (said in the log).
func benchEnv(b *testing.B) *testEnv {
	c := testConfig(b)
	c.MaxConcurrentExecs = 64
	// Production intervals: the tests' 100ms reaper would fsync metadata
	// ten times a second during the measurements.
	c.ReaperInterval = DefaultConfig().ReaperInterval
	for d := c.DataDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o711)
	}
	if bk, err := New(c); err == nil {
		b.Logf("runtime tier %s", bk.Info().Tier)
		return serve(b, bk, "")
	} else if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" {
		b.Fatalf("New: %v", err)
	} else {
		b.Logf("no isolation (%v): benchmarking the host-process test double", err)
	}
	return start(b, c, &fakeRuntime{})
}

func (e *testEnv) createB(b *testing.B, id string) {
	req, _ := http.NewRequest("PUT", e.url+"/v1/sandboxes/"+id, strings.NewReader(`{"ttlSeconds":600}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("create: %v %v", resp, err)
	}
	resp.Body.Close()
}
