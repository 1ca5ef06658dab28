package membackend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noxrunner/nox/driver"
)

// newSandbox returns a backend with one sandbox "s".
func newSandbox(t *testing.T, cfg Config) *Backend {
	t.Helper()
	b := newTest(t, cfg)
	if _, err := b.Create(context.Background(), "s", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, b *Backend, req driver.WriteFileRequest, content string) (driver.FileInfo, bool) {
	t.Helper()
	fi, created, err := b.WriteFile(context.Background(), "s", req, strings.NewReader(content))
	if err != nil {
		t.Fatalf("WriteFile(%+v): %v", req, err)
	}
	return fi, created
}

func read(t *testing.T, b *Backend, p string) string {
	t.Helper()
	f, err := b.OpenFile(context.Background(), "s", p)
	if err != nil {
		t.Fatalf("OpenFile(%q): %v", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestWriteReadFile(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx := context.Background()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	fi, created := write(t, b, driver.WriteFileRequest{Path: "/workspace/a/b/bin", Mode: 0o600, Parents: true}, string(all))
	if !created || fi.Size != 256 || fi.Mode != 0o600 || fi.Type != driver.TypeFile || fi.ETag == "" || fi.Path != "/workspace/a/b/bin" {
		t.Fatalf("created %v %+v", created, fi)
	}
	if got := read(t, b, "/workspace/a/b/bin"); !bytes.Equal([]byte(got), all) {
		t.Fatalf("read back %q", got)
	}
	// Replace: keeps the mode, new ETag; If-Match with the old ETag holds
	// once, then fails.
	fi2, created := write(t, b, driver.WriteFileRequest{Path: "/workspace/a/b/bin", Mode: 0o644, IfMatch: fi.ETag}, "new")
	if created || fi2.Mode != 0o600 || fi2.ETag == fi.ETag {
		t.Fatalf("replace: created %v %+v (old ETag %s)", created, fi2, fi.ETag)
	}
	for _, c := range []struct {
		req  driver.WriteFileRequest
		want error
	}{
		{driver.WriteFileRequest{Path: "/workspace/a/b/bin", IfMatch: fi.ETag}, driver.ErrPreconditionFailed},
		{driver.WriteFileRequest{Path: "/workspace/a/b/bin", CreateOnly: true}, driver.ErrPreconditionFailed},
		{driver.WriteFileRequest{Path: "/workspace/none", IfMatch: fi.ETag}, driver.ErrPreconditionFailed},
		{driver.WriteFileRequest{Path: "/workspace/x/y"}, driver.ErrNotFound},
		{driver.WriteFileRequest{Path: "/workspace/a"}, driver.ErrConflict},
		{driver.WriteFileRequest{Path: "/workspace"}, driver.ErrConflict},
		{driver.WriteFileRequest{Path: "/etc/passwd"}, driver.ErrInvalidArgument},
		{driver.WriteFileRequest{Path: "/workspace/big", MaxBytes: 2}, driver.ErrTooLarge},
	} {
		_, _, err := b.WriteFile(ctx, "s", c.req, strings.NewReader("abc"))
		if !errors.Is(err, c.want) {
			t.Errorf("WriteFile(%+v) = %v, want %v", c.req, err, c.want)
		}
	}
	if got := read(t, b, "/workspace/a/b/bin"); got != "new" {
		t.Errorf("failed writes changed the file: %q", got)
	}
	// No temporary file is left behind by the failed writes.
	entries, _, err := b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace", Depth: 64, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	if want := "/workspace/a /workspace/a/b /workspace/a/b/bin"; strings.Join(paths, " ") != want {
		t.Errorf("listing %q, want %q", paths, want)
	}
	if _, err := b.OpenFile(ctx, "s", "/workspace/a"); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("OpenFile of a directory: %v", err)
	}
	if _, err := b.OpenFile(ctx, "s", "/workspace/missing"); !errors.Is(err, driver.ErrNotFound) || !strings.Contains(err.Error(), `"/workspace/missing"`) {
		t.Errorf("OpenFile of a missing file: %v", err)
	}
}

// A link a command planted never leads out of the sandbox, and the
// refusal names the path, not the host's.
func TestFilesLinkEscape(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx := context.Background()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "ln -s " + outside + "/secret /workspace/abs && ln -s ../../../../../../../../" + outside + " /workspace/rel && ln -s inside /workspace/ok && echo hi > /workspace/inside"}}, nil)
	if res.ExitCode != 0 {
		t.Fatalf("ln: %+v", res)
	}
	for _, p := range []string{"/workspace/abs", "/workspace/rel/secret"} {
		_, err := b.OpenFile(ctx, "s", p)
		if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "leads out of the sandbox") || strings.Contains(err.Error(), outside) {
			t.Errorf("OpenFile(%q) = %v, want a refusal without the host path", p, err)
		}
		for _, below := range []string{p + "/f", p + "/x/y"} {
			_, _, err = b.WriteFile(ctx, "s", driver.WriteFileRequest{Path: below, Parents: true}, strings.NewReader("x"))
			if !errors.Is(err, driver.ErrInvalidArgument) || strings.Contains(err.Error(), outside) {
				t.Errorf("WriteFile(%q, parents) = %v, want a refusal without the host path", below, err)
			}
		}
	}
	if _, err := b.Move(ctx, "s", driver.MoveRequest{Src: "/workspace/inside", Dst: "/workspace/rel/moved"}); !errors.Is(err, driver.ErrInvalidArgument) || strings.Contains(err.Error(), outside) {
		t.Errorf("Move through a link out: %v", err)
	}
	if got := read(t, b, "/workspace/ok"); got != "hi\n" {
		t.Errorf("link inside the sandbox: %q", got)
	}
	fi, err := b.Stat(ctx, "s", "/workspace/abs")
	if err != nil || fi.Type != driver.TypeSymlink || fi.LinkTarget == "" {
		t.Errorf("Stat of a link: %+v %v", fi, err)
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "secret")); string(data) != "s3cret" {
		t.Errorf("outside file changed: %q", data)
	}
}

func TestListDirPaging(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx := context.Background()
	for _, p := range []string{"a/x", "a/y/z", "a-b", "c"} {
		write(t, b, driver.WriteFileRequest{Path: "/workspace/" + p, Mode: 0o644, Parents: true}, p)
	}
	want := []string{"/workspace/a", "/workspace/a/x", "/workspace/a/y", "/workspace/a/y/z", "/workspace/a-b", "/workspace/c"}
	var got []string
	after := ""
	for range 10 {
		page, more, err := b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace", Depth: 3, Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.Path)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Path
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("paged listing %q, want %q", got, want)
	}
	// A page ending at a directory: the next one starts with its entries.
	page, more, err := b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace", Depth: 3, Limit: 2, After: "/workspace/a/x"})
	if err != nil || !more || len(page) != 2 || page[0].Path != "/workspace/a/y" || page[1].Path != "/workspace/a/y/z" {
		t.Errorf("page after /workspace/a/x: %+v %v %v", page, more, err)
	}
	page, _, err = b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace", Depth: 3, Limit: 1, After: "/workspace/a"})
	if err != nil || len(page) != 1 || page[0].Path != "/workspace/a/x" {
		t.Errorf("page after the directory /workspace/a: %+v %v", page, err)
	}
	page, _, err = b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace", Depth: 1, Limit: 10})
	if err != nil || len(page) != 3 || page[0].Type != driver.TypeDir {
		t.Errorf("depth 1: %+v %v", page, err)
	}
	if _, _, err := b.ListDir(ctx, "s", driver.ListDirRequest{Path: "/workspace/c", Depth: 1, Limit: 10}); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("listing a file: %v", err)
	}
}

func TestMkdirRemoveMove(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx := context.Background()
	if _, err := b.MakeDir(ctx, "s", driver.MakeDirRequest{Path: "/workspace/p/q", Mode: 0o755}); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("mkdir without parents: %v", err)
	}
	fi, err := b.MakeDir(ctx, "s", driver.MakeDirRequest{Path: "/workspace/p/q", Parents: true, Mode: 0o750})
	if err != nil || fi.Type != driver.TypeDir {
		t.Fatalf("mkdir -p: %+v %v", fi, err)
	}
	if _, err := b.MakeDir(ctx, "s", driver.MakeDirRequest{Path: "/workspace/p/q", Parents: true, Mode: 0o755}); err != nil {
		t.Errorf("mkdir -p of an existing directory: %v", err)
	}
	if _, err := b.MakeDir(ctx, "s", driver.MakeDirRequest{Path: "/workspace/p", Mode: 0o755}); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("mkdir of an existing directory: %v", err)
	}
	write(t, b, driver.WriteFileRequest{Path: "/workspace/p/q/f", Mode: 0o644}, "f")
	if err := b.Remove(ctx, "s", "/workspace/p", false); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("rm of a non-empty directory: %v", err)
	}
	if _, err := b.Move(ctx, "s", driver.MoveRequest{Src: "/workspace/p/q/f", Dst: "/workspace/g"}); err != nil {
		t.Errorf("mv: %v", err)
	}
	write(t, b, driver.WriteFileRequest{Path: "/workspace/h", Mode: 0o644}, "h")
	if _, err := b.Move(ctx, "s", driver.MoveRequest{Src: "/workspace/g", Dst: "/workspace/h"}); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("mv onto a file without overwrite: %v", err)
	}
	if fi, err := b.Move(ctx, "s", driver.MoveRequest{Src: "/workspace/g", Dst: "/tmp/h", Overwrite: true}); err != nil || fi.Path != "/tmp/h" || read(t, b, "/tmp/h") != "f" {
		t.Errorf("mv across /workspace and /tmp: %+v %v", fi, err)
	}
	if err := b.Remove(ctx, "s", "/workspace/p", true); err != nil {
		t.Errorf("rm -r: %v", err)
	}
	if err := b.Remove(ctx, "s", "/workspace/p", true); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("rm -r of a missing path: %v", err)
	}
	if err := b.Remove(ctx, "s", "/workspace", true); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("rm -r /workspace: %v", err)
	}
	if _, err := b.Stat(ctx, "s", "/workspace/p"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("stat after rm -r: %v", err)
	}
	if _, err := b.Stat(ctx, "nope", "/workspace"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("stat in a missing sandbox: %v", err)
	}
}
