package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/sdk"
)

// hostFake is a test double of a NoxRunner backend that runs commands as
// host processes in a temporary directory per sandbox, standing for
// /workspace. It lets the CLI's tests run where the local backend cannot
// isolate sandboxes. It is no sandbox: only tests use it, with commands
// the tests choose. Paths under /workspace in requests and in stdout are
// translated; commands that name other absolute paths see the host.
type hostFake struct {
	dir string

	mu        sync.Mutex
	sandboxes map[string]*fakeSandbox
}

type fakeSandbox struct {
	podName string
	root    string
	created time.Time
	active  time.Time
	ttl     time.Duration
	image   string
}

// newHostFake starts the fake on a loopback httptest server.
func newHostFake(t *testing.T) (*hostFake, *httptest.Server) {
	t.Helper()
	f := &hostFake{dir: t.TempDir(), sandboxes: map[string]*fakeSandbox{}}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *hostFake) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, noxapi.Info{APIVersion: "v1", Backend: noxapi.BackendIdentity{Name: "host-fake", Version: "test"},
			Extensions: []string{sdk.ExtInfo, sdk.ExtSandboxesGet, sdk.ExtSandboxesList},
			Isolation:  &noxapi.Isolation{Tier: "none-unsafe", Isolated: false, Notes: []string{"test double"}}})
	})
	mux.HandleFunc("PUT /v1/sandboxes/{id}", f.create)
	mux.HandleFunc("GET /v1/sandboxes/{id}", f.get)
	mux.HandleFunc("GET /v1/sandboxes", f.list)
	mux.HandleFunc("DELETE /v1/sandboxes/{id}", f.delete)
	mux.HandleFunc("POST /v1/sandboxes/{id}/touch", f.touch)
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec", f.exec)
	mux.HandleFunc("POST /v1/sandboxes/{id}/files/upload", f.upload)
	mux.HandleFunc("GET /v1/sandboxes/{id}/files/download", f.download)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, noxapi.Error{Error: fmt.Sprintf(format, args...)})
}

// sandbox returns the sandbox of the request, or answers 404.
func (f *hostFake) sandbox(w http.ResponseWriter, r *http.Request) *fakeSandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sandboxes[r.PathValue("id")]
	if sb == nil {
		writeErr(w, 404, "sandbox %q not found", r.PathValue("id"))
		return nil
	}
	sb.active = time.Now()
	return sb
}

func (f *hostFake) create(w http.ResponseWriter, r *http.Request) {
	var req noxapi.CreateSandboxRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, 400, "bad JSON: %v", err)
			return
		}
	}
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sandboxes[id]
	if sb == nil {
		sum := sha256.Sum256([]byte(id))
		key := hex.EncodeToString(sum[:8])
		sb = &fakeSandbox{podName: "fake-" + key, root: filepath.Join(f.dir, key), created: time.Now(), ttl: 900 * time.Second, image: "default"}
		if err := os.MkdirAll(sb.root, 0o755); err != nil {
			writeErr(w, 500, "%v", err)
			return
		}
		f.sandboxes[id] = sb
	}
	if req.TTLSeconds != nil {
		sb.ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	if req.Image != nil {
		sb.image = *req.Image
	}
	sb.active = time.Now()
	writeJSON(w, 200, noxapi.CreateSandboxResult{PodName: sb.podName, ExpiresAt: sb.active.Add(sb.ttl)})
}

func (f *hostFake) status(id string, sb *fakeSandbox) noxapi.SandboxStatus {
	return noxapi.SandboxStatus{SessionID: id, PodName: sb.podName, State: "ready", Image: &sb.image,
		CreatedAt: sb.created, LastActiveAt: sb.active, ExpiresAt: sb.active.Add(sb.ttl), TTLSeconds: int32(sb.ttl / time.Second)}
}

func (f *hostFake) get(w http.ResponseWriter, r *http.Request) {
	if sb := f.sandbox(w, r); sb != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, f.status(r.PathValue("id"), sb))
	}
}

func (f *hostFake) list(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range f.sandboxes {
			if !yield(id) {
				return
			}
		}
	})
	out := noxapi.SandboxList{Items: []noxapi.SandboxStatus{}}
	for _, id := range ids {
		out.Items = append(out.Items, f.status(id, f.sandboxes[id]))
	}
	writeJSON(w, 200, out)
}

func (f *hostFake) delete(w http.ResponseWriter, r *http.Request) {
	if sb := f.sandbox(w, r); sb != nil {
		f.mu.Lock()
		delete(f.sandboxes, r.PathValue("id"))
		f.mu.Unlock()
		_ = os.RemoveAll(sb.root)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *hostFake) touch(w http.ResponseWriter, r *http.Request) {
	if sb := f.sandbox(w, r); sb != nil {
		exp := sb.active.Add(sb.ttl)
		writeJSON(w, 200, noxapi.TouchResult{ExpiresAt: &exp})
	}
}

// hostPath maps a sandbox path under /workspace to the host.
func hostPath(sb *fakeSandbox, p string) (string, error) {
	if p == "" {
		p = sdk.DefaultWorkdir
	}
	p = path.Clean(p)
	rel, ok := strings.CutPrefix(p, sdk.DefaultWorkdir)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", fmt.Errorf("path %q is outside /workspace", p)
	}
	return filepath.Join(sb.root, filepath.FromSlash(rel)), nil
}

func (f *hostFake) exec(w http.ResponseWriter, r *http.Request) {
	sb := f.sandbox(w, r)
	if sb == nil {
		return
	}
	var req noxapi.ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Cmd) == 0 {
		writeErr(w, 400, "bad exec request")
		return
	}
	wd := ""
	if req.Workdir != nil {
		wd = *req.Workdir
	}
	dir, err := hostPath(sb, wd)
	if err != nil {
		writeErr(w, 400, "workdir: %v", err)
		return
	}
	timeout := 30 * time.Second
	if req.TimeoutSeconds != nil && *req.TimeoutSeconds > 0 {
		timeout = time.Duration(*req.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	argv := make([]string, len(req.Cmd))
	for i, a := range req.Cmd {
		argv[i] = strings.ReplaceAll(a, sdk.DefaultWorkdir, sb.root)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + sb.root}
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	res := noxapi.ExecResult{DurationMs: time.Since(start).Milliseconds(),
		Stdout: strings.ReplaceAll(stdout.String(), sb.root, sdk.DefaultWorkdir), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.ExitCode = 124
	case errors.As(err, &ee):
		res.ExitCode = int32(ee.ExitCode())
	case errors.Is(err, exec.ErrNotFound):
		res.ExitCode = 127
	case err != nil:
		res.ExitCode = 126
	}
	writeJSON(w, 200, res)
}

func (f *hostFake) upload(w http.ResponseWriter, r *http.Request) {
	sb := f.sandbox(w, r)
	if sb == nil {
		return
	}
	dir, err := hostPath(sb, r.URL.Query().Get("dest"))
	if err != nil {
		writeErr(w, 400, "dest: %v", err)
		return
	}
	if err := sdk.ExtractTarGz(r.Body, dir); err != nil {
		writeErr(w, 400, "archive: %v", err)
		return
	}
	msg := "ok"
	writeJSON(w, 200, noxapi.UploadResult{Message: &msg})
}

func (f *hostFake) download(w http.ResponseWriter, r *http.Request) {
	sb := f.sandbox(w, r)
	if sb == nil {
		return
	}
	src, err := hostPath(sb, r.URL.Query().Get("src"))
	if err != nil {
		writeErr(w, 400, "src: %v", err)
		return
	}
	if _, err := os.Stat(src); err != nil {
		writeErr(w, 404, "%s not found", r.URL.Query().Get("src"))
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_ = sdk.WriteTarGz(w, src)
}
