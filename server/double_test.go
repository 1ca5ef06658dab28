package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/server"
)

// double is the smallest driver.Backend the server's tests need: it
// records the requests it receives and answers with canned results, or
// with err when set. Behaviour of real backends is tested against
// localbackend.
type double struct {
	info driver.Info

	mu      sync.Mutex
	err     error // returned by every operation but Info
	creates []driver.CreateRequest
	execs   []driver.ExecRequest
	uploads []error // the error reading each upload's archive ended with
	// endlessClosed is closed when the last endless download is closed.
	endlessClosed chan struct{}
	// panicWith, when non-nil, is what every operation but Info panics with.
	panicWith any
	// wait, when set, runs the commands; default: exit 0 with "ok\n".
	wait func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error)
}

var _ driver.Backend = (*double)(nil)

// fullInfo is the Info of a backend implementing every extension it can.
func fullInfo() driver.Info {
	return driver.Info{
		Name: "double", Version: "1",
		Extensions: []string{api.ExtExecFlags, api.ExtSandboxesList, api.ExtSandboxesGet},
		Isolation:  &driver.Isolation{Tier: "test", Isolated: true},
		Limits: driver.Limits{
			DefaultTTL: 15 * time.Minute, MaxTTL: time.Hour, DefaultTimeout: 30 * time.Second, MaxTimeout: time.Minute,
			DefaultCPUMilli: 1000, MaxCPUMilli: 4000, DefaultMemoryBytes: 1 << 30, MaxMemoryBytes: 8 << 30,
			DefaultStorageBytes: 2 << 30, MaxStorageBytes: 20 << 30,
			MinCPUMilli: 10, MinMemoryBytes: 16 << 20,
		},
		Images: []string{"default", "python"},
	}
}

func (d *double) Info() driver.Info { return d.info }

// requests returns copies of the requests received so far.
func (d *double) requests() ([]driver.CreateRequest, []driver.ExecRequest, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.creates), slices.Clone(d.execs), slices.Clone(d.uploads)
}

func (d *double) fail() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.panicWith != nil {
		panic(d.panicWith)
	}
	return d.err
}

func (d *double) sandbox(id string) driver.Sandbox {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return driver.Sandbox{ID: id, PodName: "pod-" + id, State: api.StateReady, CreatedAt: t, LastActiveAt: t, ExpiresAt: t.Add(time.Minute), TTL: time.Minute}
}

func (d *double) Health(context.Context) error { return d.fail() }

func (d *double) Create(_ context.Context, id string, req driver.CreateRequest) (driver.Sandbox, error) {
	d.mu.Lock()
	d.creates = append(d.creates, req)
	d.mu.Unlock()
	return d.sandbox(id), d.fail()
}

func (d *double) Get(_ context.Context, id string) (driver.Sandbox, error) {
	return d.sandbox(id), d.fail()
}

func (d *double) List(context.Context, string, int) ([]driver.Sandbox, bool, error) {
	return []driver.Sandbox{d.sandbox("a")}, false, d.fail()
}

func (d *double) Delete(context.Context, string) error { return d.fail() }

func (d *double) Touch(context.Context, string) (time.Time, error) { return time.Now(), d.fail() }

func (d *double) StartExec(_ context.Context, _ string, req driver.ExecRequest) (driver.Execution, error) {
	d.mu.Lock()
	d.execs = append(d.execs, req)
	d.mu.Unlock()
	if req.Argv[0] == "panic-in-wait" {
		return execution{func(context.Context, func(driver.Stream, string)) (driver.ExecResult, error) { panic("boom in wait") }}, nil
	}
	if err := d.fail(); err != nil {
		return nil, err
	}
	return execution{d.wait}, nil
}

func (d *double) Upload(_ context.Context, _, _ string, archive io.Reader) (driver.UploadResult, error) {
	n, err := io.Copy(io.Discard, archive)
	d.mu.Lock()
	d.uploads = append(d.uploads, err)
	d.mu.Unlock()
	if err != nil {
		return driver.UploadResult{}, err
	}
	return driver.UploadResult{Files: 1, Bytes: n}, d.fail()
}

func (d *double) Download(_ context.Context, _, src string) (io.ReadCloser, error) {
	if src == "/workspace/endless" {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.endlessClosed = make(chan struct{})
		return &endlessReader{closed: d.endlessClosed}, nil
	}
	if src == "/workspace/panic-mid-body" {
		return io.NopCloser(io.MultiReader(strings.NewReader("partial archive"), panicReader{})), nil
	}
	return io.NopCloser(strings.NewReader("archive")), d.fail()
}

// endlessReader is a download that never ends.
type endlessReader struct {
	closed chan struct{}
	once   sync.Once
}

func (r *endlessReader) Read(p []byte) (int, error) {
	select {
	case <-r.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	clear(p)
	return len(p), nil
}

func (r *endlessReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// panicReader panics on Read.
type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("boom mid-body") }

// execution is a command of the double.
type execution struct {
	wait func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error)
}

func (x execution) Wait(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
	if x.wait != nil {
		return x.wait(ctx, out)
	}
	return driver.ExecResult{Stdout: "ok\n"}, nil
}

func (execution) Abort() {}

// env is a double served by the server under test.
type env struct {
	t     testing.TB
	d     *double
	url   string
	token string
	logs  *lockedBuffer
}

// setup serves d (fullInfo() when nil) with opts.
func setup(t *testing.T, d *double, opts server.Options) *env {
	t.Helper()
	if d == nil {
		d = &double{info: fullInfo()}
	}
	logs := &lockedBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	h, err := server.New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, d: d, url: srv.URL, token: opts.Token, logs: logs}
}

// do sends a request; body is JSON-encoded unless it is a string.
func (e *env) do(method, path string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
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
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
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

// lockedBuffer holds the logs of concurrent requests.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// filesDouble is a double that also implements driver.Files and
// driver.Watcher: it records the requests, serves content as the file
// at every path, and answers listings with one entry per call.
type filesDouble struct {
	*double
	content string
	modTime time.Time

	fmu     sync.Mutex
	writes  []driver.WriteFileRequest
	written []string // the content each write read
	lists   []driver.ListDirRequest
	paths   []string // the paths of Stat, Remove, MakeDir, OpenFile
	moves   []driver.MoveRequest
	watches chan *doubleWatch // each Watch, as it starts
}

var (
	_ driver.Files   = (*filesDouble)(nil)
	_ driver.Watcher = (*filesDouble)(nil)
)

func newFilesDouble() *filesDouble {
	info := fullInfo()
	info.Extensions = append(info.Extensions, api.ExtFilesOps, api.ExtFilesWatch)
	return &filesDouble{
		double:  &double{info: info},
		content: "0123456789",
		modTime: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC),
		watches: make(chan *doubleWatch, 8),
	}
}

func (d *filesDouble) record(p string) {
	d.fmu.Lock()
	d.paths = append(d.paths, p)
	d.fmu.Unlock()
}

func (d *filesDouble) recorded() []string {
	d.fmu.Lock()
	defer d.fmu.Unlock()
	return slices.Clone(d.paths)
}

func (d *filesDouble) fileAt(p string) driver.FileInfo {
	return driver.FileInfo{Path: p, Type: driver.TypeFile, Size: int64(len(d.content)), Mode: 0o644, ModTime: d.modTime, ETag: `"v1"`}
}

func (d *filesDouble) OpenFile(_ context.Context, _, p string) (driver.File, error) {
	d.record(p)
	if err := d.fail(); err != nil {
		return nil, err
	}
	return &doubleFile{Reader: strings.NewReader(d.content), info: d.fileAt(p)}, nil
}

func (d *filesDouble) WriteFile(_ context.Context, _ string, req driver.WriteFileRequest, content io.Reader) (driver.FileInfo, bool, error) {
	data, err := io.ReadAll(content)
	d.fmu.Lock()
	d.writes = append(d.writes, req)
	d.written = append(d.written, string(data))
	d.fmu.Unlock()
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	fi := d.fileAt(req.Path)
	fi.Size, fi.ETag = int64(len(data)), `"v2"`
	return fi, req.CreateOnly, d.fail()
}

func (d *filesDouble) Stat(_ context.Context, _, p string) (driver.FileInfo, error) {
	d.record(p)
	return d.fileAt(p), d.fail()
}

func (d *filesDouble) ListDir(_ context.Context, _ string, req driver.ListDirRequest) ([]driver.FileInfo, bool, error) {
	d.fmu.Lock()
	d.lists = append(d.lists, req)
	d.fmu.Unlock()
	return []driver.FileInfo{d.fileAt(req.Path + "/a"), d.fileAt(req.Path + "/b")}, true, d.fail()
}

func (d *filesDouble) MakeDir(_ context.Context, _ string, req driver.MakeDirRequest) (driver.FileInfo, error) {
	d.record(req.Path)
	return driver.FileInfo{Path: req.Path, Type: driver.TypeDir, Mode: req.Mode, ModTime: d.modTime}, d.fail()
}

func (d *filesDouble) Remove(_ context.Context, _, p string, recursive bool) error {
	d.record(fmt.Sprintf("%s recursive=%v", p, recursive))
	return d.fail()
}

func (d *filesDouble) Move(_ context.Context, _ string, req driver.MoveRequest) (driver.FileInfo, error) {
	d.fmu.Lock()
	d.moves = append(d.moves, req)
	d.fmu.Unlock()
	return d.fileAt(req.Dst), d.fail()
}

func (d *filesDouble) Watch(ctx context.Context, _ string, req driver.WatchRequest) (driver.Watch, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	w := &doubleWatch{req: req, events: make(chan driver.FileEvent, 16), closed: make(chan struct{})}
	d.watches <- w
	return w, nil
}

// doubleFile is an open file of the filesDouble.
type doubleFile struct {
	*strings.Reader
	info   driver.FileInfo
	closed bool
}

func (f *doubleFile) Close() error          { f.closed = true; return nil }
func (f *doubleFile) Info() driver.FileInfo { return f.info }

// doubleWatch is a watch whose events the test sends.
type doubleWatch struct {
	req    driver.WatchRequest
	events chan driver.FileEvent
	err    error
	once   sync.Once
	closed chan struct{}
}

func (w *doubleWatch) Events() <-chan driver.FileEvent { return w.events }
func (w *doubleWatch) Err() error                      { return w.err }
func (w *doubleWatch) Close() error {
	w.once.Do(func() { close(w.closed) })
	return nil
}

// end ends the watch with err.
func (w *doubleWatch) end(err error) {
	w.err = err
	close(w.events)
}

// setupFiles serves a new filesDouble.
func setupFiles(t *testing.T, opts server.Options) (*env, *filesDouble) {
	t.Helper()
	return setupFilesDouble(t, newFilesDouble(), opts)
}

// setupFilesDouble serves d.
func setupFilesDouble(t *testing.T, d *filesDouble, opts server.Options) (*env, *filesDouble) {
	t.Helper()
	logs := &lockedBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	h, err := server.New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, d: d.double, url: srv.URL, token: opts.Token, logs: logs}, d
}
