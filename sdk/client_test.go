package sdk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/membackend"
)

func assertNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func assertIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v: want errors.Is(%v)", err, target)
	}
}

func assertEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name string
		url  string
		opts []Option
	}{
		{"parse", "http://a b/%zz", nil},
		{"scheme", "ftp://host", nil},
		{"no host", "http://", nil},
		{"query", "http://host/?q=1", nil},
		{"fragment", "http://host/#f", nil},
		{"nil client", "http://host", []Option{WithHTTPClient(nil)}},
		{"nil transport", "http://host", []Option{WithTransport(nil)}},
		{"nil handler", "http://host", []Option{WithHandler(nil)}},
		{"negative timeout", "http://host", []Option{WithTimeout(-1)}},
		{"token newline", "http://host", []Option{WithToken("a\nb")}},
		{"ua newline", "http://host", []Option{WithUserAgent("a\rb")}},
	}
	for _, tc := range bad {
		if _, err := New(tc.url, tc.opts...); err == nil {
			t.Errorf("%s: New(%q) succeeded", tc.name, tc.url)
		}
	}
	// A base URL without a scheme says what to write instead.
	if _, err := New("127.0.0.1:8080"); err == nil || !strings.Contains(err.Error(), `has no scheme: want http:// or https://, e.g. "http://127.0.0.1:8080"`) {
		t.Errorf("New without a scheme: %v", err)
	}
	c, err := New("http://host/prefix/", WithHTTPClient(&http.Client{}), WithTransport(http.DefaultTransport), WithoutRetry())
	assertNoErr(t, err)
	assertEq(t, "BaseURL", c.BaseURL(), "http://host/prefix/")
	assertEq(t, "MaxAttempts", c.retry.MaxAttempts, 1)
}

// lifecycle runs the main workflow against a client.
func lifecycle(t *testing.T, c *Client, f *testbackend.Backend) {
	ctx := context.Background()
	assertNoErr(t, c.Health(ctx))

	info, err := c.Info(ctx)
	assertNoErr(t, err)
	assertEq(t, "backend", info.Backend.Name, membackend.Name)
	assertEq(t, "heartbeat", info.Limits.StreamHeartbeat, time.Second)
	assertEq(t, "isolation", info.Isolation.Tier, "none")
	ok, err := c.Supports(ctx, ExtSandboxesList)
	assertNoErr(t, err)
	assertEq(t, "supports list", ok, true)

	sb := c.Sandbox("s1")
	assertEq(t, "ID", sb.ID(), "s1")
	assertEq(t, "Client", sb.Client(), c)
	cr, err := sb.Create(ctx, CreateOptions{TTL: 90 * time.Second, Image: "default", CPU: "1", Memory: "1Gi", Storage: "2Gi"})
	assertNoErr(t, err)
	assertEq(t, "podName", cr.PodName, "mem-s1")
	if d := time.Until(cr.ExpiresAt); d < 80*time.Second || d > 95*time.Second {
		t.Errorf("expiresAt in %s, want about 90s", d)
	}
	assertNoErr(t, sb.WaitReady(ctx, WaitOptions{}))

	st, err := sb.Get(ctx)
	assertNoErr(t, err)
	assertEq(t, "state", st.State, StateReady)
	assertEq(t, "ttl", st.TTL, 90*time.Second)
	assertEq(t, "memory", st.Limits.Memory, "1Gi")

	tr, err := sb.Touch(ctx)
	assertNoErr(t, err)
	if d := time.Until(tr.ExpiresAt); d < 80*time.Second || d > 95*time.Second {
		t.Errorf("touch expiresAt in %s, want about 90s", d)
	}

	res, err := sb.Exec(ctx, ExecRequest{Cmd: []string{"echo", "hello"}})
	assertNoErr(t, err)
	assertEq(t, "stdout", res.Stdout, "hello\n")
	assertEq(t, "exit", res.ExitCode, 0)

	res, err = sb.Shell(ctx, "echo $X; echo oops >&2; exit 3", ShellOptions{Shell: "bash", Env: map[string]string{"X": "y"}})
	assertNoErr(t, err)
	assertEq(t, "shell stdout", res.Stdout, "y\n")
	assertEq(t, "shell stderr", res.Stderr, "oops\n")
	assertEq(t, "shell exit", res.ExitCode, 3)

	res, err = sb.Exec(ctx, ExecRequest{Cmd: []string{"sleep", "2"}, Timeout: time.Second})
	assertNoErr(t, err)
	assertEq(t, "timed out", res.TimedOut, true)
	assertEq(t, "exit", res.ExitCode, 124)

	var out, errOut bytes.Buffer
	var chunks int
	res, err = sb.ExecStream(ctx, ExecRequest{Cmd: []string{"sh", "-c", "echo a; sleep 0.3; echo b; echo c >&2"}},
		StreamOptions{Stdout: &out, Stderr: &errOut, OnStdout: func([]byte) { chunks++ }})
	assertNoErr(t, err)
	assertEq(t, "stream stdout", out.String(), "a\nb\n")
	assertEq(t, "stream stderr", errOut.String(), "c\n")
	assertEq(t, "chunks", chunks, 2)
	assertEq(t, "result stdout", res.Stdout, "a\nb\n")

	_, err = sb.UploadFiles(ctx, "", map[string][]byte{"dir/a.txt": []byte("A"), "b.txt": []byte("B")})
	assertNoErr(t, err)
	res, err = sb.Exec(ctx, ExecRequest{Cmd: []string{"cat", "dir/a.txt", "b.txt"}})
	assertNoErr(t, err)
	assertEq(t, "cat", res.Stdout, "AB")

	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "x/y/z.txt"), "Z", 0o640)
	assertNoErr(t, os.MkdirAll(filepath.Join(local, "empty"), 0o700))
	assertNoErr(t, os.Symlink("x/y/z.txt", filepath.Join(local, "link")))
	_, err = sb.UploadDir(ctx, "/workspace/up", local)
	assertNoErr(t, err)

	var buf bytes.Buffer
	assertNoErr(t, WriteTar(&buf, filepath.Join(local, "x/y/z.txt")))
	_, err = sb.Upload(ctx, "/workspace/single", &buf)
	assertNoErr(t, err)

	back := t.TempDir()
	assertNoErr(t, sb.DownloadTo(ctx, "/workspace", back))
	assertFile(t, filepath.Join(back, "up/x/y/z.txt"), "Z", 0o640)
	assertFile(t, filepath.Join(back, "dir/a.txt"), "A", 0o644)
	assertFile(t, filepath.Join(back, "single/z.txt"), "Z", 0o640)
	if fi, err := os.Stat(filepath.Join(back, "up/empty")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("empty dir: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(back, "up/link")); err != nil || l != "x/y/z.txt" {
		t.Errorf("symlink: %q %v", l, err)
	}

	rc, err := sb.Download(ctx, "/workspace/b.txt")
	assertNoErr(t, err)
	names := tarNames(t, rc)
	assertEq(t, "single file download", strings.Join(names, ","), "b.txt")

	_, err = c.Create(ctx, "s2", CreateOptions{})
	assertNoErr(t, err)
	_, err = c.Create(ctx, "s3", CreateOptions{})
	assertNoErr(t, err)
	var ids []string
	for s, err := range c.List(ctx, ListOptions{PageSize: 2}) {
		assertNoErr(t, err)
		ids = append(ids, s.SessionID)
	}
	assertEq(t, "list", strings.Join(ids, ","), "s1,s2,s3")
	for range c.List(ctx, ListOptions{PageSize: 1}) {
		break // stopping early must not panic
	}
	if got := f.Count("GET", "/v1/sandboxes"); got != 3 {
		t.Errorf("list made %d requests, want 3 (pages of 2, plus one page of 1)", got)
	}

	assertNoErr(t, sb.Delete(ctx))
	assertIs(t, sb.Delete(ctx), ErrNotFound)
	_, err = sb.Get(ctx)
	assertIs(t, err, ErrNotFound)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("socket", func(t *testing.T) {
		t.Parallel()
		c, f := setup(t)
		lifecycle(t, c, f)
	})
	t.Run("in-process", func(t *testing.T) {
		t.Parallel()
		c, f := setupInProcess(t)
		lifecycle(t, c, f)
	})
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	assertNoErr(t, os.MkdirAll(filepath.Dir(p), 0o755))
	assertNoErr(t, os.WriteFile(p, []byte(content), mode))
	assertNoErr(t, os.Chmod(p, mode))
}

func assertFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	assertEq(t, p, string(data), content)
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
}

func tarNames(t *testing.T, rc io.ReadCloser) []string {
	t.Helper()
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	assertNoErr(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		assertNoErr(t, err)
		names = append(names, h.Name)
	}
}
