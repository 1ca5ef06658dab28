package sdk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/quirks"
	"github.com/noxrunner/nox/internal/testbackend"
)

func TestUploadDirCancel(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T, ...Option) (*Client, *testbackend.Backend){setup, setupInProcess} {
		c, f := mk(t)
		ctx := context.Background()
		_, err := c.Create(ctx, "s", CreateOptions{})
		assertNoErr(t, err)
		dir := t.TempDir()
		data := make([]byte, 8<<20) // incompressible, larger than any buffer
		rand.Read(data)
		assertNoErr(t, os.WriteFile(filepath.Join(dir, "big"), data, 0o644))

		ctx, cancel := context.WithCancel(ctx)
		var read atomic.Int64
		f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/upload") {
				return false
			}
			buf := make([]byte, 32<<10)
			for read.Load() < 1<<20 {
				n, err := r.Body.Read(buf)
				read.Add(int64(n))
				if err != nil {
					return true
				}
			}
			cancel() // mid-upload
			// The server notices the client leaving only once the body is
			// read, so the handler returns on the client's cancel.
			<-ctx.Done()
			return true
		})
		done := make(chan error, 1)
		go func() {
			_, err := c.UploadDir(ctx, "s", "", dir)
			done <- err
		}()
		select {
		case err := <-done:
			assertIs(t, err, context.Canceled)
		case <-time.After(10 * time.Second):
			t.Fatal("UploadDir did not return after cancel")
		}
		if n := read.Load(); n < 1<<20 || n >= int64(len(data)) {
			t.Errorf("server read %d bytes before the cancel", n)
		}
	}
}

func TestUploadDirArchiveError(t *testing.T) {
	t.Parallel()
	if os.Getuid() == 0 {
		t.Skip("root reads unreadable files")
	}
	c, _ := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "secret"), "s", 0o000)
	_, err = c.UploadDir(ctx, "s", "", dir)
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("unreadable file: %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	var n atomic.Int32
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/exec") {
			return false
		}
		switch n.Add(1) {
		case 1:
			writeJSONError(w, 503, "not ready")
		case 2:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"exitCode":1,"stdout":"","stderr":"booting","durationMs":1}`)
		default:
			return false
		}
		return true
	})
	assertNoErr(t, c.WaitReady(ctx, "s", WaitOptions{Interval: time.Millisecond}))
	assertEq(t, "polls", n.Load(), int32(3))

	err = c.WaitReady(ctx, "missing", WaitOptions{})
	assertIs(t, err, ErrNotFound)

	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSONError(w, 503, "never ready")
		return true
	})
	start := time.Now()
	err = c.Sandbox("s").WaitReady(ctx, WaitOptions{Timeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond})
	assertIs(t, err, context.DeadlineExceeded)
	if !strings.Contains(err.Error(), "never ready") {
		t.Errorf("error lacks the last failure: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("wait took %s", d)
	}
}

// TestEveryOperationHasAMethod reads the contract and fails when an
// operation has no //meta:operation comment in the SDK's sources.
func TestEveryOperationHasAMethod(t *testing.T) {
	t.Parallel()
	spec, err := os.Open(filepath.Join("..", "api", "openapi.yaml"))
	assertNoErr(t, err)
	defer spec.Close()
	// A small scanner for the layout of api/openapi.yaml: paths at indent 2
	// under "paths:", methods at indent 4, operationId at indent 6.
	var (
		inPaths    bool
		curPath    string
		curMethod  string
		operations = map[string]string{} // "METHOD /path" -> operationId
	)
	pathRe := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):\s*$`)
	opRe := regexp.MustCompile(`^      operationId:\s*(\S+)\s*$`)
	sc := bufio.NewScanner(spec)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && len(line) > 0 && line[0] != ' ' && line[0] != '#':
			inPaths = false
		case !inPaths:
		case pathRe.MatchString(line):
			curPath = pathRe.FindStringSubmatch(line)[1]
		case methodRe.MatchString(line):
			curMethod = strings.ToUpper(methodRe.FindStringSubmatch(line)[1])
		case opRe.MatchString(line):
			operations[curMethod+" "+curPath] = opRe.FindStringSubmatch(line)[1]
		}
	}
	assertNoErr(t, sc.Err())
	if len(operations) < 11 {
		t.Fatalf("found only %d operations in the spec: %v", len(operations), operations)
	}

	implemented := map[string]bool{}
	metaRe := regexp.MustCompile(`(?m)^//meta:operation (\S+) (\S+)$`)
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		assertNoErr(t, err)
		for _, m := range metaRe.FindAllStringSubmatch(string(src), -1) {
			key := m[1] + " " + m[2]
			if _, ok := operations[key]; !ok {
				t.Errorf("%s: //meta:operation %s is not in the spec", name, key)
			}
			implemented[key] = true
		}
	}
	var missing []string
	for key, id := range operations {
		if !implemented[key] {
			missing = append(missing, fmt.Sprintf("%s (%s)", id, key))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("operations without an SDK method (add one with a //meta:operation comment): %s", strings.Join(missing, ", "))
	}
}

// TestNoKinOpenAPI checks that the SDK does not pull kin-openapi into the
// programs that use it.
func TestNoKinOpenAPI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "kin-openapi") || strings.Contains(dep, "getkin") {
			t.Errorf("the SDK depends on %s", dep)
		}
	}
}

func TestErrorsWrapping(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("outer: %w", &APIError{StatusCode: 409, Operation: "x", Message: "m", RequestID: "r"})
	assertIs(t, err, ErrConflict)
	if errors.Is(err, ErrNotFound) || (&APIError{StatusCode: 404}).Is(nil) {
		t.Error("wrong sentinel matched")
	}
	assertEq(t, "message", errors.Unwrap(err).Error(), "nox: x: 409 Conflict: m (request id r)")
}

func TestUploadBodies(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	var (
		mu      sync.Mutex
		lengths []int64
	)
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/upload") {
			mu.Lock()
			lengths = append(lengths, r.ContentLength)
			mu.Unlock()
			if ct := r.Header.Get("Content-Type"); ct != "application/x-tar" {
				t.Errorf("content type %q", ct)
			}
			if d := r.URL.Query().Get("dest"); d != "/workspace" {
				t.Errorf("dest %q", d)
			}
		}
		return false
	})
	_, err = c.UploadFiles(ctx, "s", "", map[string][]byte{"a": []byte("x")})
	assertNoErr(t, err)

	// A file passed to Upload is sent with its length and left open for
	// the caller.
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "f"), "file", 0o644)
	archive := filepath.Join(t.TempDir(), "a.tar.gz")
	af, err := os.Create(archive)
	assertNoErr(t, err)
	assertNoErr(t, WriteTarGz(af, dir))
	_, err = af.Seek(0, io.SeekStart)
	assertNoErr(t, err)
	_, err = c.Upload(ctx, "s", "", af)
	assertNoErr(t, err)
	if _, err := af.Seek(0, io.SeekStart); err != nil {
		t.Errorf("the SDK closed the caller's file: %v", err)
	}
	af.Close()
	// A directory and a reader of unknown length stream to a backend that
	// advertises upload.chunked.
	_, err = c.UploadDir(ctx, "s", "", dir)
	assertNoErr(t, err)
	var buf bytes.Buffer
	assertNoErr(t, WriteTarGz(&buf, dir))
	_, err = c.Upload(ctx, "s", "", io.MultiReader(&buf))
	assertNoErr(t, err)
	mu.Lock()
	defer mu.Unlock()
	if len(lengths) != 4 || lengths[0] <= 0 || lengths[1] <= 0 || lengths[2] != -1 || lengths[3] != -1 {
		t.Errorf("content lengths %v, want [n>0 n>0 -1 -1]", lengths)
	}
}

// TestUploadsWithoutChunked checks that every upload reaches a backend
// that reads bodies by Content-Length only and advertises nothing: a
// directory and a reader of unknown length are spooled, sent with their
// length, and the temporary file is gone afterwards, also when the upload
// fails.
func TestUploadsWithoutChunked(t *testing.T) {
	// Not parallel: it sets TMPDIR.
	bo := testOptions()
	bo.Quirks = &quirks.Quirks{ContentLengthOnly: true, NoExtensions: true}
	c, f := setupWith(t, bo, WithoutRetry())
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the spool goes
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "sub/f.txt"), "file", 0o600)
	_, err = c.UploadDir(ctx, "s", "/workspace/d", dir)
	assertNoErr(t, err)
	var buf bytes.Buffer
	assertNoErr(t, WriteTarGz(&buf, dir))
	_, err = c.Upload(ctx, "s", "/workspace/r", io.MultiReader(&buf))
	assertNoErr(t, err)
	res, err := c.Exec(ctx, "s", ExecRequest{Cmd: []string{"cat", "d/sub/f.txt", "r/sub/f.txt"}})
	assertNoErr(t, err)
	assertEq(t, "uploaded", res.Stdout, "filefile")
	for _, r := range f.Requests() {
		if strings.HasSuffix(r.Path, "/upload") && r.ContentLength <= 0 {
			t.Errorf("upload sent with Content-Length %d", r.ContentLength)
		}
	}
	_, err = c.UploadDir(ctx, "missing", "", dir)
	assertIs(t, err, ErrNotFound)
	_, err = c.UploadArchive(ctx, "s", "", func(w io.Writer) error { return errors.New("disk on fire") })
	if err == nil || !strings.Contains(err.Error(), "archiving: disk on fire") {
		t.Errorf("failing archive writer: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

func TestDownloadErrors(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	err = c.DownloadTo(ctx, "s", "/workspace/missing", t.TempDir())
	assertIs(t, err, ErrNotFound)

	// A hostile archive from the backend is refused.
	base, dest := hostileLayout(t)
	before := snapshot(t, filepath.Join(base, "outside"))
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/download") {
			return false
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(gzipBytes(makeTar(t, entry{name: "../outside/secret", typ: '0', body: "pwned"})))
		return true
	})
	err = c.DownloadTo(ctx, "s", "", dest)
	assertIs(t, err, ErrUnsafeArchive)
	assertEq(t, "outside", snapshot(t, filepath.Join(base, "outside")), before)

	// Cancelling mid-download.
	dctx, cancel := context.WithCancel(ctx)
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/download") {
			return false
		}
		gz := gzipBytes(makeTar(t, entry{name: "a", typ: '0', body: strings.Repeat("x", 1<<20)}))
		w.Write(gz[:len(gz)/2])
		w.(http.Flusher).Flush()
		cancel()
		<-dctx.Done()
		return true
	})
	err = c.DownloadTo(dctx, "s", "", t.TempDir())
	assertIs(t, err, context.Canceled)
}

func TestDeleteAndListEdgeCases(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == "DELETE":
			w.WriteHeader(http.StatusOK) // v1 allows 200
		case r.URL.Path == basePath+"/v1/sandboxes" && r.URL.Query().Get("pageToken") == "":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"items":[],"nextPageToken":"same"}`)
		case r.URL.Path == basePath+"/v1/sandboxes":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"items":[],"nextPageToken":"same"}`)
		default:
			return false
		}
		return true
	})
	assertNoErr(t, c.Delete(ctx, "any"))
	var errs []error
	for _, err := range c.List(ctx, ListOptions{PageSize: 5000}) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "repeated page token") {
		t.Errorf("repeated token: %v", errs)
	}
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[{"sessionId":1}]}`)
		return true
	})
	for _, err := range c.List(ctx, ListOptions{}) {
		if err == nil || !strings.Contains(err.Error(), "decoding") {
			t.Errorf("bad page: %v", err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c, _ := setupInProcess(t)
	ctx := context.Background()
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			id := fmt.Sprintf("c%d", i)
			sb := c.Sandbox(id)
			if _, err := sb.Create(ctx, CreateOptions{}); err != nil {
				done <- err
				return
			}
			if ok, err := c.Supports(ctx, ExtExecStream); err != nil || !ok {
				done <- fmt.Errorf("supports: %v %v", ok, err)
				return
			}
			res, err := sb.ExecStream(ctx, ExecRequest{Cmd: []string{"echo", id}}, StreamOptions{})
			if err == nil && res.Stdout != id+"\n" {
				err = fmt.Errorf("stdout %q", res.Stdout)
			}
			if err == nil {
				err = sb.Delete(ctx)
			}
			done <- err
		}()
	}
	for range 8 {
		assertNoErr(t, <-done)
	}
}
