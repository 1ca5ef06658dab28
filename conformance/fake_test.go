package conformance_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// fakeBackend is a small in-memory backend for testing the suite itself.
// Commands run on the host (no isolation) in a process group per exec;
// sandbox paths under /workspace and /tmp are rewritten to per-sandbox
// host directories in argv, env and workdir, and back in the output.
type fakeBackend struct {
	root  string
	token string
	// followDotDot makes uploads join entry names to dest unchecked, a
	// deliberate bug for the self-test.
	followDotDot bool
	// leakProcesses makes a timeout kill only the command, not the
	// processes it started (they die with the sandbox), a deliberate bug.
	leakProcesses bool
	// noOutputCap returns all output, a deliberate bug.
	noOutputCap bool
	// ignoreMaxTTL accepts any ttlSeconds, above the advertised
	// maxTtlSeconds too, a deliberate bug.
	ignoreMaxTTL bool
	// noUploadLimit accepts uploads above the advertised maxUploadBytes,
	// a deliberate bug.
	noUploadLimit bool

	mu  sync.Mutex
	sbx map[string]*fakeSandbox
}

type fakeSandbox struct {
	id, pod      string
	dir, ws, tmp string
	created      time.Time
	last         time.Time
	ttl          int32
	pgids        map[int]bool
	toHost       *strings.Replacer
	fromHost     *strings.Replacer
}

func (s *fakeSandbox) expires() time.Time { return s.last.Add(time.Duration(s.ttl) * time.Second) }

// The fake's limits, advertised in GET /v1/info.
const (
	fakeOutputCap  = 1 << 20
	fakeMaxTTL     = 86400
	fakeMaxTimeout = 3600
	fakeMaxUpload  = 1 << 20
)

// fakeUnenforced are the resource limits the fake records but does not
// enforce (it runs commands on the host): all of them.
var fakeUnenforced = []string{"cpu", "memory", "pids", "ephemeralStorage"}

var _ noxapi.StrictServerInterface = (*fakeBackend)(nil)

var (
	sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	quantityPattern  = regexp.MustCompile(`^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
)

func newFake(root string) *fakeBackend {
	return &fakeBackend{root: root, sbx: map[string]*fakeSandbox{}}
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// handler serves the fake with JSON errors for malformed requests and the
// bearer token check.
func (f *fakeBackend) handler() http.Handler {
	bad := func(w http.ResponseWriter, _ *http.Request, err error) { jsonError(w, 400, err.Error()) }
	si := noxapi.NewStrictHandlerWithOptions(f, nil, noxapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  bad,
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) { jsonError(w, 500, err.Error()) },
	})
	h := noxapi.HandlerWithOptions(si, noxapi.StdHTTPServerOptions{ErrorHandlerFunc: bad})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.token != "" && strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("Authorization") != "Bearer "+f.token {
			jsonError(w, 401, "missing or invalid bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// lookup returns a live sandbox, removing it when expired.
func (f *fakeBackend) lookup(id string, touch bool) *fakeSandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sbx[id]
	if s == nil {
		return nil
	}
	if time.Now().After(s.expires()) {
		f.removeLocked(s)
		return nil
	}
	if touch {
		s.last = time.Now()
	}
	return s
}

func (f *fakeBackend) removeLocked(s *fakeSandbox) {
	for pg := range s.pgids {
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	}
	delete(f.sbx, s.id)
	go os.RemoveAll(s.dir)
}

func (f *fakeBackend) Healthz(context.Context, noxapi.HealthzRequestObject) (noxapi.HealthzResponseObject, error) {
	return noxapi.Healthz200TextResponse("OK"), nil
}

func (f *fakeBackend) GetInfo(context.Context, noxapi.GetInfoRequestObject) (noxapi.GetInfoResponseObject, error) {
	ext := []string{"info", "sandboxes.get", "sandboxes.list", "exec.stream", "exec.flags"}
	if f.token != "" {
		ext = append(ext, "auth.bearer")
	}
	lim := noxapi.BackendLimits{MaxOutputBytes: ptrTo[int64](fakeOutputCap), StreamHeartbeatSeconds: ptrTo[int32](1),
		MaxTTLSeconds: ptrTo[int32](fakeMaxTTL), MaxTimeoutSeconds: ptrTo[int32](fakeMaxTimeout), MaxUploadBytes: ptrTo[int64](fakeMaxUpload)}
	return noxapi.GetInfo200JSONResponse{APIVersion: "v1", Backend: noxapi.BackendIdentity{Name: "fake", Version: "0"},
		Extensions: ext, Limits: &lim}, nil
}

func (f *fakeBackend) status(s *fakeSandbox) noxapi.SandboxStatus {
	return noxapi.SandboxStatus{SessionID: s.id, PodName: s.pod, State: noxapi.Ready, CreatedAt: s.created,
		LastActiveAt: s.last, ExpiresAt: s.expires(), TTLSeconds: s.ttl,
		Limits: &noxapi.ResourceLimits{Unenforced: slices.Clone(fakeUnenforced)}}
}

func (f *fakeBackend) ListSandboxes(_ context.Context, r noxapi.ListSandboxesRequestObject) (noxapi.ListSandboxesResponseObject, error) {
	size := int32(100)
	if r.Params.PageSize != nil {
		size = *r.Params.PageSize
	}
	if size < 1 || size > 1000 {
		return noxapi.ListSandboxes400JSONResponse{Error: "pageSize: must be between 1 and 1000"}, nil
	}
	after := ""
	if r.Params.PageToken != nil {
		b, err := base64.RawURLEncoding.DecodeString(*r.Params.PageToken)
		if err != nil || len(b) == 0 {
			return noxapi.ListSandboxes400JSONResponse{Error: "pageToken: malformed"}, nil
		}
		after = string(b)
	}
	f.mu.Lock()
	var ids []string
	for id, s := range f.sbx {
		if id > after && time.Now().Before(s.expires()) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := noxapi.ListSandboxes200JSONResponse{Items: []noxapi.SandboxStatus{}}
	for i, id := range ids {
		if i == int(size) {
			t := base64.RawURLEncoding.EncodeToString([]byte(ids[i-1]))
			out.NextPageToken = &t
			break
		}
		out.Items = append(out.Items, f.status(f.sbx[id]))
	}
	f.mu.Unlock()
	return out, nil
}

func (f *fakeBackend) DeleteSandbox(_ context.Context, r noxapi.DeleteSandboxRequestObject) (noxapi.DeleteSandboxResponseObject, error) {
	if !sessionIDPattern.MatchString(r.SessionID) {
		return noxapi.DeleteSandbox400JSONResponse{Error: "sessionId: invalid"}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sbx[r.SessionID]
	if s == nil {
		return noxapi.DeleteSandbox404JSONResponse{Error: "sandbox not found"}, nil
	}
	f.removeLocked(s)
	return noxapi.DeleteSandbox204Response{}, nil
}

func (f *fakeBackend) GetSandbox(_ context.Context, r noxapi.GetSandboxRequestObject) (noxapi.GetSandboxResponseObject, error) {
	s := f.lookup(r.SessionID, false)
	if s == nil {
		return noxapi.GetSandbox404JSONResponse{Error: "sandbox not found"}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return noxapi.GetSandbox200JSONResponse(f.status(s)), nil
}

func (f *fakeBackend) CreateSandbox(_ context.Context, r noxapi.CreateSandboxRequestObject) (noxapi.CreateSandboxResponseObject, error) {
	if !sessionIDPattern.MatchString(r.SessionID) {
		return noxapi.CreateSandbox400JSONResponse{Error: "sessionId: invalid"}, nil
	}
	ttl := int32(900)
	if r.Body != nil && r.Body.TTLSeconds != nil {
		ttl = *r.Body.TTLSeconds
	}
	if ttl < 1 || ttl > fakeMaxTTL && !f.ignoreMaxTTL {
		return noxapi.CreateSandbox400JSONResponse{Error: fmt.Sprintf("ttlSeconds: must be between 1 and %d", fakeMaxTTL)}, nil
	}
	if r.Body != nil {
		for name, q := range map[string]*string{"cpuLimit": r.Body.CPULimit, "memoryLimit": r.Body.MemoryLimit, "ephemeralStorageLimit": r.Body.EphemeralStorageLimit} {
			if q != nil && !quantityPattern.MatchString(*q) {
				return noxapi.CreateSandbox400JSONResponse{Error: name + ": not a quantity"}, nil
			}
		}
	}
	f.lookup(r.SessionID, false) // drop an expired one
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	s := f.sbx[r.SessionID]
	if s == nil {
		dir := filepath.Join(f.root, r.SessionID)
		s = &fakeSandbox{id: r.SessionID, pod: "fake-" + r.SessionID, dir: dir, ws: filepath.Join(dir, "workspace"),
			tmp: filepath.Join(dir, "tmp"), created: now, pgids: map[int]bool{}}
		s.toHost = strings.NewReplacer("/workspace", s.ws, "/tmp", s.tmp)
		s.fromHost = strings.NewReplacer(s.ws, "/workspace", s.tmp, "/tmp")
		for _, d := range []string{s.ws, s.tmp} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		f.sbx[r.SessionID] = s
	}
	s.ttl, s.last = ttl, now
	return noxapi.CreateSandbox200JSONResponse{PodName: s.pod, ExpiresAt: s.expires()}, nil
}

// capped collects output up to the cap, noting truncation.
type capped struct {
	limit     int
	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
	onChunk   func([]byte)
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - c.buf.Len()
	chunk := p
	if len(chunk) > room {
		chunk, c.truncated = chunk[:room], true
	}
	c.buf.Write(chunk)
	if len(chunk) > 0 && c.onChunk != nil {
		c.onChunk(chunk)
	}
	return len(p), nil
}

type execOutcome struct {
	res noxapi.ExecResult
	bad string // a 400 message
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// run executes req in s; onOut/onErr receive output chunks as they come.
func (f *fakeBackend) run(ctx context.Context, s *fakeSandbox, req noxapi.ExecRequest, onOut, onErr func([]byte)) execOutcome {
	if len(req.Cmd) == 0 {
		return execOutcome{bad: "cmd: must hold at least one element"}
	}
	timeout := int32(30)
	if req.TimeoutSeconds != nil {
		timeout = *req.TimeoutSeconds
	}
	if timeout < 1 || timeout > fakeMaxTimeout {
		return execOutcome{bad: fmt.Sprintf("timeoutSeconds: must be between 1 and %d", fakeMaxTimeout)}
	}
	wd := "/workspace"
	if req.Workdir != nil {
		wd = *req.Workdir
	}
	hostWD := s.toHost.Replace(wd)
	if st, err := os.Stat(hostWD); err != nil || !st.IsDir() || !(strings.HasPrefix(wd, "/workspace") || strings.HasPrefix(wd, "/tmp")) {
		return execOutcome{bad: fmt.Sprintf("workdir %q: not a directory", wd)}
	}
	args := make([]string, len(req.Cmd))
	for i, a := range req.Cmd {
		args[i] = s.toHost.Replace(a)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = hostWD
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.ws, "LANG=C.UTF-8"}
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+s.toHost.Replace(v))
	}
	so, se := capped{limit: fakeOutputCap}, capped{limit: fakeOutputCap}
	if f.noOutputCap {
		so.limit, se.limit = 1<<40, 1<<40
	}
	if onOut != nil {
		so.onChunk = func(b []byte) { onOut([]byte(s.fromHost.Replace(string(b)))) }
		se.onChunk = func(b []byte) { onErr([]byte(s.fromHost.Replace(string(b)))) }
	}
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	start := time.Now()
	res := noxapi.ExecResult{}
	no := false
	if err := cmd.Start(); err != nil {
		res.ExitCode = 127
		if errors.Is(err, fs.ErrPermission) {
			res.ExitCode = 126
		}
		res.Stderr = err.Error() + "\n"
		res.TimedOut = &no
		return execOutcome{res: res}
	}
	pg := cmd.Process.Pid
	f.mu.Lock()
	s.pgids[pg] = true
	f.mu.Unlock()
	var timedOut atomic.Bool
	timer := time.AfterFunc(time.Duration(timeout)*time.Second, func() {
		timedOut.Store(true)
		if f.leakProcesses {
			_ = cmd.Process.Kill()
			return
		}
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	})
	err := cmd.Wait()
	timer.Stop()
	if !f.leakProcesses {
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		f.mu.Lock()
		delete(s.pgids, pg)
		f.mu.Unlock()
	}
	res.DurationMs = time.Since(start).Milliseconds()
	var ee *exec.ExitError
	switch {
	case timedOut.Load():
		res.ExitCode = 124
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int32(ws.Signal())
		} else {
			res.ExitCode = int32(ee.ExitCode())
		}
	}
	res.Stdout = validUTF8(s.fromHost.Replace(so.buf.String()))
	res.Stderr = validUTF8(s.fromHost.Replace(se.buf.String()))
	res.TimedOut = ptrTo(timedOut.Load())
	res.StdoutTruncated, res.StderrTruncated = &so.truncated, &se.truncated
	return execOutcome{res: res}
}

func (f *fakeBackend) ExecInSandbox(ctx context.Context, r noxapi.ExecInSandboxRequestObject) (noxapi.ExecInSandboxResponseObject, error) {
	s := f.lookup(r.SessionID, true)
	if s == nil {
		return noxapi.ExecInSandbox404JSONResponse{Error: "sandbox not found"}, nil
	}
	if r.Body == nil {
		return noxapi.ExecInSandbox400JSONResponse{Error: "body required"}, nil
	}
	out := f.run(ctx, s, *r.Body, nil, nil)
	if out.bad != "" {
		return noxapi.ExecInSandbox400JSONResponse{Error: out.bad}, nil
	}
	return noxapi.ExecInSandbox200JSONResponse(out.res), nil
}

func (f *fakeBackend) ExecInSandboxStream(ctx context.Context, r noxapi.ExecInSandboxStreamRequestObject) (noxapi.ExecInSandboxStreamResponseObject, error) {
	s := f.lookup(r.SessionID, true)
	if s == nil {
		return noxapi.ExecInSandboxStream404JSONResponse{Error: "sandbox not found"}, nil
	}
	if r.Body == nil || len(r.Body.Cmd) == 0 {
		return noxapi.ExecInSandboxStream400JSONResponse{Error: "cmd: must hold at least one element"}, nil
	}
	pr, pw := io.Pipe()
	var mu sync.Mutex
	send := func(event string, v any) {
		b, _ := json.Marshal(v)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(pw, "event: %s\ndata: %s\n\n", event, b)
	}
	chunk := func(event string) func([]byte) {
		return func(b []byte) { send(event, noxapi.OutputChunk{Data: validUTF8(string(b))}) }
	}
	go func() {
		mu.Lock()
		fmt.Fprint(pw, ": stream start\n\n")
		mu.Unlock()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					mu.Lock()
					fmt.Fprint(pw, ": heartbeat\n\n")
					mu.Unlock()
				}
			}
		}()
		out := f.run(ctx, s, *r.Body, chunk("stdout"), chunk("stderr"))
		if out.bad != "" {
			send("error", noxapi.Error{Error: out.bad})
		} else {
			send("exit", out.res)
		}
		pw.Close()
	}()
	return noxapi.ExecInSandboxStream200TextEventStreamResponse{Body: pr}, nil
}

// sandboxPath maps a sandbox path to the host, or "" when outside the
// writable areas.
func sandboxPath(s *fakeSandbox, p string) string {
	p = path.Clean(p)
	switch {
	case p == "/workspace" || strings.HasPrefix(p, "/workspace/"):
		return s.ws + strings.TrimPrefix(p, "/workspace")
	case p == "/tmp" || strings.HasPrefix(p, "/tmp/"):
		return s.tmp + strings.TrimPrefix(p, "/tmp")
	}
	return ""
}

func (f *fakeBackend) UploadFiles(_ context.Context, r noxapi.UploadFilesRequestObject) (noxapi.UploadFilesResponseObject, error) {
	s := f.lookup(r.SessionID, true)
	if s == nil {
		return noxapi.UploadFiles404JSONResponse{Error: "sandbox not found"}, nil
	}
	dest := "/workspace"
	if r.Params.Dest != nil {
		dest = *r.Params.Dest
	}
	hostDest := sandboxPath(s, dest)
	if hostDest == "" {
		return noxapi.UploadFiles400JSONResponse{Error: "dest: outside the sandbox"}, nil
	}
	limit := int64(fakeMaxUpload)
	if f.noUploadLimit {
		limit = 1 << 40
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return noxapi.UploadFiles413JSONResponse{Error: fmt.Sprintf("archive exceeds the upload limit of %d bytes", limit)}, nil
	}
	var rd io.Reader = bytes.NewReader(body)
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return noxapi.UploadFiles400JSONResponse{Error: "bad gzip: " + err.Error()}, nil
		}
		rd = zr
	}
	type entry struct {
		h    *tar.Header
		body []byte
	}
	var entries []entry
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return noxapi.UploadFiles400JSONResponse{Error: "bad tar: " + err.Error()}, nil
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return noxapi.UploadFiles400JSONResponse{Error: "bad tar: " + err.Error()}, nil
		}
		if !f.followDotDot {
			if msg := hostileEntry(h); msg != "" {
				return noxapi.UploadFiles400JSONResponse{Error: fmt.Sprintf("archive entry %q: %s", h.Name, msg)}, nil
			}
		}
		entries = append(entries, entry{h, b})
	}
	if len(entries) == 0 && !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) && len(body) > 0 && len(body) < 1024 {
		return noxapi.UploadFiles400JSONResponse{Error: "not a tar archive"}, nil
	}
	if err := os.MkdirAll(hostDest, 0o755); err != nil {
		return nil, err
	}
	for _, e := range entries {
		target := filepath.Join(hostDest, e.h.Name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, err
		}
		mode := fs.FileMode(e.h.Mode & 0o7777)
		switch e.h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode); err != nil {
				return nil, err
			}
			_ = os.Chmod(target, mode)
		case tar.TypeReg:
			_ = os.Remove(target)
			if err := os.WriteFile(target, e.body, mode); err != nil {
				return nil, err
			}
			_ = os.Chmod(target, mode)
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(e.h.Linkname, target); err != nil {
				return nil, err
			}
		case tar.TypeLink:
			_ = os.Remove(target)
			if err := os.Link(filepath.Join(hostDest, e.h.Linkname), target); err != nil {
				return nil, err
			}
		}
	}
	return noxapi.UploadFiles200Response{}, nil
}

// hostileEntry says why an entry may not be extracted, or "".
func hostileEntry(h *tar.Header) string {
	contained := func(p string) bool {
		c := path.Clean(p)
		return !path.IsAbs(p) && c != ".." && !strings.HasPrefix(c, "../")
	}
	switch {
	case !contained(h.Name):
		return "path escapes dest"
	case h.Typeflag == tar.TypeSymlink && !contained(path.Join(path.Dir(h.Name), h.Linkname)):
		return "symlink escapes dest"
	case h.Typeflag == tar.TypeSymlink && path.IsAbs(h.Linkname):
		return "absolute symlink"
	case h.Typeflag == tar.TypeLink && !contained(h.Linkname):
		return "hardlink escapes dest"
	case h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeSymlink && h.Typeflag != tar.TypeLink:
		return "unsupported entry type"
	}
	return ""
}

func (f *fakeBackend) DownloadFiles(_ context.Context, r noxapi.DownloadFilesRequestObject) (noxapi.DownloadFilesResponseObject, error) {
	s := f.lookup(r.SessionID, true)
	if s == nil {
		return noxapi.DownloadFiles404JSONResponse{Error: "sandbox not found"}, nil
	}
	src := "/workspace"
	if r.Params.Src != nil {
		src = *r.Params.Src
	}
	host := sandboxPath(s, src)
	if host == "" {
		return noxapi.DownloadFiles400JSONResponse{Error: "src: outside the sandbox"}, nil
	}
	st, err := os.Lstat(host)
	if err != nil {
		return noxapi.DownloadFiles404JSONResponse{Error: fmt.Sprintf("src %q: no such file or directory", src)}, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(p, name string, fi fs.FileInfo) error {
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = name
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	}
	if !st.IsDir() {
		err = add(host, filepath.Base(host), st)
	} else {
		err = filepath.Walk(host, func(p string, fi fs.FileInfo, err error) error {
			if err != nil || p == host {
				return err
			}
			rel, _ := filepath.Rel(host, p)
			return add(p, filepath.ToSlash(rel), fi)
		})
	}
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return noxapi.DownloadFiles200ApplicationXTarResponse{Body: &buf, ContentLength: int64(buf.Len())}, nil
}

func (f *fakeBackend) TouchSandbox(_ context.Context, r noxapi.TouchSandboxRequestObject) (noxapi.TouchSandboxResponseObject, error) {
	if s := f.lookup(r.SessionID, true); s == nil {
		return noxapi.TouchSandbox404JSONResponse{Error: "sandbox not found"}, nil
	}
	return noxapi.TouchSandbox200Response{}, nil
}

func ptrTo[T any](v T) *T { return &v }
