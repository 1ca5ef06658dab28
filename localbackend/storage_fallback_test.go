package localbackend

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/localbackend/internal/diskquota"
)

// box returns the store's box of id.
func (e *testEnv) box(id string) *box {
	e.b.store.mu.Lock()
	defer e.b.store.mu.Unlock()
	return e.b.store.boxes[id]
}

// overFloor returns the storage floor of sandbox id.
func (e *testEnv) overFloor(id string) int64 {
	b := e.box(id)
	e.b.store.mu.Lock()
	defer e.b.store.mu.Unlock()
	return b.overFloor
}

// deepDirs makes depth nested directories of the given name length under
// dir (openat-relative: the path may exceed PATH_MAX) and returns the
// deepest, open.
func deepDirs(t *testing.T, dir string, depth, nameLen int) *os.File {
	t.Helper()
	fd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("0", nameLen)
	for range depth {
		if err := unix.Mkdirat(int(fd.Fd()), name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(int(fd.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fd.Close()
		fd = os.NewFile(uintptr(nfd), name)
	}
	return fd
}

// Finding 1 (monitoring): a tree deeper than PATH_MAX does not switch the
// limit off, nor does one too deep to measure: both count as over.
func TestStorageDeepTreeFake(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		depth, nameLen int
		big            bool
	}{
		{"path longer than PATH_MAX", 18, 250, true},
		{"deeper than the walk measures", maxWalkDepth + 2, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, func(c *Config) { c.StorageCheckInterval = 50 * time.Millisecond })
			e.t = t
			e.create("deep", map[string]any{"ephemeralStorageLimit": "1Mi"})
			d := deepDirs(t, e.b.store.workspacePath(sandboxKey("deep")), c.depth, c.nameLen)
			if c.big {
				f, err := unix.Openat(int(d.Fd()), "big", unix.O_CREAT|unix.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := unix.Write(f, make([]byte, 4<<20)); err != nil {
					t.Fatal(err)
				}
				unix.Close(f)
			}
			d.Close()
			// The monitor kills the environment create built (or the
			// exec's, whichever it sees first).
			r := e.exec("deep", map[string]any{"cmd": []string{"sleep", "1"}, "timeoutSeconds": 20})
			for i := 0; e.b.store.storageKills(e.box("deep")) == 0; i++ {
				if i == 100 {
					t.Fatalf("a sandbox over its limit was never killed (exec: %+v)", r)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if resp, body := e.do("POST", "/v1/sandboxes/deep/files/upload", tarGz(t, []tarEntry{{name: "x", body: "x"}})); resp.StatusCode != 507 {
				t.Fatalf("upload over the limit: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// Finding 1 (API): an entry with a 6,000-character path is extracted and
// measured; later uploads still work.
func TestUploadLongPathFake(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("long", map[string]any{"ephemeralStorageLimit": "64Mi"})
	long := strings.Repeat(strings.Repeat("d", 249)+"/", 24) + "f"
	for i := range 2 {
		up := tarGz(t, []tarEntry{{name: long, body: "x"}, {name: fmt.Sprint("n", i), body: "y"}})
		if resp, body := e.do("POST", "/v1/sandboxes/long/files/upload", up); resp.StatusCode != 200 {
			t.Fatalf("upload %d: %d %s", i, resp.StatusCode, body)
		}
	}
}

// Finding 2 (monitoring): a sandbox killed again for growing keeps the
// floor of its first kill, and an environment rebuilt over the limit may
// not write file data, so repeated commands cannot ratchet usage up; back
// under the limit it writes again.
func TestStorageNoRatchetFake(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.StorageCheckInterval = 50 * time.Millisecond })
	e.create("r", map[string]any{"ephemeralStorageLimit": "1Mi"})
	fill := func(name string) {
		t.Helper()
		r := e.exec("r", map[string]any{"cmd": []string{"sh", "-c", "head -c 3145728 /dev/zero > " + name + "; sleep 10"}, "timeoutSeconds": 20})
		if r.ExitCode != 137 {
			t.Fatalf("fill %s: %+v", name, r)
		}
	}
	lastSpec := func() int64 {
		e.rt.mu.Lock()
		defer e.rt.mu.Unlock()
		return e.rt.envs[len(e.rt.envs)-1].spec.Limits.StorageBytes
	}
	fill("a")
	floor1 := e.overFloor("r")
	fill("b") // the fake runtime ignores RLIMIT_FSIZE: it grows, and is killed
	if got := lastSpec(); got != 1 {
		t.Fatalf("environment rebuilt over the limit: StorageBytes %d, want 1 (no writing)", got)
	}
	floor2 := e.overFloor("r")
	if floor1 <= 1<<20 || floor2 > floor1 {
		t.Fatalf("floor after the first kill %d, after the second %d: it must not rise", floor1, floor2)
	}
	if r := e.exec("r", map[string]any{"cmd": []string{"rm", "a", "b"}}); r.ExitCode != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if r := e.exec("r", map[string]any{"cmd": []string{"true"}}); r.ExitCode != 0 || lastSpec() != 1<<20 {
		t.Fatalf("back under the limit: %+v, StorageBytes %d", r, lastSpec())
	}
}

// Finding 4 (monitoring): concurrent uploads share the room the sandbox
// has left; together they cannot stage or extract more than the limit.
func TestUploadSharedBudgetFake(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("c", map[string]any{"ephemeralStorageLimit": "1Mi"})
	const size = 800 << 10
	half := make(chan struct{})
	var started sync.WaitGroup
	statuses := make([]int, 4)
	var wg sync.WaitGroup
	for i := range statuses {
		started.Add(1)
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprint("f", i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			_, _ = tw.Write(make([]byte, size/2))
			started.Done()
			<-half
			_, _ = tw.Write(make([]byte, size/2))
			_ = tw.Close()
			_ = pw.Close()
		}()
		wg.Go(func() {
			req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/c/files/upload", pr)
			req.Header.Set("Content-Type", "application/x-tar")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				pr.CloseWithError(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
			pr.CloseWithError(io.ErrClosedPipe)
		})
	}
	started.Wait()
	time.Sleep(200 * time.Millisecond) // every upload is staging its first half
	close(half)
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 507:
		default:
			t.Errorf("status %d", s)
		}
	}
	used, _, err := measureUsage(e.b.store.workspacePath(sandboxKey("c")), 1000, 1<<62)
	if ok > 1 || err != nil || used > 1<<20 {
		t.Fatalf("%d uploads of %d bytes accepted into 1Mi (statuses %v); the workspace uses %d bytes (%v)", ok, size, statuses, used, err)
	}
}

// Sandboxes on an image (here the test double) keep /workspace, /tmp and
// staging on it, are never walked by the monitor, and their file systems
// are unmounted at delete and Close; info says the kernel enforces.
func TestStorageOnImageFake(t *testing.T) {
	t.Parallel()
	fake := &diskquota.Fake{}
	e := setup(t, func(c *Config) {
		c.StorageCheckInterval = 50 * time.Millisecond
		c.newDisks = func(Config) diskquota.Disks { return fake }
	})
	e.create("img", map[string]any{"ephemeralStorageLimit": "1Mi"})
	key := sandboxKey("img")
	fsDir := e.b.store.fsPath(key)
	e.rt.mu.Lock()
	spec := e.rt.envs[0].spec
	e.rt.mu.Unlock()
	if spec.Workspace != filepath.Join(fsDir, "workspace") || spec.Tmp != filepath.Join(fsDir, tmpName) {
		t.Fatalf("spec: workspace %q, tmp %q", spec.Workspace, spec.Tmp)
	}
	if e.b.store.stagingDir(key) != filepath.Join(fsDir, stagingName) {
		t.Fatalf("staging %q", e.b.store.stagingDir(key))
	}
	// The double enforces nothing: 4 MiB over a 1Mi limit stay unwalked.
	writeTestFile(t, filepath.Join(spec.Workspace, "big"), 4<<20)
	e.b.store.checkStorage(context.Background())
	if r := e.exec("img", map[string]any{"cmd": []string{"ls"}}); r.ExitCode != 0 || r.Stdout != "big\n" {
		t.Fatalf("exec: %+v", r)
	}
	if n, kills := len(e.b.store.usage), e.b.store.storageKills(e.box("img")); n != 0 || kills != 0 {
		t.Fatalf("the monitor walked a sandbox on an image: %d walks, %d kills", n, kills)
	}
	notes := e.b.Info().Notes
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "enforced by the kernel (kernel quota") }) ||
		!slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "without an image of their own") }) {
		t.Fatalf("notes: %q", notes)
	}
	if resp, body := e.do("DELETE", "/v1/sandboxes/img", nil); resp.StatusCode >= 300 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(e.b.store.boxDir(key)); !os.IsNotExist(err) || fake.Mounts() != 0 {
		t.Fatalf("after delete: %v, %d mounts", err, fake.Mounts())
	}
	e.create("kept", map[string]any{"ephemeralStorageLimit": "1Mi"})
	if fake.Mounts() != 1 {
		t.Fatalf("%d mounts", fake.Mounts())
	}
	if err := e.b.Close(); err != nil || fake.Mounts() != 0 {
		t.Fatalf("close: %v, %d mounts", err, fake.Mounts())
	}
}

// A workspace from an older server (a plain directory) keeps working
// under the monitor when the server now has images.
func TestStorageOldWorkspaceFake(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	c.StorageCheckInterval = 50 * time.Millisecond
	old := start(t, c, &fakeRuntime{})
	old.t = t
	old.create("old", map[string]any{"ephemeralStorageLimit": "1Mi"})
	if err := old.b.Close(); err != nil {
		t.Fatal(err)
	}
	fake := &diskquota.Fake{}
	c.newDisks = func(Config) diskquota.Disks { return fake }
	e := start(t, c, &fakeRuntime{})
	e.t = t
	if e.b.store.onImage(sandboxKey("old")) {
		t.Fatal("an old workspace was taken for an image")
	}
	if r := e.exec("old", map[string]any{"cmd": []string{"sh", "-c", "head -c 3145728 /dev/zero > big; sleep 10"}, "timeoutSeconds": 20}); r.ExitCode != 137 {
		t.Fatalf("old workspace over its limit: %+v", r)
	}
}

// A sandbox whose image cannot be made (no free loop device, say) is
// still created, its limit enforced by the monitor.
func TestStorageImageFailsFake(t *testing.T) {
	t.Parallel()
	fake := &diskquota.Fake{CreateErr: errors.New("no free loop device")}
	e := setup(t, func(c *Config) {
		c.StorageCheckInterval = 50 * time.Millisecond
		c.newDisks = func(Config) diskquota.Disks { return fake }
	})
	e.create("nf", map[string]any{"ephemeralStorageLimit": "1Mi"})
	if e.b.store.onImage(sandboxKey("nf")) {
		t.Fatal("on an image that failed")
	}
	if r := e.exec("nf", map[string]any{"cmd": []string{"sh", "-c", "head -c 3145728 /dev/zero > big; sleep 10"}, "timeoutSeconds": 20}); r.ExitCode != 137 {
		t.Fatalf("over the limit: %+v", r)
	}
}
