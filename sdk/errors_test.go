package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
)

// operation is one SDK call for table tests.
type operation struct {
	name       string // operationId
	method     string
	path       string // after basePath
	idempotent bool
	call       func(ctx context.Context, c *Client) error
	noReplay   bool // the request body cannot be sent twice
}

func operations(t *testing.T) []operation {
	dir := t.TempDir()
	mustWrite(t, dir+"/f.txt", "data", 0o644)
	return []operation{
		{"healthz", "GET", "/healthz", true, func(ctx context.Context, c *Client) error { return c.Health(ctx) }, false},
		{"getInfo", "GET", "/v1/info", true, func(ctx context.Context, c *Client) error { _, err := c.Info(ctx); return err }, false},
		{"listSandboxes", "GET", "/v1/sandboxes", true, func(ctx context.Context, c *Client) error {
			for _, err := range c.List(ctx, ListOptions{}) {
				return err
			}
			return nil
		}, false},
		{"createSandbox", "PUT", "/v1/sandboxes/s", true, func(ctx context.Context, c *Client) error {
			_, err := c.Create(ctx, "s", CreateOptions{})
			return err
		}, false},
		{"getSandbox", "GET", "/v1/sandboxes/s", true, func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, "s"); return err }, false},
		{"deleteSandbox", "DELETE", "/v1/sandboxes/s", true, func(ctx context.Context, c *Client) error { return c.Delete(ctx, "s") }, false},
		{"touchSandbox", "POST", "/v1/sandboxes/s/touch", true, func(ctx context.Context, c *Client) error { _, err := c.Touch(ctx, "s"); return err }, false},
		{"execInSandbox", "POST", "/v1/sandboxes/s/exec", false, func(ctx context.Context, c *Client) error {
			_, err := c.Exec(ctx, "s", ExecRequest{Cmd: []string{"true"}})
			return err
		}, false},
		{"execInSandboxStream", "POST", "/v1/sandboxes/s/exec/stream", false, func(ctx context.Context, c *Client) error {
			_, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"true"}}, StreamOptions{})
			return err
		}, false},
		{"downloadFiles", "GET", "/v1/sandboxes/s/files/download", true, func(ctx context.Context, c *Client) error {
			rc, err := c.Download(ctx, "s", "")
			if err == nil {
				rc.Close()
			}
			return err
		}, false},
		{"uploadFiles", "POST", "/v1/sandboxes/s/files/upload", false, func(ctx context.Context, c *Client) error {
			_, err := c.UploadFiles(ctx, "s", "", map[string][]byte{"a": []byte("b")})
			return err
		}, false},
		{"uploadFiles", "POST", "/v1/sandboxes/s/files/upload", false, func(ctx context.Context, c *Client) error {
			_, err := c.UploadDir(ctx, "s", "/workspace", dir)
			return err
		}, true},
		{"uploadFiles", "POST", "/v1/sandboxes/s/files/upload", false, func(ctx context.Context, c *Client) error {
			_, err := c.Upload(ctx, "s", "", io.MultiReader(strings.NewReader("not a tar")))
			return err
		}, true},
	}
}

// failN makes the fake answer status to the first n requests of op.
func failN(f *testbackend.Backend, op operation, n int, status int, header http.Header, body string) *atomic.Int32 {
	var seen atomic.Int32
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != op.method || r.URL.Path != basePath+op.path {
			return false
		}
		if int(seen.Add(1)) > n {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("X-Request-Id", "rid-7")
		if body != "" && body[0] == '{' {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
		return true
	})
	return &seen
}

func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	statuses := []struct {
		status   int
		sentinel error
	}{
		{400, ErrInvalidArgument}, {401, ErrUnauthorized}, {404, ErrNotFound}, {409, ErrConflict},
		{413, ErrTooLarge}, {500, ErrInternal}, {502, ErrUnavailable}, {503, ErrUnavailable},
		{504, ErrUnavailable}, {418, nil},
	}
	ctx := context.Background()
	for _, op := range operations(t) {
		c, f := setup(t)
		for _, st := range statuses {
			seen := failN(f, op, 100, st.status, nil, `{"error":"boom"}`)
			err := op.call(ctx, c)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("%s %d: error %v is not an *APIError", op.name, st.status, err)
			}
			if apiErr.StatusCode != st.status || apiErr.Message != "boom" || apiErr.RequestID != "rid-7" || apiErr.Operation != op.name {
				t.Errorf("%s %d: %#v", op.name, st.status, apiErr)
			}
			for _, s := range []error{ErrInvalidArgument, ErrUnauthorized, ErrNotFound, ErrConflict, ErrTooLarge, ErrInternal, ErrUnavailable} {
				if errors.Is(err, s) != (s == st.sentinel) {
					t.Errorf("%s %d: errors.Is(%v) = %v", op.name, st.status, s, errors.Is(err, s))
				}
			}
			want := int32(1)
			if op.idempotent && retryableStatus(st.status) {
				want = 3
			}
			if got := seen.Load(); got != want {
				t.Errorf("%s %d: %d attempts, want %d", op.name, st.status, got, want)
			}
			if !strings.Contains(err.Error(), op.name) || !strings.Contains(err.Error(), "rid-7") {
				t.Errorf("%s: message %q lacks the operation or request id", op.name, err)
			}
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, op := range operations(t) {
		if op.name == "getInfo" || op.name == "healthz" || op.name == "listSandboxes" {
			continue
		}
		c, f := setup(t, WithRetry(RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, RetryNonIdempotent: true}))
		_, err := c.Create(ctx, "s", CreateOptions{})
		assertNoErr(t, err)
		seen := failN(f, op, 2, http.StatusServiceUnavailable, nil, "busy")
		err = op.call(ctx, c)
		if op.noReplay {
			assertIs(t, err, ErrUnavailable)
			assertEq(t, op.name+" attempts", seen.Load(), int32(1))
			continue
		}
		if err != nil {
			t.Errorf("%s: %v after %d attempts", op.name, err, seen.Load())
		}
		assertEq(t, op.name+" attempts", seen.Load(), int32(3))
	}
}

func TestUploadSeekerRetried(t *testing.T) {
	t.Parallel()
	c, f := setup(t, WithRetry(RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, RetryNonIdempotent: true}))
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	var buf bytes.Buffer
	assertNoErr(t, writeFilesTarGz(&buf, map[string][]byte{"r.txt": []byte("retried")}))
	seen := failN(f, operation{method: "POST", path: "/v1/sandboxes/s/files/upload"}, 2, 502, nil, "")
	_, err = c.Upload(ctx, "s", "", bytes.NewReader(buf.Bytes()))
	assertNoErr(t, err)
	assertEq(t, "attempts", seen.Load(), int32(3))
	res, err := c.Exec(ctx, "s", ExecRequest{Cmd: []string{"cat", "r.txt"}})
	assertNoErr(t, err)
	assertEq(t, "content", res.Stdout, "retried")
}

func TestErrorBodies(t *testing.T) {
	t.Parallel()
	c, f := setup(t, WithoutRetry())
	ctx := context.Background()
	op := operation{method: "GET", path: "/v1/sandboxes/s"}
	cases := []struct {
		body, want string
	}{
		{"plain text\n", "plain text"},
		{"", ""},
		{`{"other":1}`, `{"other":1}`},
	}
	for _, tc := range cases {
		failN(f, op, 1, 404, nil, tc.body)
		_, err := c.Get(ctx, "s")
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Message != tc.want {
			t.Errorf("body %q: %v", tc.body, err)
		}
	}
	failN(f, op, 1, 500, nil, strings.Repeat("x", 1<<20))
	_, err := c.Get(ctx, "s")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || len(apiErr.Message) != maxErrorBody {
		t.Errorf("a 1 MiB body gave a message of %d bytes, want %d", len(apiErr.Message), maxErrorBody)
	}
	if (&APIError{StatusCode: 500}).Error() != "nox: 500 Internal Server Error" {
		t.Errorf("minimal message: %q", (&APIError{StatusCode: 500}).Error())
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	op := operation{method: "PUT", path: "/v1/sandboxes/s"}
	seen := failN(f, op, 1, 503, http.Header{"Retry-After": {"1"}}, `{"error":"later"}`)
	start := time.Now()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, want >= 1s (Retry-After)", d)
	}
	assertEq(t, "attempts", seen.Load(), int32(2))

	// A Retry-After beyond the context's deadline ends the call at once.
	failN(f, op, 5, 503, http.Header{"Retry-After": {"30"}}, `{"error":"later"}`)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start = time.Now()
	_, err = c.Create(tctx, "s", CreateOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != 30*time.Second {
		t.Fatalf("error %v, want the 503 with RetryAfter 30s", err)
	}
	if d := time.Since(start); d > 5*time.Second { // waiting would take 10s
		t.Errorf("gave up after %s", d)
	}

	// An HTTP date works too.
	h := http.Header{"Retry-After": {time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)}}
	if d := retryAfter(h); d < time.Second || d > 3*time.Second {
		t.Errorf("retryAfter(date) = %s", d)
	}
	for _, v := range []string{"-1", "soon", ""} {
		if d := retryAfter(http.Header{"Retry-After": {v}}); d != 0 {
			t.Errorf("retryAfter(%q) = %s", v, d)
		}
	}
}

// flakyTransport fails the first n round trips with a connection error.
type flakyTransport struct {
	n    atomic.Int32
	fail int32
	next http.RoundTripper
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(1) <= f.fail {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("connection refused (simulated)")
	}
	return f.next.RoundTrip(r)
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	f := newTestBackend(t)
	ft := &flakyTransport{fail: 2, next: HandlerTransport(f)}
	c, err := New("http://nox.invalid"+basePath, WithTransport(ft), WithRetry(testPolicy()))
	assertNoErr(t, err)
	ctx := context.Background()
	_, err = c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	assertEq(t, "round trips", ft.n.Load(), int32(3))

	ft.n.Store(0)
	_, err = c.Exec(ctx, "s", ExecRequest{Cmd: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "simulated") || !strings.Contains(err.Error(), "execInSandbox") {
		t.Fatalf("exec error %v", err)
	}
	assertEq(t, "exec round trips", ft.n.Load(), int32(1))

	// All attempts failing returns the last transport error.
	ft.n.Store(0)
	ft.fail = 10
	_, err = c.Touch(ctx, "s")
	if err == nil || !strings.Contains(err.Error(), "simulated") {
		t.Fatalf("touch error %v", err)
	}
	assertEq(t, "touch round trips", ft.n.Load(), int32(3))
}

func TestContextErrors(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, op := range operations(t) {
		err := op.call(ctx, c)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", op.name, err)
		}
	}
	var nilCtx context.Context
	if _, err := c.Get(nilCtx, "s"); err == nil {
		t.Error("nil context accepted")
	}
	// Cancelling while waiting for a retry.
	failN(f, operation{method: "PUT", path: "/v1/sandboxes/s"}, 5, 503, http.Header{"Retry-After": {"10"}}, "")
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertIs(t, err, context.Canceled)
	// A cancel cause is reported, and the error still matches ctx.Err().
	errShutdown := errors.New("shutting down")
	cctx, cancelCause := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancelCause(errShutdown) })
	_, err = c.Create(cctx, "s", CreateOptions{})
	assertIs(t, err, context.Canceled)
	assertIs(t, err, errShutdown)
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	// Generous enough that Create passes on a loaded machine.
	c, f := setup(t, WithTimeout(time.Second), WithoutRetry())
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)

	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/touch"):
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return true
		case strings.HasSuffix(r.URL.Path, "/download"):
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond) // longer than the timeout
			var buf bytes.Buffer
			_ = writeFilesTarGz(&buf, map[string][]byte{"late.txt": []byte("late")})
			w.Write(buf.Bytes())
			return true
		}
		return false
	})
	start := time.Now()
	_, err = c.Touch(ctx, "s")
	assertIs(t, err, context.DeadlineExceeded)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("timeout took %s", d)
	}
	// The command's timeout is added for exec.
	res, err := c.Exec(ctx, "s", ExecRequest{Cmd: []string{"sleep", "1.5"}, Timeout: 3 * time.Second})
	assertNoErr(t, err)
	assertEq(t, "exit", res.ExitCode, 0)
	// A download body may take longer than the timeout.
	rc, err := c.Download(ctx, "s", "")
	assertNoErr(t, err)
	assertEq(t, "names", strings.Join(tarNames(t, rc), ","), "late.txt")
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	withToken := testOptions()
	withToken.Server.Token = "secret"
	c, f := setupWith(t, withToken, WithToken("secret"), WithUserAgent("test-agent/1"))
	ctx := context.Background()
	assertNoErr(t, c.Health(ctx))
	_, err := c.Info(ctx)
	assertNoErr(t, err)
	type seen struct{ auth, ua string }
	got := map[string]seen{}
	for _, r := range f.Requests() {
		got[r.Path] = seen{r.Header.Get("Authorization"), r.Header.Get("User-Agent")}
	}
	assertEq(t, "healthz auth", got[basePath+"/healthz"].auth, "")
	assertEq(t, "info auth", got[basePath+"/v1/info"].auth, "Bearer secret")
	assertEq(t, "ua", got[basePath+"/v1/info"].ua, "test-agent/1")

	anon, f2 := setupWith(t, withToken)
	_, err = anon.Info(ctx)
	assertIs(t, err, ErrUnauthorized)
	f2.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if ua := r.Header.Get("User-Agent"); ua != DefaultUserAgent {
			t.Errorf("default user agent %q", ua)
		}
		return false
	})
	assertNoErr(t, anon.Health(ctx))
}

func TestHealth(t *testing.T) {
	t.Parallel()
	c, f := setup(t, WithoutRetry())
	ctx := context.Background()
	for _, tc := range []struct {
		status   int
		body     string
		sentinel error
	}{
		{200, "not ok", nil},
		{503, "sandbox runtime unavailable", ErrUnavailable},
	} {
		f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
			return true
		})
		err := c.Health(ctx)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, tc.body) {
			t.Errorf("%d %q: %v", tc.status, tc.body, err)
		}
		if tc.sentinel != nil {
			assertIs(t, err, tc.sentinel)
		}
	}
}

func TestClientSideValidation(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["create"] = c.Create(ctx, "", CreateOptions{})
	_, checks["exec empty"] = c.Exec(ctx, "s", ExecRequest{})
	_, checks["stream empty"] = c.ExecStream(ctx, "s", ExecRequest{}, StreamOptions{})
	_, checks["shell"] = c.Shell(ctx, "s", "true", ShellOptions{Shell: "zsh"})
	_, checks["upload nil"] = c.Upload(ctx, "s", "", nil)
	_, checks["upload files abs"] = c.UploadFiles(ctx, "s", "", map[string][]byte{"/etc/x": nil})
	_, checks["upload files dotdot"] = c.UploadFiles(ctx, "s", "", map[string][]byte{"a/../../x": nil})
	_, checks["upload files dot"] = c.UploadFiles(ctx, "s", "", map[string][]byte{"./": nil})
	checks["delete"] = c.Delete(ctx, "")
	_, checks["touch"] = c.Touch(ctx, "")
	_, checks["get"] = c.Get(ctx, "")
	_, checks["download"] = c.Download(ctx, "", "")
	_, checks["stream id"] = c.ExecStream(ctx, "", ExecRequest{Cmd: []string{"x"}}, StreamOptions{})
	_, checks["exec id"] = c.Exec(ctx, "", ExecRequest{Cmd: []string{"x"}})
	for name, err := range checks {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	_, err := c.UploadDir(ctx, "s", "", "/nonexistent/dir")
	if err == nil {
		t.Error("UploadDir of a missing directory succeeded")
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid calls", n)
	}
}

func TestOptionalBodies(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var emptyTouch atomic.Bool
	emptyTouch.Store(true)
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/touch") && emptyTouch.Load():
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/touch"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"message":"TTL extended","expiresAt":%q}`, exp.Format(time.RFC3339))
		case strings.HasSuffix(r.URL.Path, "/upload"):
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"message":"files uploaded","files":3,"bytes":2048}`)
		case r.URL.Path == basePath+"/v1/sandboxes/bad":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"podName":"p","expiresAt":"tomorrow"}`)
		default:
			return false
		}
		return true
	})
	tr, err := c.Touch(ctx, "s")
	assertNoErr(t, err)
	if !tr.ExpiresAt.IsZero() {
		t.Errorf("touch expiresAt %v from an empty body", tr.ExpiresAt)
	}
	emptyTouch.Store(false)
	tr, err = c.Touch(ctx, "s")
	assertNoErr(t, err)
	assertEq(t, "expiresAt", tr.ExpiresAt, exp)
	assertEq(t, "message", tr.Message, "TTL extended")
	ur, err := c.UploadFiles(ctx, "s", "", map[string][]byte{"a": nil})
	assertNoErr(t, err)
	assertEq(t, "files", ur.Files, int64(3))
	assertEq(t, "bytes", ur.Bytes, int64(2048))
	// A timestamp in no known form does not fail a create that happened:
	// it is zero, and its text is kept.
	cr, err := c.Create(ctx, "bad", CreateOptions{})
	assertNoErr(t, err)
	assertEq(t, "podName", cr.PodName, "p")
	assertEq(t, "zero expiresAt", cr.ExpiresAt.IsZero(), true)
	assertEq(t, "unparsed", fmt.Sprint(cr.Unparsed), `map[expiresAt:"tomorrow"]`)
}
