package sdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/quirks"
)

var quirkTimeForms = map[string]quirks.TimeForm{
	"rfc3339": quirks.TimeRFC3339, "offset-and-z": quirks.TimeOffsetAndZ,
	"no-zone": quirks.TimeNoZone, "epoch": quirks.TimeEpochSeconds,
}

// TestQuirkyBackends runs the SDK's first calls against backends with
// every departure of internal/quirks (each timestamp form; 201 and 204
// answers; fractional numbers; Content-Length-only bodies; implicit
// create; no extensions): each succeeds and does its work.
func TestQuirkyBackends(t *testing.T) {
	t.Parallel()
	for name, form := range quirkTimeForms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bo := testOptions()
			q := quirks.All(form)
			bo.Quirks = &q
			c, _ := setupWith(t, bo)
			ctx := context.Background()
			sb := c.Sandbox("q")
			cr, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
			assertNoErr(t, err)
			if d := time.Until(cr.ExpiresAt); d < 50*time.Second || d > 65*time.Second || cr.Unparsed != nil {
				t.Errorf("create: expires in %s (unparsed %v), want about 1m", d, cr.Unparsed)
			}
			_, err = sb.UploadFiles(ctx, "", map[string][]byte{"a.txt": []byte("A")})
			assertNoErr(t, err)
			local := t.TempDir()
			mustWrite(t, filepath.Join(local, "sub/b.txt"), "B", 0o644)
			_, err = sb.UploadDir(ctx, "/workspace/dir", local)
			assertNoErr(t, err)
			res, err := sb.Exec(ctx, ExecRequest{Cmd: []string{"cat", "a.txt", "dir/sub/b.txt"}})
			assertNoErr(t, err)
			assertEq(t, "exec stdout", res.Stdout, "AB")
			if res.Duration <= 0 {
				t.Errorf("exec duration %s from a fractional durationMs", res.Duration)
			}
			res, err = sb.Shell(ctx, "echo out; exit 4", ShellOptions{})
			assertNoErr(t, err)
			assertEq(t, "shell exit", res.ExitCode, 4)
			var out bytes.Buffer
			res, err = sb.ExecStream(ctx, ExecRequest{Cmd: []string{"echo", "streamed"}}, StreamOptions{Stdout: &out})
			assertNoErr(t, err)
			assertEq(t, "stream stdout", out.String(), "streamed\n")
			assertEq(t, "stream exit", res.ExitCode, 0)
			res, err = sb.Exec(ctx, ExecRequest{Cmd: []string{"sleep", "3"}, Timeout: time.Second})
			assertNoErr(t, err)
			assertEq(t, "timed out", res.TimedOut, true)
			back := t.TempDir()
			assertNoErr(t, sb.DownloadTo(ctx, "/workspace/dir", back))
			assertFile(t, filepath.Join(back, "sub/b.txt"), "B", 0o644)
			tr, err := sb.Touch(ctx)
			assertNoErr(t, err)
			if !tr.ExpiresAt.IsZero() || tr.Unparsed != nil {
				t.Errorf("touch answered 204: %+v", tr)
			}
			assertNoErr(t, sb.Delete(ctx))

			_, err = sb.Get(ctx)
			assertIs(t, err, ErrUnsupported)
			if errors.Is(err, ErrNotFound) {
				t.Errorf("get on a plain v1 backend: %v matches ErrNotFound", err)
			}
			for _, err := range c.List(ctx, ListOptions{}) {
				assertIs(t, err, ErrUnsupported)
			}
			_, err = c.Info(ctx)
			assertIs(t, err, ErrUnsupported)
			assertIs(t, err, ErrNotFound)
		})
	}
}

// TestQuirkyTimestamps reads sandbox statuses from backends writing
// timestamps in every form, with extensions.
func TestQuirkyTimestamps(t *testing.T) {
	t.Parallel()
	for name, form := range quirkTimeForms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bo := testOptions()
			bo.Quirks = &quirks.Quirks{Time: form, FractionalNumbers: true}
			c, _ := setupWith(t, bo)
			ctx := context.Background()
			start := time.Now().Add(-time.Second)
			_, err := c.Create(ctx, "t", CreateOptions{TTL: time.Minute})
			assertNoErr(t, err)
			st, err := c.Get(ctx, "t")
			assertNoErr(t, err)
			for _, ts := range []time.Time{st.CreatedAt, st.LastActiveAt, st.ExpiresAt} {
				if ts.Before(start) || ts.After(start.Add(2*time.Minute)) {
					t.Errorf("status times %v %v %v, unparsed %v", st.CreatedAt, st.LastActiveAt, st.ExpiresAt, st.Unparsed)
				}
			}
			for s, err := range c.List(ctx, ListOptions{}) {
				assertNoErr(t, err)
				assertEq(t, "listed expiry", s.ExpiresAt.Equal(st.ExpiresAt), true)
			}
		})
	}
}

// TestUnsupported checks which answers make ErrUnsupported.
func TestUnsupported(t *testing.T) {
	t.Parallel()
	c, f := setup(t, WithoutRetry())
	ctx := context.Background()
	// A backend with sandboxes.get: a 404 is a missing sandbox.
	_, err := c.Get(ctx, "missing")
	assertIs(t, err, ErrNotFound)
	if errors.Is(err, ErrUnsupported) {
		t.Errorf("missing sandbox: %v matches ErrUnsupported", err)
	}
	// 405 and 501 say the operation is not there, whatever Info says.
	for _, status := range []int{http.StatusMethodNotAllowed, http.StatusNotImplemented} {
		failN(f, operation{method: "GET", path: "/v1/sandboxes/s"}, 1, status, nil, "")
		_, err = c.Get(ctx, "s")
		assertIs(t, err, ErrUnsupported)
		if !strings.Contains(err.Error(), "sandboxes.get") {
			t.Errorf("%d: message %q does not name the extension", status, err)
		}
	}
}

// TestWithDebug checks the debug log of a request and its answer.
func TestWithDebug(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	c, _ := setup(t, WithDebug(&log), WithToken("tok"))
	ctx := context.Background()
	_, err := c.Create(ctx, "d", CreateOptions{})
	assertNoErr(t, err)
	res, err := c.ExecStream(ctx, "d", ExecRequest{Cmd: []string{"echo", "hi"}}, StreamOptions{})
	assertNoErr(t, err)
	assertEq(t, "stdout", res.Stdout, "hi\n")
	rc, err := c.Download(ctx, "d", "")
	assertNoErr(t, err)
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	got := log.String()
	for _, want := range []string{"> PUT ", "/prefix/v1/sandboxes/d\n", "> Authorization: Bearer ***", "> Content-Length: 2", "> {}",
		"< 200 OK", `< {"expiresAt":`, "< (event stream, shown as it arrives)", "< event: exit", "(application/x-tar body not shown)"} {
		if !strings.Contains(got, want) {
			t.Errorf("debug log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "tok") {
		t.Errorf("the token leaked:\n%s", got)
	}
	if _, err := New("http://x", WithDebug(nil)); err == nil {
		t.Error("WithDebug(nil) accepted")
	}
}
