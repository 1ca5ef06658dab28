package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/localbackend"
)

// filesBackends returns clients of the backends that implement files.ops
// and files.watch: the reference test backend and, where it runs here,
// the local backend (over a socket).
func filesBackends(t *testing.T) map[string]*Client {
	t.Helper()
	c, _ := setup(t)
	out := map[string]*Client{"mem": c}
	b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" {
			t.Fatalf("local backend unavailable: %v", err)
		}
		t.Logf("local backend unavailable: %v", err)
		return out
	}
	t.Cleanup(func() { b.Close() })
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	if out["local"], err = New(srv.URL, WithRetry(testPolicy())); err != nil {
		t.Fatal(err)
	}
	return out
}

// forFilesBackends runs f in a subtest per backend of filesBackends, with
// a ready sandbox.
func forFilesBackends(t *testing.T, f func(t *testing.T, sb *Sandbox)) {
	for name, c := range filesBackends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, readySandbox(t, c))
		})
	}
}

// readySandbox creates a sandbox of c that has the file extensions.
func readySandbox(t *testing.T, c *Client) *Sandbox {
	t.Helper()
	ctx := context.Background()
	for _, ext := range []string{ExtFilesOps, ExtFilesWatch} {
		if ok, err := c.Supports(ctx, ext); err != nil || !ok {
			t.Fatalf("the backend does not advertise %s (%v)", ext, err)
		}
	}
	sb := c.Sandbox("files")
	_, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
	assertNoErr(t, err)
	t.Cleanup(func() { sb.Delete(context.Background()) })
	assertNoErr(t, sb.WaitReady(ctx, WaitOptions{}))
	return sb
}

// filesSandbox returns a ready sandbox of the test backend, which
// implements files.ops and files.watch.
func filesSandbox(t *testing.T, opts ...Option) (*Sandbox, *testbackend.Backend) {
	t.Helper()
	c, f := setup(t, opts...)
	ctx := context.Background()
	if ok, err := c.Supports(ctx, ExtFilesOps); err != nil || !ok {
		t.Fatalf("the test backend does not advertise %s (%v)", ExtFilesOps, err)
	}
	sb := c.Sandbox("files")
	_, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
	assertNoErr(t, err)
	return sb, f
}

// TestFilesOps runs every file operation against the real server over
// the reference backend: binary-safe round trips, ranges, validators,
// conditional writes, listing with pages and depth, mkdir, remove and
// rename with their POSIX errors.
func TestFilesOps(t *testing.T) {
	t.Parallel()
	forFilesBackends(t, testFilesOps)
}

func testFilesOps(t *testing.T, sb *Sandbox) {
	ctx := context.Background()

	data := allBytes()
	fi, err := sb.WriteFile(ctx, "bin.dat", data, 0o640)
	assertNoErr(t, err)
	assertEq(t, "write path", fi.Path, "/workspace/bin.dat")
	assertEq(t, "write mode", fi.Mode, fs.FileMode(0o640))
	if fi.ETag == "" {
		t.Error("write: no ETag")
	}
	got, err := sb.ReadFile(ctx, "/workspace/bin.dat")
	assertNoErr(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back differs")
	}

	for _, tc := range []struct {
		off, n int64
		want   []byte
	}{
		{0, 0, data}, {10, 5, data[10:15]}, {500, 0, data[500:]}, {510, 100, data[510:]}, {512, 0, nil}, {9999, 3, nil},
	} {
		rc, err := sb.Open(ctx, "bin.dat", OpenOptions{Offset: tc.off, Length: tc.n})
		assertNoErr(t, err)
		part, err := io.ReadAll(rc)
		rc.Close()
		assertNoErr(t, err)
		if !bytes.Equal(part, tc.want) {
			t.Errorf("Open offset %d length %d: %d bytes, want %d", tc.off, tc.n, len(part), len(tc.want))
		}
	}
	_, err = sb.WriteFile(ctx, "empty", nil, 0)
	assertNoErr(t, err)
	for _, o := range []OpenOptions{{}, {Length: 5}, {Offset: 3}} {
		rc, err := sb.Open(ctx, "empty", o)
		assertNoErr(t, err)
		if part, err := io.ReadAll(rc); err != nil || len(part) != 0 {
			t.Errorf("Open(empty, %+v): %q %v", o, part, err)
		}
		rc.Close()
	}
	_, err = sb.Open(ctx, "bin.dat", OpenOptions{IfNoneMatch: fi.ETag})
	assertIs(t, err, ErrNotModified)

	st, err := sb.Stat(ctx, "bin.dat")
	assertNoErr(t, err)
	assertEq(t, "stat", fmt.Sprint(st.Type, st.Size, st.ETag == fi.ETag), fmt.Sprint(TypeFile, 512, true))

	// Conditional writes.
	_, err = sb.WriteFileWith(ctx, "bin.dat", []byte("x"), WriteOptions{IfMatch: `"not-it"`})
	assertIs(t, err, ErrPreconditionFailed)
	_, err = sb.WriteFileWith(ctx, "bin.dat", []byte("x"), WriteOptions{CreateOnly: true})
	assertIs(t, err, ErrPreconditionFailed)
	fi2, err := sb.WriteFileWith(ctx, "bin.dat", []byte("new"), WriteOptions{IfMatch: fi.ETag})
	assertNoErr(t, err)
	if fi2.ETag == fi.ETag {
		t.Error("ETag unchanged by a write")
	}
	assertEq(t, "mode kept", fi2.Mode, fs.FileMode(0o640))
	_, err = sb.WriteFile(ctx, "no/parent.txt", nil, 0)
	assertIs(t, err, ErrNotFound)
	_, err = sb.WriteFileWith(ctx, "no/parent.txt", nil, WriteOptions{Parents: true})
	assertNoErr(t, err)
	_, err = sb.ReadFile(ctx, "no")
	assertIs(t, err, ErrConflict)
	_, err = sb.ReadFile(ctx, "missing")
	assertIs(t, err, ErrNotFound)
	_, err = sb.Stat(ctx, "/etc/passwd")
	if err == nil {
		t.Error("stat outside /workspace: no error")
	}

	// Directories.
	_, err = sb.Mkdir(ctx, "a/b", 0)
	assertIs(t, err, ErrNotFound)
	_, err = sb.MkdirAll(ctx, "a/b", 0o700)
	assertNoErr(t, err)
	_, err = sb.MkdirAll(ctx, "a/b", 0)
	assertNoErr(t, err)
	_, err = sb.Mkdir(ctx, "a/b", 0)
	assertIs(t, err, ErrConflict)
	for i := range 5 {
		_, err := sb.WriteFile(ctx, fmt.Sprintf("a/f%d", i), []byte{byte(i)}, 0)
		assertNoErr(t, err)
	}
	var names []string
	for fi, err := range sb.ReadDir(ctx, "a", ReadDirOptions{PageSize: 2}) {
		assertNoErr(t, err)
		names = append(names, fi.Name)
	}
	assertEq(t, "paged listing", strings.Join(names, " "), "b f0 f1 f2 f3 f4")
	_, err = sb.WriteFile(ctx, "a/b/deep", nil, 0)
	assertNoErr(t, err)
	var paths []string
	for fi, err := range sb.ReadDir(ctx, "/workspace/a", ReadDirOptions{Depth: 2, PageSize: 3}) {
		assertNoErr(t, err)
		paths = append(paths, strings.TrimPrefix(fi.Path, "/workspace/a/"))
	}
	assertEq(t, "deep listing", strings.Join(paths, " "), "b b/deep f0 f1 f2 f3 f4")
	for _, err := range sb.ReadDir(ctx, "bin.dat", ReadDirOptions{}) {
		assertIs(t, err, ErrConflict)
	}
	// Breaking out of the loop stops asking for pages.
	for range sb.ReadDir(ctx, "a", ReadDirOptions{PageSize: 1}) {
		break
	}

	assertIs(t, sb.Remove(ctx, "a"), ErrConflict)
	assertIs(t, sb.Remove(ctx, "missing"), ErrNotFound)
	assertNoErr(t, sb.Remove(ctx, "a/f0"))
	assertNoErr(t, sb.RemoveAll(ctx, "a/b"))
	assertNoErr(t, sb.RemoveAll(ctx, "a/b")) // rm -rf: gone is fine
	_, err = sb.Stat(ctx, "a/b")
	assertIs(t, err, ErrNotFound)

	_, err = sb.RenameWith(ctx, "a/f1", "a/f2", RenameOptions{})
	assertIs(t, err, ErrConflict)
	moved, err := sb.Rename(ctx, "a/f1", "a/f2")
	assertNoErr(t, err)
	assertEq(t, "moved", moved.Path, "/workspace/a/f2")
	got, err = sb.ReadFile(ctx, "a/f2")
	assertNoErr(t, err)
	assertEq(t, "moved content", string(got), "\x01")
	_, err = sb.Rename(ctx, "a", "a/inside")
	if err == nil {
		t.Error("moving a directory into itself: no error")
	}
}

// TestCreateFileStreams: CreateFile sends what is written as it is
// written (chunked, no Content-Length) to a files.ops backend, the file
// appears only on Close, and an abandoned write leaves the old content.
func TestCreateFileStreams(t *testing.T) {
	t.Parallel()
	sb, f := filesSandbox(t)
	ctx := context.Background()
	_, err := sb.WriteFile(ctx, "s.txt", []byte("old"), 0)
	assertNoErr(t, err)

	w, err := sb.CreateFile(ctx, "s.txt", WriteOptions{})
	assertNoErr(t, err)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for range 32 {
		_, err := w.Write(chunk)
		assertNoErr(t, err)
	}
	got, err := sb.ReadFile(ctx, "s.txt")
	assertNoErr(t, err)
	assertEq(t, "content while writing", string(got), "old")
	assertNoErr(t, w.Close())
	assertEq(t, "info size", w.Info().Size, int64(32*len(chunk)))
	got, err = sb.ReadFile(ctx, "s.txt")
	assertNoErr(t, err)
	assertEq(t, "content after close", len(got), 32*len(chunk))
	var chunked bool
	for _, r := range f.Requests() {
		if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/fs/file") && r.ContentLength == -1 {
			chunked = true
		}
	}
	if !chunked {
		t.Error("CreateFile did not stream (every PUT had a Content-Length)")
	}

	w, err = sb.CreateFile(ctx, "s.txt", WriteOptions{})
	assertNoErr(t, err)
	_, err = w.Write([]byte("half"))
	assertNoErr(t, err)
	boom := errors.New("source failed")
	if err := w.CloseWithError(boom); !errors.Is(err, boom) {
		t.Errorf("CloseWithError = %v, want %v", err, boom)
	}
	got, err = sb.ReadFile(ctx, "s.txt")
	assertNoErr(t, err)
	assertEq(t, "content after an abandoned write", len(got), 32*len(chunk))

	// A refused write reports the backend's reason, at Close at the latest.
	w, err = sb.CreateFile(ctx, "s.txt", WriteOptions{CreateOnly: true})
	assertNoErr(t, err)
	_, _ = w.Write([]byte("x"))
	assertIs(t, w.Close(), ErrPreconditionFailed)
}

// TestFSView holds sb.FS to testing/fstest.TestFS and uses it with
// fs.WalkDir, fs.Glob and template.ParseFS.
func TestFSView(t *testing.T) {
	t.Parallel()
	forFilesBackends(t, testFSView)
}

func testFSView(t *testing.T, sb *Sandbox) {
	ctx := context.Background()
	files := map[string]string{
		"hello.txt":         "hello",
		"dir/a.tmpl":        `{{define "a"}}A{{template "b" .}}{{end}}`,
		"dir/b.tmpl":        `{{define "b"}}B{{.}}{{end}}`,
		"dir/sub/empty.txt": "",
		"bin":               string(allBytes()),
	}
	for p, content := range files {
		_, err := sb.WriteFileWith(ctx, p, []byte(content), WriteOptions{Parents: true})
		assertNoErr(t, err)
	}
	_, err := sb.MkdirAll(ctx, "emptydir", 0)
	assertNoErr(t, err)
	fsys := sb.FS(ctx)
	if err := fstest.TestFS(fsys, "hello.txt", "dir/a.tmpl", "dir/b.tmpl", "dir/sub/empty.txt", "bin", "emptydir"); err != nil {
		t.Error(err)
	}

	var walked []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, p)
		return nil
	})
	assertNoErr(t, err)
	assertEq(t, "walk", strings.Join(walked, " "), ". bin dir dir/a.tmpl dir/b.tmpl dir/sub dir/sub/empty.txt emptydir hello.txt")
	tmpl, err := template.ParseFS(fsys, "dir/*.tmpl")
	assertNoErr(t, err)
	var out strings.Builder
	assertNoErr(t, tmpl.ExecuteTemplate(&out, "a", "!"))
	assertEq(t, "template", out.String(), "AB!")

	for _, name := range []string{"missing", "dir/missing.txt"} {
		if _, err := fs.Stat(fsys, name); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want fs.ErrNotExist and ErrNotFound", name, err)
		}
		var pe *fs.PathError
		if _, err := fs.ReadFile(fsys, name); !errors.As(err, &pe) || pe.Path != name || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q) = %v, want a *fs.PathError for it matching fs.ErrNotExist", name, err)
		}
	}
	for _, name := range []string{"/workspace/hello.txt", "../x", "a//b", ""} {
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want fs.ErrInvalid", name, err)
		}
	}
}

// TestWatch: a watch sees a file created after Watch returned, breaking
// the loop ends the stream, and the backend's watch limit, overflow and
// error events reach the caller.
func TestWatch(t *testing.T) {
	t.Parallel()
	forFilesBackends(t, testWatch)
}

func testWatch(t *testing.T, sb *Sandbox) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sb.MkdirAll(ctx, "w/sub", 0)
	assertNoErr(t, err)
	events, err := sb.Watch(ctx, "w", WatchOptions{Recursive: true})
	assertNoErr(t, err)
	_, err = sb.WriteFile(ctx, "w/sub/new.txt", []byte("x"), 0)
	assertNoErr(t, err)
	var seen []string
	for ev, err := range events {
		assertNoErr(t, err)
		seen = append(seen, string(ev.Type)+" "+ev.Path)
		if ev.Path == "/workspace/w/sub/new.txt" {
			break
		}
	}
	if !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "create ") }) {
		t.Errorf("events %q: no create", seen)
	}
	_, err = sb.Watch(ctx, "missing", WatchOptions{})
	assertIs(t, err, ErrNotFound)
}

// TestWatchEvents reads overflow and error events and a cut stream from a
// backend double (the reference backend does not overflow on demand).
func TestWatchEvents(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	sb := c.Sandbox("w")
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/fs/watch") {
			return false
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": heartbeat\n\nevent: ready\ndata: {}\n\n")
		writeEvent(w, "change", map[string]any{"type": "rename", "path": "/workspace/b", "oldPath": "/workspace/a"})
		fmt.Fprint(w, "event: future\ndata: {}\n\nevent: overflow\ndata: {}\n\n")
		switch r.URL.Query().Get("path") {
		case "/workspace/err":
			writeEvent(w, "error", map[string]string{"error": "watched directory removed"})
		case "/workspace/cut":
		}
		return true
	})
	for _, tc := range []struct {
		path string
		want error
	}{{"err", ErrInternal}, {"cut", io.ErrUnexpectedEOF}} {
		events, err := sb.Watch(ctx, tc.path, WatchOptions{})
		assertNoErr(t, err)
		var got []FileEvent
		var last error
		for ev, err := range events {
			if err != nil {
				last = err
				break
			}
			got = append(got, ev)
		}
		want := []FileEvent{{Type: EventRename, Path: "/workspace/b", OldPath: "/workspace/a"}, {Type: EventOverflow}}
		if !slices.Equal(got, want) {
			t.Errorf("%s: events %+v, want %+v", tc.path, got, want)
		}
		if !errors.Is(last, tc.want) {
			t.Errorf("%s: end %v, want %v", tc.path, last, tc.want)
		}
	}
}

// TestRandomMiBRoundTrip writes 1 MiB of random bytes with WriteFile and
// with CreateFile (in odd-sized pieces) and reads them back byte-equal
// with ReadFile and with Open in ranges.
func TestRandomMiBRoundTrip(t *testing.T) {
	t.Parallel()
	forFilesBackends(t, func(t *testing.T, sb *Sandbox) {
		ctx := context.Background()
		data := make([]byte, 1<<20)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		_, err := sb.WriteFile(ctx, "r1.bin", data, 0)
		assertNoErr(t, err)
		w, err := sb.CreateFile(ctx, "r2.bin", WriteOptions{})
		assertNoErr(t, err)
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 12345)
			_, err := w.Write(rest[:n])
			assertNoErr(t, err)
			rest = rest[n:]
		}
		assertNoErr(t, w.Close())
		for _, name := range []string{"r1.bin", "r2.bin"} {
			got, err := sb.ReadFile(ctx, name)
			assertNoErr(t, err)
			if !bytes.Equal(got, data) {
				t.Errorf("%s: read back differs", name)
			}
			var parts []byte
			for off := int64(0); off < int64(len(data)); off += 300000 {
				rc, err := sb.Open(ctx, name, OpenOptions{Offset: off, Length: 300000})
				assertNoErr(t, err)
				p, err := io.ReadAll(rc)
				rc.Close()
				assertNoErr(t, err)
				parts = append(parts, p...)
			}
			if !bytes.Equal(parts, data) {
				t.Errorf("%s: ranged reads differ", name)
			}
		}
	})
}
