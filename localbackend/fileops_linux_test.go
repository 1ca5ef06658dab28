package localbackend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
)

// filesEnv is a backend with one sandbox and its host workspace.
type filesEnv struct {
	*testEnv
	d  driver.Files
	id string
	ws string // the host workspace directory
}

func newFilesEnv(t *testing.T, mod func(*Config), rt *fakeRuntime) *filesEnv {
	t.Helper()
	c := testConfig(t)
	if mod != nil {
		mod(&c)
	}
	if rt == nil {
		rt = &fakeRuntime{}
	}
	e := start(t, c, rt)
	e.create("fs", nil)
	return &filesEnv{testEnv: e, d: e.b.Driver().(driver.Files), id: "fs", ws: e.b.store.workspacePath(sandboxKey("fs"))}
}

// put writes a host file in the workspace (parents made).
func (f *filesEnv) put(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(f.ws, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *filesEnv) link(t *testing.T, target, rel string) {
	t.Helper()
	if err := os.Symlink(target, filepath.Join(f.ws, rel)); err != nil {
		t.Fatal(err)
	}
}

func (f *filesEnv) read(t *testing.T, p string) (string, error) {
	t.Helper()
	rf, err := f.d.OpenFile(context.Background(), f.id, p)
	if err != nil {
		return "", err
	}
	defer rf.Close()
	data, err := io.ReadAll(rf)
	return string(data), err
}

func (f *filesEnv) write(p, content string) (driver.FileInfo, bool, error) {
	return f.d.WriteFile(context.Background(), f.id, driver.WriteFileRequest{Path: p, Mode: 0o644}, strings.NewReader(content))
}

// tempLeft reports the temporary files of writes left in dir.
func tempLeft(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if isTempName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestFilesReadWriteRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	all := make([]byte, 256*64)
	for i := range all {
		all[i] = byte(i)
	}
	ctx := context.Background()
	fi, created, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/bin/all", Parents: true, Mode: 0o600, HasMode: true}, bytes.NewReader(all))
	if err != nil || !created {
		t.Fatalf("write: %v created=%v", err, created)
	}
	if fi.Type != driver.TypeFile || fi.Size != int64(len(all)) || fi.Mode != 0o600 || fi.ETag == "" || fi.Path != "/workspace/bin/all" {
		t.Fatalf("write info %+v", fi)
	}
	got, err := os.ReadFile(filepath.Join(f.ws, "bin/all"))
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("host content differs: %v", err)
	}
	rf, err := f.d.OpenFile(ctx, f.id, "/workspace/bin/all")
	if err != nil {
		t.Fatal(err)
	}
	if rf.Info().ETag != fi.ETag {
		t.Errorf("read ETag %s, write ETag %s", rf.Info().ETag, fi.ETag)
	}
	if _, err := rf.Seek(256, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 3)
	if _, err := io.ReadFull(rf, part); err != nil || !bytes.Equal(part, []byte{0, 1, 2}) {
		t.Fatalf("ranged read %v %v", part, err)
	}
	rf.Close()
	// Replacing keeps the mode unless given, and says it did not create.
	fi2, created, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/bin/all", Mode: 0o644}, strings.NewReader("new"))
	if err != nil || created || fi2.Mode != 0o600 || fi2.ETag == fi.ETag {
		t.Fatalf("replace: %+v created=%v %v", fi2, created, err)
	}
	st, err := f.d.Stat(ctx, f.id, "/workspace/bin/all")
	if err != nil || st.ETag != fi2.ETag || st.Size != 3 {
		t.Fatalf("stat %+v %v", st, err)
	}
	if left := tempLeft(t, filepath.Join(f.ws, "bin")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestFilesLinksNeverLeadOut plants links in the workspace as sandboxed
// code could and checks that no operation reads, writes, lists, creates
// or removes anything outside it through them.
func TestFilesLinksNeverLeadOut(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.put(t, "data/in.txt", "inside")
	f.link(t, "/etc", "etc")
	f.link(t, "../../../../../../..", "up")
	f.link(t, outside, "out")
	f.link(t, secret, "secretlink")
	f.link(t, "/workspace/data/in.txt", "abs")   // absolute, inside
	f.link(t, "data/in.txt", "rel")              // relative, inside
	f.link(t, "/workspace/data", "absdir")       // absolute, a directory inside
	f.link(t, "loop", "loop")                    // a loop
	f.link(t, "/workspace/../etc/passwd", "sly") // cleaned: outside
	ctx := context.Background()
	escapes := []string{"/workspace/etc/passwd", "/workspace/up/etc/passwd", "/workspace/out/secret", "/workspace/secretlink", "/workspace/sly"}
	for _, p := range escapes {
		if _, err := f.read(t, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("read %s: %v, want ErrInvalid", p, err)
		}
		_, _, err := f.write(p, "pwned")
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("write %s: %v, want ErrInvalid", p, err)
		}
		if _, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: p + "/x/y", Parents: true}); err == nil {
			t.Errorf("mkdir below %s succeeded", p)
		}
		if _, _, err := f.d.ListDir(ctx, f.id, driver.ListDirRequest{Path: p, Depth: 1, Limit: 10}); err == nil {
			t.Errorf("list %s succeeded", p)
		}
		if err != nil && strings.Contains(err.Error(), f.ws) {
			t.Errorf("error names a host path: %v", err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("made outside the workspace: %v", ents)
	}
	for _, p := range []string{"/workspace/out", "/workspace/etc", "/workspace/up"} {
		if _, _, err := f.d.ListDir(ctx, f.id, driver.ListDirRequest{Path: p, Depth: 1, Limit: 10}); !errors.Is(err, ErrInvalid) {
			t.Errorf("list %s: %v, want ErrInvalid", p, err)
		}
		w, err := f.e().b.Driver().(driver.Watcher).Watch(ctx, f.id, driver.WatchRequest{Path: p})
		if err == nil {
			w.Close()
			t.Errorf("watch %s succeeded", p)
		}
	}
	if _, err := f.read(t, "/workspace/loop"); !errors.Is(err, ErrInvalid) {
		t.Errorf("read of a link loop: %v, want ErrInvalid", err)
	}
	for _, p := range []string{"/workspace/abs", "/workspace/rel", "/workspace/absdir/in.txt"} {
		if got, err := f.read(t, p); err != nil || got != "inside" {
			t.Errorf("read %s: %q %v, want the file inside", p, got, err)
		}
	}
	// Stat never follows the final link; remove removes the link only.
	st, err := f.d.Stat(ctx, f.id, "/workspace/out")
	if err != nil || st.Type != driver.TypeSymlink || st.LinkTarget != outside {
		t.Errorf("stat of a link: %+v %v", st, err)
	}
	if err := f.d.Remove(ctx, f.id, "/workspace/out", true); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "host secret" {
		t.Fatalf("the link's target was touched: %q %v", data, err)
	}
	// A recursive remove of a tree holding links removes the links.
	f.link(t, outside, "data/out")
	if err := f.d.Remove(ctx, f.id, "/workspace/data", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("recursive remove followed a link out: %v", err)
	}
	// Moving onto or through an escaping link is refused too.
	if _, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/rel", Dst: "/workspace/etc/x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("move through a link out: %v, want ErrInvalid", err)
	}
}

func (f *filesEnv) e() *testEnv { return f.testEnv }

// TestFilesAtomicReplace replaces a file over and over while readers read
// it: each read sees one whole version, never a part.
func TestFilesAtomicReplace(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	versions := []string{strings.Repeat("a", 1<<20), strings.Repeat("b", 3<<19)}
	if _, _, err := f.write("/workspace/v", versions[0]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := f.read(t, "/workspace/v")
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if got != versions[0] && got != versions[1] {
					t.Errorf("a reader saw %d bytes, a part of a version", len(got))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := 0; ctx.Err() == nil; i++ {
		if _, _, err := f.write("/workspace/v", versions[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read completed")
	}
}

// failingReader fails after n bytes, like a client that went away.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

func TestFilesWriteFailuresLeaveTarget(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	ctx := context.Background()
	fi, _, err := f.write("/workspace/t.txt", "original")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  driver.WriteFileRequest
		body io.Reader
		want error
	}{
		{"cut body", driver.WriteFileRequest{}, &failingReader{n: 300 << 10}, io.ErrUnexpectedEOF},
		{"too large", driver.WriteFileRequest{MaxBytes: 10}, strings.NewReader("01234567890"), ErrTooLarge},
		{"if-match stale", driver.WriteFileRequest{IfMatch: `"0-0-0-0"`}, strings.NewReader("x"), driver.ErrPreconditionFailed},
		{"create only", driver.WriteFileRequest{CreateOnly: true}, strings.NewReader("x"), driver.ErrPreconditionFailed},
		{"a directory", driver.WriteFileRequest{Path: "/workspace"}, strings.NewReader("x"), driver.ErrConflict},
		{"parent missing", driver.WriteFileRequest{Path: "/workspace/no/such/x"}, strings.NewReader("x"), ErrNotFound},
		{"outside", driver.WriteFileRequest{Path: "/etc/x"}, strings.NewReader("x"), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Path == "" {
				tc.req.Path = "/workspace/t.txt"
			}
			_, _, err := f.d.WriteFile(ctx, f.id, tc.req, tc.body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if got, _ := f.read(t, "/workspace/t.txt"); got != "original" {
				t.Fatalf("target changed to %q", got)
			}
			if left := tempLeft(t, f.ws); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
	// The right ETag replaces; then it is stale.
	if _, _, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/t.txt", IfMatch: fi.ETag}, strings.NewReader("v2")); err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if _, _, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/t.txt", IfMatch: fi.ETag}, strings.NewReader("v3")); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("If-Match with an old ETag: %v", err)
	}
	if _, created, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/new.txt", CreateOnly: true}, strings.NewReader("n")); err != nil || !created {
		t.Fatalf("create-only of a new file: %v %v", created, err)
	}
}

// TestFilesWriteOutOfStorage fills a sandbox's storage limit: the write
// is ErrInsufficientStorage (507) naming no host path, and leaves nothing.
func TestFilesWriteOutOfStorage(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	e := start(t, c, &fakeRuntime{})
	e.create("full", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "1Mi"})
	d := e.b.Driver().(driver.Files)
	_, _, err := d.WriteFile(context.Background(), "full", driver.WriteFileRequest{Path: "/workspace/big"}, bytes.NewReader(make([]byte, 2<<20)))
	if !errors.Is(err, driver.ErrInsufficientStorage) {
		t.Fatalf("err %v, want ErrInsufficientStorage", err)
	}
	if strings.Contains(err.Error(), c.DataDir) {
		t.Fatalf("error names a host path: %v", err)
	}
	ws := e.b.store.workspacePath(sandboxKey("full"))
	if ents, _ := os.ReadDir(ws); len(ents) != 0 {
		t.Fatalf("left in the workspace: %v", ents)
	}
}

// TestFilesOwnedBySandboxUser checks that what the files API makes
// belongs to the sandbox's host user, exact modes included.
func TestFilesOwnedBySandboxUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	t.Parallel()
	f := newFilesEnv(t, nil, &fakeRuntime{owner: &fileOwnerIDs{uid: 54321, gid: 54322}})
	ctx := context.Background()
	if _, _, err := f.d.WriteFile(ctx, f.id, driver.WriteFileRequest{Path: "/workspace/a/b/f", Parents: true, Mode: 0o640, HasMode: true}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/m/n", Parents: true, Mode: 0o700}); err != nil {
		t.Fatal(err)
	}
	for rel, mode := range map[string]fs.FileMode{"a": 0o755 | fs.ModeDir, "a/b": 0o755 | fs.ModeDir, "a/b/f": 0o640, "m": 0o755 | fs.ModeDir, "m/n": 0o700 | fs.ModeDir} {
		fi, err := os.Lstat(filepath.Join(f.ws, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 54321 || st.Gid != 54322 || fi.Mode() != mode {
			t.Errorf("%s: owner %d:%d mode %v, want 54321:54322 %v", rel, st.Uid, st.Gid, fi.Mode(), mode)
		}
	}
}

func TestFilesMakeDirRemoveMove(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	ctx := context.Background()
	f.put(t, "d/f", "f")
	f.put(t, "g", "g")
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"mkdir exists", func() error {
			_, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/d"})
			return err
		}, driver.ErrConflict},
		{"mkdir -p exists", func() error {
			_, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/d", Parents: true})
			return err
		}, nil},
		{"mkdir -p over a file", func() error {
			_, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/g", Parents: true})
			return err
		}, driver.ErrConflict},
		{"mkdir parent missing", func() error {
			_, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/x/y"})
			return err
		}, ErrNotFound},
		{"mkdir workspace -p", func() error {
			_, err := f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace", Parents: true})
			return err
		}, nil},
		{"remove workspace", func() error { return f.d.Remove(ctx, f.id, "/workspace", true) }, ErrInvalid},
		{"remove missing", func() error { return f.d.Remove(ctx, f.id, "/workspace/nope", false) }, ErrNotFound},
		{"remove non-empty", func() error { return f.d.Remove(ctx, f.id, "/workspace/d", false) }, driver.ErrConflict},
		{"move onto existing", func() error {
			_, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/g", Dst: "/workspace/d/f"})
			return err
		}, driver.ErrConflict},
		{"move into itself", func() error {
			_, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/d", Dst: "/workspace/d/e"})
			return err
		}, ErrInvalid},
		{"move missing", func() error {
			_, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/nope", Dst: "/workspace/x"})
			return err
		}, ErrNotFound},
		{"move dir over file", func() error {
			_, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/d", Dst: "/workspace/g", Overwrite: true})
			return err
		}, driver.ErrConflict},
		{"move the workspace", func() error {
			_, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace", Dst: "/workspace/x"})
			return err
		}, ErrInvalid},
	} {
		if err := tc.op(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, _ := f.read(t, "/workspace/d/f"); got != "f" {
		t.Fatalf("d/f changed: %q", got)
	}
	fi, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/g", Dst: "/workspace/d/f", Overwrite: true})
	if err != nil || fi.Path != "/workspace/d/f" || fi.Size != 1 {
		t.Fatalf("move with overwrite: %+v %v", fi, err)
	}
	if got, _ := f.read(t, "/workspace/d/f"); got != "g" {
		t.Fatalf("after move d/f is %q", got)
	}
	if _, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/d", Dst: "/workspace/e"}); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Remove(ctx, f.id, "/workspace/e", true); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(f.ws); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
	fi, err = f.d.MakeDir(ctx, f.id, driver.MakeDirRequest{Path: "/workspace/p/q/r", Parents: true, Mode: 0o750})
	if err != nil || fi.Type != driver.TypeDir || fi.Mode != 0o750 {
		t.Fatalf("mkdir -p: %+v %v", fi, err)
	}
}

// TestFilesReadCutByDelete: an open read holds the sandbox like a download
// and a delete cuts it.
func TestFilesReadCutByDelete(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	f.put(t, "big", strings.Repeat("z", 1<<20))
	rf, err := f.d.OpenFile(context.Background(), f.id, "/workspace/big")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	if _, err := rf.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.b.Driver().Delete(context.Background(), f.id) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delete waited for the open read")
	}
	if _, err := io.ReadAll(rf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}
}

// mkChain makes a chain of n directories "d/d/d/..." below dir, each
// made relative to its parent (the path exceeds PATH_MAX).
func mkChain(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
}

// TestFilesDeepTrees: the files API holds a descriptor per level of a
// path or a tree it removes, so it refuses to go deeper than
// maxWalkDepth levels instead of taking thousands of the server's
// descriptors for one request; shallower trees are removed whole.
func TestFilesDeepTrees(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	ctx := context.Background()
	mkChain(t, filepath.Join(f.ws), maxWalkDepth+10)
	err := f.d.Remove(ctx, f.id, "/workspace/d", true)
	if !errors.Is(err, driver.ErrConflict) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("remove of a tree deeper than %d: %v", maxWalkDepth, err)
	}
	deep := "/workspace" + strings.Repeat("/d", maxWalkDepth+5)
	if _, err := f.d.Stat(ctx, f.id, deep); !errors.Is(err, ErrInvalid) {
		t.Fatalf("stat of a path deeper than %d: %v", maxWalkDepth, err)
	}
	if err := os.Mkdir(filepath.Join(f.ws, "s"), 0o755); err != nil {
		t.Fatal(err)
	}
	mkChain(t, filepath.Join(f.ws, "s"), 200)
	if err := f.d.Remove(ctx, f.id, "/workspace/s", true); err != nil {
		t.Fatalf("remove of a 200-level tree: %v", err)
	}
}
