package sdk_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// localClients returns clients of the real local backend over a socket and
// in process, or skips when the backend cannot start here.
func localClients(t *testing.T) map[string]*sdk.Client {
	t.Helper()
	b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Skipf("local backend unavailable: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	socket, err := sdk.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	inproc, err := sdk.New("http://nox.invalid", sdk.WithHandler(b.Handler()))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*sdk.Client{"socket": socket, "in-process": inproc}
}

func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestLocalBackend runs the SDK against the real local backend: a directory
// round trip keeps modes, nesting, empty directories and symbolic links; a
// hostile upload is refused; output streams; errors map to sentinels.
func TestLocalBackend(t *testing.T) {
	for name, c := range localClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			sb := c.Sandbox("sdk-" + strings.ReplaceAll(name, "-", ""))
			if _, err := sb.Create(ctx, sdk.CreateOptions{TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			defer sb.Delete(ctx)
			if err := sb.WaitReady(ctx, sdk.WaitOptions{}); err != nil {
				t.Fatal(err)
			}

			src := t.TempDir()
			os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
			os.MkdirAll(filepath.Join(src, "empty"), 0o700)
			os.WriteFile(filepath.Join(src, "a/b/run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755)
			os.WriteFile(filepath.Join(src, "a/private"), []byte("p"), 0o600)
			os.Symlink("b/run.sh", filepath.Join(src, "a/link"))
			if _, err := sb.UploadDir(ctx, "/workspace/tree", src); err != nil {
				t.Fatal(err)
			}
			res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"./a/link"}, Workdir: "/workspace/tree"})
			if err != nil || res.Stdout != "run\n" {
				t.Fatalf("run uploaded script: %+v %v", res, err)
			}
			dst := t.TempDir()
			if err := sb.DownloadTo(ctx, "/workspace/tree", dst); err != nil {
				t.Fatal(err)
			}
			if a, b := tree(t, src), tree(t, dst); a != b {
				t.Errorf("round trip differs:\n%s\n---\n%s", a, b)
			}

			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			tw := tar.NewWriter(gz)
			tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
			tw.Close()
			gz.Close()
			_, err = sb.Upload(ctx, "", &buf)
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("hostile upload: %v, want ErrInvalidArgument", err)
			}

			var chunks []string
			res, err = sb.ExecStream(ctx, sdk.ExecRequest{Cmd: []string{"sh", "-c", "echo 1; sleep 0.3; echo 2 >&2; exit 4"}},
				sdk.StreamOptions{OnStdout: func(p []byte) { chunks = append(chunks, string(p)) }, OnStderr: func(p []byte) { chunks = append(chunks, string(p)) }})
			if err != nil || res.ExitCode != 4 || strings.Join(chunks, "") != "1\n2\n" {
				t.Errorf("stream: %+v %v %q", res, err, chunks)
			}

			res, err = sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"sleep", "5"}, Timeout: time.Second})
			if err != nil || !res.TimedOut || res.ExitCode != 124 {
				t.Errorf("timeout: %+v %v", res, err)
			}
			if _, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"true"}, Workdir: "/workspace/missing"}); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("missing workdir: %v", err)
			}
			if _, err := c.Exec(ctx, "no-such-sandbox", sdk.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("unknown sandbox: %v", err)
			}
			if err := sb.DownloadTo(ctx, "/workspace/missing", t.TempDir()); !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("missing download: %v", err)
			}
			st, err := sb.Get(ctx)
			if err != nil || st.TTL != time.Minute || st.SessionID != sb.ID() {
				t.Errorf("get: %+v %v", st, err)
			}
		})
	}
}
