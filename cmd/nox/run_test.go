package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

func TestNormalizeArgs(t *testing.T) {
	t.Parallel()
	a := &app{argLimits: map[string]int{"exec": 2, "start": 2}}
	cl := a.newCLI()
	for _, tc := range []struct{ in, want string }{
		{"create demo --wait --ttl 60", "create --wait --ttl 60 -- demo"},
		{"create demo --json", "--json create -- demo"},
		{"--local create demo --image=x", "--local create --image=x -- demo"},
		{"create demo --local-test", "--local-test create -- demo"},
		{"exec demo ls -la", "exec -- demo ls -la"},
		{"exec demo --workdir /tmp -- ls -la", "exec --workdir /tmp -- demo ls -la"},
		{"exec --env A=1 demo sh -c --json", "exec --env A=1 -- demo sh -c --json"},
		{"sh demo 'echo -n x' --shell bash", "sh --shell bash -- demo 'echo -n x'"},
		{"serve --isolation none-unsafe --data-dir d --json", "--json serve --isolation none-unsafe --data-dir d"},
		{"exec demo --bogus x", "exec --bogus -- demo x"},
		{"create", "create"},
		{"nosuch a --json", "nosuch a --json"},
		{"exec demo --generate-bash-completion", "exec demo --generate-bash-completion"},
		{"start demo --pty sh -i", "start --pty -- demo sh -i"},
		{"start demo --tag web -- python3 -m http.server --bind x", "start --tag web -- demo python3 -m http.server --bind x"},
		{"logs demo 3 -f --json", "--json logs -f -- demo 3"},
	} {
		got := a.normalizeArgs(cl, append([]string{"nox"}, splitArgs(tc.in)...))
		if want := append([]string{"nox"}, splitArgs(tc.want)...); !slices.Equal(got, want) {
			t.Errorf("normalizeArgs(%s)\n got %q\nwant %q", tc.in, got, want)
		}
	}
}

// splitArgs splits on spaces, keeping 'quoted' runs together.
func splitArgs(s string) []string {
	var out []string
	for i, part := range strings.Split(s, "'") {
		if i%2 == 1 {
			out = append(out, part)
			continue
		}
		out = append(out, strings.Fields(part)...)
	}
	return out
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "[::]:8080", "192.0.2.1:8080", "example.com:80"} {
		r := nox(t, "", "--data-dir", t.TempDir(), "serve", "--listen", addr)
		if r.code != exitUsage {
			t.Errorf("serve --listen %s: exit %d, want %d", addr, r.code, exitUsage)
		}
		if !strings.Contains(r.stderr, "refusing to listen") || !strings.Contains(r.stderr, "--token") {
			t.Errorf("serve --listen %s: stderr %q does not explain the refusal", addr, r.stderr)
		}
	}
	// The global --token (before the command) protects serve too.
	if r := nox(t, "", "--data-dir", t.TempDir(), "--token", "s3cret", "serve", "--listen", "0.0.0.0:0", "--isolation", "bogus"); strings.Contains(r.stderr, "refusing") {
		t.Errorf("serve ignored the global --token: %s", r.stderr)
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if err := checkListen(addr, ""); err != nil {
			t.Errorf("checkListen(%s) = %v, want nil", addr, err)
		}
	}
	if err := checkListen("0.0.0.0:0", "secret"); err != nil {
		t.Errorf("checkListen with a token = %v, want nil", err)
	}
}

func TestDescribeAPIErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{onSandbox("demo", &sdk.APIError{StatusCode: 404, Message: "no such sandbox", Operation: "getSandbox"}),
			`sandbox "demo" not found (404)`},
		{onSandbox("demo", fmt.Errorf("create: %w", &sdk.APIError{StatusCode: 400, Message: "ttlSeconds too large"})),
			`sandbox "demo": invalid request (400): ttlSeconds too large`},
		{onSandbox("demo", &sdk.APIError{StatusCode: 401, Message: "missing token"}),
			`sandbox "demo": unauthorized (401): missing token (check --token or NOXRUNNER_TOKEN)`},
		{&sdk.APIError{StatusCode: 503, Message: "busy", RequestID: "r1"},
			`the backend: backend unavailable (503): busy [request id r1] (try again later)`},
		{onSandbox("demo", &sdk.APIError{StatusCode: 418}),
			`sandbox "demo": i'm a teapot (418): -`},
		{onSandbox("d", fmt.Errorf("download: %w", &sdk.APIError{StatusCode: 404, Message: "/workspace/x: no such file", Operation: "downloadFiles"})),
			`sandbox "d": /workspace/x: no such file (404)`},
		{onSandbox("d", fmt.Errorf("download: %w", &sdk.APIError{StatusCode: 404, Message: `sandbox "d" not found`, Operation: "downloadFiles"})),
			`sandbox "d" not found (404)`},
	} {
		if got := describe(ctx, tc.err); got != tc.want {
			t.Errorf("describe(%v)\n got %s\nwant %s", tc.err, got, tc.want)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if got := describe(cancelled, fmt.Errorf("x: %w", context.Canceled)); got != "interrupted" {
		t.Errorf("describe(cancelled) = %q, want interrupted", got)
	}
}

func TestExitCodes(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	base := []string{"--base-url", url}
	if r := nox(t, "", append(base, "create", "codes")...); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"exec", "codes", "--", "sh", "-c", "exit 9"}, 9},
		{[]string{"sh", "codes", "exit 200"}, 200},
		{[]string{"exec", "codes", "true"}, 0},
		{[]string{"exec", "codes", "--ignore-exit-code", "false"}, 0},
		{[]string{"exec", "codes"}, exitUsage},
		{[]string{"get", "no-such"}, exitError},
		{[]string{"frobnicate"}, exitUsage},
	} {
		r := nox(t, "", append(base, tc.args...)...)
		if r.code != tc.want {
			t.Errorf("nox %s: exit %d, want %d (stderr %q)", strings.Join(tc.args, " "), r.code, tc.want, r.stderr)
		}
		if strings.Contains(r.stderr, "goroutine ") {
			t.Errorf("nox %s: stack trace on stderr", strings.Join(tc.args, " "))
		}
	}
}

func TestDownloadLeavesNoPartialFile(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	dir := t.TempDir()
	out := filepath.Join(dir, "ws.tar.gz")
	r := nox(t, "", "--base-url", url, "download", "nope", "--output", out)
	if r.code != exitError {
		t.Fatalf("exit %d, want %d", r.code, exitError)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("download of a missing sandbox left %v behind", entries)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := nox(t, "", "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "nox") {
			t.Errorf("completion %s: exit %d, stdout %q", sh, r.code, r.stdout)
		}
	}
}

func TestErrorsAreNotUsageErrors(t *testing.T) {
	t.Parallel()
	var ue *usageError
	if errors.As(onSandbox("x", errors.New("boom")), &ue) {
		t.Fatal("an API error is classified as a usage error")
	}
}

func TestInterruptedExitCode(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errb strings.Builder
	code := run(ctx, []string{"nox", "--base-url", url, "health"}, strings.NewReader(""), &out, &errb)
	if code != exitInterrupted || !strings.Contains(errb.String(), "nox: interrupted") {
		t.Errorf("cancelled health: exit %d, stderr %q; want %d and an interrupted line", code, errb.String(), exitInterrupted)
	}
}

func TestUploadReportsArchiveErrors(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	ctx := context.Background()
	cl, err := sdk.New(url)
	if err != nil {
		t.Fatal(err)
	}
	sb := cl.Sandbox("up")
	if _, err := sb.Create(ctx, sdk.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: io.Discard, stderr: io.Discard}
	broken := errors.New("disk on fire")
	_, _, err = a.upload(ctx, sb, "", func(w io.Writer) error {
		if _, err := w.Write([]byte{0x1f, 0x8b}); err != nil {
			return err
		}
		return broken
	})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "archiving") {
		t.Errorf("upload with a failing archive writer: %v, want the archiving error", err)
	}
	_, n, err := a.upload(ctx, sb, "", func(w io.Writer) error {
		return writeFilesTarGz(w, []string{"run_test.go"})
	})
	if err != nil || n == 0 {
		t.Errorf("upload: %d bytes, %v", n, err)
	}
}

// TestMessagesSaidOnce checks that each error line says what happened and
// what to do once: no second "nox:" from the SDK's own prefix, one pointer
// to the help, the data dir's lock explained once. Not parallel: see nox.
func TestMessagesSaidOnce(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"sdk prefix", `sandbox "p1": create: nox: createSandbox: timed out after 2m0s: context deadline exceeded`,
			`sandbox "p1": create: createSandbox: timed out after 2m0s: context deadline exceeded`},
		{"leading sdk prefix", `nox: base URL "x": no host`, `base URL "x": no host`},
		{"nothing to drop", `sandbox "nox: x" not found (404)`, `sandbox "nox: x" not found (404)`},
	} {
		if got := withoutSDKPrefix(tc.msg); got != tc.want {
			t.Errorf("%s: withoutSDKPrefix(%q) = %q, want %q", tc.name, tc.msg, got, tc.want)
		}
	}
	// An API call that times out: one "nox:" on the line.
	stalled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stalled)
	r := nox(t, "", "--base-url", srv.URL, "--request-timeout", "200ms", "create", "p1")
	if r.code != exitError || strings.Count(r.stderr, "nox:") != 1 || !strings.Contains(r.stderr, "--request-timeout") {
		t.Errorf("timed-out call: exit %d, stderr %q; want 1, one nox: prefix and a pointer to --request-timeout", r.code, r.stderr)
	}
	// A base URL without a scheme suggests one.
	r = nox(t, "", "--base-url", "127.0.0.1:18080", "ls")
	if want := "nox: --base-url \"127.0.0.1:18080\" has no scheme: did you mean \"http://127.0.0.1:18080\"?\nRun 'nox --help' for usage.\n"; r.code != exitUsage || r.stderr != want {
		t.Errorf("base URL without a scheme: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	// A data dir another process holds is explained once.
	dir := t.TempDir()
	b, err := localbackend.New(localbackend.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Skipf("local backend unavailable: %v", err)
	}
	defer b.Close()
	r = nox(t, "", "--local", "--data-dir", dir, "ls")
	if r.code != exitError || strings.Count(r.stderr, dir) != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--base-url") {
		t.Errorf("locked data dir: exit %d, stderr %q; want one line naming the dir once and what to do", r.code, r.stderr)
	}
}
