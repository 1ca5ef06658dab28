package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// basePath is where test servers mount the API, to catch absolute-URL bugs.
const basePath = "/prefix"

// fakeBackend is an in-memory NoxRunner backend for the SDK's tests. Files
// live in a temporary directory per sandbox; commands are a tiny emulation
// (echo, cat, sleep, false, exit, sh -c with those).
type fakeBackend struct {
	t   *testing.T
	dir string

	mu        sync.Mutex
	sandboxes map[string]*fakeSandbox
	info      *noxapi.Info // nil: plain v1 backend (404 on /v1/info)
	token     string
	requests  []string // "METHOD path" of every request
	bodies    map[string]int64
	// hook, when set, may answer a request itself (returns true).
	hook func(w http.ResponseWriter, r *http.Request) bool
	// stream, when set, supplies the body of exec stream answers.
	stream func(ctx context.Context, req noxapi.ExecRequest) io.Reader
}

type fakeSandbox struct {
	podName    string
	created    time.Time
	lastActive time.Time
	ttl        int32
	image      string
	root       string
}

var _ noxapi.StrictServerInterface = (*fakeBackend)(nil)

func newFakeBackend(t *testing.T) *fakeBackend {
	hb := int32(1)
	return &fakeBackend{
		t:         t,
		dir:       t.TempDir(),
		sandboxes: map[string]*fakeSandbox{},
		bodies:    map[string]int64{},
		info: &noxapi.Info{
			APIVersion: "v1",
			Backend:    noxapi.BackendIdentity{Name: "fake", Version: "0.0.1"},
			Extensions: []string{ExtInfo, ExtSandboxesGet, ExtSandboxesList, ExtExecStream, ExtExecFlags},
			Limits:     &noxapi.BackendLimits{StreamHeartbeatSeconds: &hb},
			Images:     []string{"default"},
			Isolation:  &noxapi.Isolation{Tier: "none-unsafe", Notes: []string{"fake"}},
		},
	}
}

// handler returns the backend's http.Handler mounted under basePath.
func (f *fakeBackend) handler() http.Handler {
	jsonErr := func(w http.ResponseWriter, r *http.Request, err error) {
		writeJSONError(w, http.StatusBadRequest, err.Error())
	}
	strict := noxapi.NewStrictHandlerWithOptions(f, nil, noxapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: jsonErr,
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client left, possibly mid-stream
			}
			writeJSONError(w, http.StatusInternalServerError, err.Error())
		},
	})
	h := noxapi.HandlerWithOptions(strict, noxapi.StdHTTPServerOptions{BaseURL: basePath, ErrorHandlerFunc: jsonErr})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		hook, token, plain := f.hook, f.token, f.info == nil
		f.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		if !strings.HasPrefix(r.URL.Path, basePath+"/") {
			writeJSONError(w, http.StatusNotFound, "not under the base path: "+r.URL.Path)
			return
		}
		if token != "" && strings.HasPrefix(r.URL.Path, basePath+"/v1/") && r.Header.Get("Authorization") != "Bearer "+token {
			writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		if plain && r.URL.Path == basePath+"/v1/info" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Request-Id", "req-"+strconv.Itoa(len(f.requestsSnapshot())))
		h.ServeHTTP(w, r)
	})
}

func (f *fakeBackend) requestsSnapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeBackend) count(method, suffix string) int {
	n := 0
	for _, r := range f.requestsSnapshot() {
		if strings.HasPrefix(r, method+" ") && strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (f *fakeBackend) get(id string) (*fakeSandbox, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sandboxes[id]
	if ok {
		s.lastActive = time.Now()
	}
	return s, ok
}

// hostPath maps an absolute sandbox path to the sandbox's directory.
func (s *fakeSandbox) hostPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q: must be absolute", p)
	}
	return filepath.Join(s.root, filepath.FromSlash(path.Clean(p))), nil
}

func notFound(id string) noxapi.Error {
	return noxapi.Error{Error: fmt.Sprintf("sandbox %q not found", id)}
}

func (f *fakeBackend) Healthz(ctx context.Context, _ noxapi.HealthzRequestObject) (noxapi.HealthzResponseObject, error) {
	return noxapi.Healthz200TextResponse("OK"), nil
}

func (f *fakeBackend) GetInfo(ctx context.Context, _ noxapi.GetInfoRequestObject) (noxapi.GetInfoResponseObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return noxapi.GetInfo200JSONResponse(*f.info), nil
}

func (f *fakeBackend) status(id string, s *fakeSandbox) noxapi.SandboxStatus {
	img := s.image
	mem := "512Mi"
	return noxapi.SandboxStatus{
		SessionID: id, PodName: s.podName, State: noxapi.Ready, Image: &img,
		CreatedAt: s.created, LastActiveAt: s.lastActive,
		ExpiresAt:  s.lastActive.Add(time.Duration(s.ttl) * time.Second),
		TTLSeconds: s.ttl,
		Limits:     &noxapi.ResourceLimits{Memory: &mem, Unenforced: []string{"cpu"}},
	}
}

func (f *fakeBackend) ListSandboxes(ctx context.Context, req noxapi.ListSandboxesRequestObject) (noxapi.ListSandboxesResponseObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	size := 100
	if req.Params.PageSize != nil {
		size = int(*req.Params.PageSize)
	}
	ids := make([]string, 0, len(f.sandboxes))
	for id := range f.sandboxes {
		if req.Params.PageToken == nil || id > *req.Params.PageToken {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	list := noxapi.SandboxList{Items: []noxapi.SandboxStatus{}}
	for i, id := range ids {
		if i == size {
			last := ids[i-1]
			list.NextPageToken = &last
			break
		}
		list.Items = append(list.Items, f.status(id, f.sandboxes[id]))
	}
	return noxapi.ListSandboxes200JSONResponse(list), nil
}

func (f *fakeBackend) DeleteSandbox(ctx context.Context, req noxapi.DeleteSandboxRequestObject) (noxapi.DeleteSandboxResponseObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sandboxes[req.SessionID]
	if !ok {
		return noxapi.DeleteSandbox404JSONResponse(notFound(req.SessionID)), nil
	}
	delete(f.sandboxes, req.SessionID)
	_ = os.RemoveAll(s.root)
	return noxapi.DeleteSandbox204Response{}, nil
}

func (f *fakeBackend) GetSandbox(ctx context.Context, req noxapi.GetSandboxRequestObject) (noxapi.GetSandboxResponseObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sandboxes[req.SessionID]
	if !ok {
		return noxapi.GetSandbox404JSONResponse(notFound(req.SessionID)), nil
	}
	return noxapi.GetSandbox200JSONResponse(f.status(req.SessionID, s)), nil
}

func (f *fakeBackend) CreateSandbox(ctx context.Context, req noxapi.CreateSandboxRequestObject) (noxapi.CreateSandboxResponseObject, error) {
	ttl := int32(900)
	if req.Body.TTLSeconds != nil {
		ttl = *req.Body.TTLSeconds
	}
	if ttl < 1 || ttl > 86400 {
		return noxapi.CreateSandbox400JSONResponse{Error: "ttlSeconds: must be between 1 and 86400"}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Second)
	s, ok := f.sandboxes[req.SessionID]
	if !ok {
		root := filepath.Join(f.dir, req.SessionID)
		if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o755); err != nil {
			return nil, err
		}
		s = &fakeSandbox{podName: "sandbox-" + req.SessionID, created: now, root: root, image: "default"}
		f.sandboxes[req.SessionID] = s
	}
	if req.Body.Image != nil {
		s.image = *req.Body.Image
	}
	s.ttl, s.lastActive = ttl, now
	return noxapi.CreateSandbox200JSONResponse{PodName: s.podName, ExpiresAt: now.Add(time.Duration(ttl) * time.Second)}, nil
}

func (f *fakeBackend) TouchSandbox(ctx context.Context, req noxapi.TouchSandboxRequestObject) (noxapi.TouchSandboxResponseObject, error) {
	if _, ok := f.get(req.SessionID); !ok {
		return noxapi.TouchSandbox404JSONResponse(notFound(req.SessionID)), nil
	}
	return noxapi.TouchSandbox200Response{}, nil
}

func (f *fakeBackend) ExecInSandbox(ctx context.Context, req noxapi.ExecInSandboxRequestObject) (noxapi.ExecInSandboxResponseObject, error) {
	s, ok := f.get(req.SessionID)
	if !ok {
		return noxapi.ExecInSandbox404JSONResponse(notFound(req.SessionID)), nil
	}
	if len(req.Body.Cmd) == 0 {
		return noxapi.ExecInSandbox400JSONResponse{Error: "cmd: must hold at least one element"}, nil
	}
	return noxapi.ExecInSandbox200JSONResponse(s.run(ctx, *req.Body)), nil
}

func (f *fakeBackend) ExecInSandboxStream(ctx context.Context, req noxapi.ExecInSandboxStreamRequestObject) (noxapi.ExecInSandboxStreamResponseObject, error) {
	s, ok := f.get(req.SessionID)
	if !ok {
		return noxapi.ExecInSandboxStream404JSONResponse(notFound(req.SessionID)), nil
	}
	f.mu.Lock()
	custom := f.stream
	f.mu.Unlock()
	if custom != nil {
		return noxapi.ExecInSandboxStream200TextEventStreamResponse{Body: custom(ctx, *req.Body)}, nil
	}
	res := s.run(ctx, *req.Body)
	var b strings.Builder
	for _, line := range strings.SplitAfter(res.Stdout, "\n") {
		if line != "" {
			writeEvent(&b, "stdout", map[string]string{"data": line})
			b.WriteString(": heartbeat\n\n")
		}
	}
	if res.Stderr != "" {
		writeEvent(&b, "stderr", map[string]string{"data": res.Stderr})
	}
	writeEvent(&b, "exit", res)
	return noxapi.ExecInSandboxStream200TextEventStreamResponse{Body: strings.NewReader(b.String())}, nil
}

func writeEvent(w io.Writer, event string, v any) {
	data, _ := json.Marshal(v)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
}

func (f *fakeBackend) DownloadFiles(ctx context.Context, req noxapi.DownloadFilesRequestObject) (noxapi.DownloadFilesResponseObject, error) {
	s, ok := f.get(req.SessionID)
	if !ok {
		return noxapi.DownloadFiles404JSONResponse(notFound(req.SessionID)), nil
	}
	src := "/workspace"
	if req.Params.Src != nil {
		src = *req.Params.Src
	}
	p, err := s.hostPath(src)
	if err != nil {
		return noxapi.DownloadFiles400JSONResponse{Error: err.Error()}, nil
	}
	if _, err := os.Lstat(p); err != nil {
		return noxapi.DownloadFiles404JSONResponse{Error: fmt.Sprintf("src %q: no such file or directory", src)}, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteTarGz(pw, p)) }()
	return noxapi.DownloadFiles200ApplicationXTarResponse{Body: pr}, nil
}

func (f *fakeBackend) UploadFiles(ctx context.Context, req noxapi.UploadFilesRequestObject) (noxapi.UploadFilesResponseObject, error) {
	s, ok := f.get(req.SessionID)
	if !ok {
		return noxapi.UploadFiles404JSONResponse(notFound(req.SessionID)), nil
	}
	dest := "/workspace"
	if req.Params.Dest != nil {
		dest = *req.Params.Dest
	}
	p, err := s.hostPath(dest)
	if err != nil {
		return noxapi.UploadFiles400JSONResponse{Error: err.Error()}, nil
	}
	if err := ExtractTarGz(req.Body, p); err != nil {
		if errors.Is(err, ErrUnsafeArchive) {
			return noxapi.UploadFiles400JSONResponse{Error: err.Error()}, nil
		}
		return noxapi.UploadFiles400JSONResponse{Error: err.Error()}, nil
	}
	return noxapi.UploadFiles200Response{}, nil
}

// run emulates a few commands.
func (s *fakeSandbox) run(ctx context.Context, req noxapi.ExecRequest) noxapi.ExecResult {
	start := time.Now()
	timeout := 30 * time.Second
	if req.TimeoutSeconds != nil {
		timeout = time.Duration(*req.TimeoutSeconds) * time.Second
	}
	wd := "/workspace"
	if req.Workdir != nil {
		wd = *req.Workdir
	}
	var out, errOut strings.Builder
	code := s.runArgv(ctx, req.Cmd, wd, req.Env, timeout, &out, &errOut)
	res := noxapi.ExecResult{ExitCode: int32(code), Stdout: out.String(), Stderr: errOut.String(), DurationMs: time.Since(start).Milliseconds()}
	if code == 124 {
		t := true
		res.TimedOut = &t
	}
	return res
}

func (s *fakeSandbox) runArgv(ctx context.Context, argv []string, wd string, env map[string]string, timeout time.Duration, out, errOut *strings.Builder) int {
	switch argv[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(argv[1:], " "))
	case "true":
	case "false":
		return 1
	case "exit":
		n, _ := strconv.Atoi(argv[1])
		return n
	case "cat":
		for _, name := range argv[1:] {
			if !path.IsAbs(name) {
				name = path.Join(wd, name)
			}
			p, _ := s.hostPath(name)
			data, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(errOut, "cat: %s: No such file or directory\n", name)
				return 1
			}
			out.Write(data)
		}
	case "sleep":
		d, _ := strconv.ParseFloat(argv[1], 64)
		dur := time.Duration(d * float64(time.Second))
		if dur > timeout {
			time.Sleep(timeout)
			return 124
		}
		select {
		case <-time.After(dur):
		case <-ctx.Done():
			return 137
		}
	case "sh", "bash":
		if len(argv) != 3 || argv[1] != "-c" {
			return 2
		}
		code := 0
		for _, stmt := range strings.FieldsFunc(argv[2], func(r rune) bool { return r == ';' || r == '\n' }) {
			stmt = strings.ReplaceAll(stmt, "&&", "")
			words := strings.Fields(os.Expand(stmt, func(k string) string { return env[k] }))
			if len(words) == 0 {
				continue
			}
			target := out
			if words[len(words)-1] == ">&2" {
				target, words = errOut, words[:len(words)-1]
			}
			code = s.runArgv(ctx, words, wd, env, timeout, target, errOut)
			if words[0] == "exit" {
				return code
			}
		}
		return code
	default:
		fmt.Fprintf(errOut, "%s: command not found\n", argv[0])
		return 127
	}
	return 0
}

// testPolicy retries fast.
func testPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
}

// setup starts a fake backend behind an httptest server mounted under
// basePath and returns a client for it.
func setup(t *testing.T, opts ...Option) (*Client, *fakeBackend) {
	t.Helper()
	f := newFakeBackend(t)
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+basePath, append([]Option{WithRetry(testPolicy())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// setupInProcess is setup with WithHandler instead of a socket.
func setupInProcess(t *testing.T, opts ...Option) (*Client, *fakeBackend) {
	t.Helper()
	f := newFakeBackend(t)
	c, err := New("http://nox.invalid"+basePath, append([]Option{WithRetry(testPolicy()), WithHandler(f.handler())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}
