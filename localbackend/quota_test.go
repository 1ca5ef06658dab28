package localbackend

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
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

// quotaEnv is a real backend whose sandboxes get per-sandbox images; it
// skips (fails with NOX_REQUIRE_ISOLATION=1) where images cannot work.
func quotaEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	e := realEnv(t, mod)
	e.t = t
	if e.b.store.disks == nil {
		if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" {
			t.Fatal("per-sandbox images unavailable (root, /dev/loop-control and mkfs.ext4 needed)")
		}
		t.Skip("per-sandbox images unavailable here (root, /dev/loop-control and mkfs.ext4 needed)")
	}
	return e
}

// fsUsed returns the bytes and inodes in use on the file system of
// sandbox id's image, and its size.
func fsUsed(t *testing.T, e *testEnv, id string) (used, size int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(e.b.store.fsPath(sandboxKey(id)), &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize)
}

// zeroTarGz is a gzip tar of one file of n zero bytes (a "gzip bomb":
// n/1000 bytes compressed).
func zeroTarGz(t *testing.T, name string, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The kernel enforces ephemeralStorage on a sandbox's image: a deep tree
// does not switch it off (finding 1), parallel writers cannot overshoot or
// ratchet it up (finding 2), files cost inodes (finding 3), /tmp shares
// the budget, and the monitor never walks the workspace (idle cost).
func TestRealQuotaWrites(t *testing.T) {
	t.Parallel()
	for _, tier := range []string{IsolationAuto, IsolationRootNamespaces, IsolationLandlock} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			testQuotaWrites(t, tier)
		})
	}
}

func testQuotaWrites(t *testing.T, tier string) {
	e := quotaEnv(t, func(c *Config) {
		c.StorageCheckInterval = 100 * time.Millisecond
		c.Isolation = tier
	})
	e.create("q", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "64Mi"})
	const limit = 64 << 20
	sh := func(script string) (int, string) {
		r := e.exec("q", map[string]any{"cmd": []string{"sh", "-c", script}, "timeoutSeconds": 60})
		return int(r.ExitCode), r.Stdout + r.Stderr
	}
	// Finding 1: 18 nested directories of 250-character names (a path
	// longer than PATH_MAX), then 4 x 50 MiB.
	deep := `perl -e '$n="0"x250; for (1..18) { mkdir $n or die; chdir $n or die } for $i (1..4) { open(F, ">f$i") or die; for (1..50) { print F "\0" x 1048576 or die "write: $!\n" } close(F) or die "close: $!\n" }'`
	code, out := sh(deep)
	if code == 0 || !strings.Contains(out, "No space left on device") {
		t.Fatalf("deep writes: exit %d: %s", code, out)
	}
	if used, size := fsUsed(t, e, "q"); used > limit || size > limit {
		t.Fatalf("after the deep writes: %d bytes used of %d, limit %d", used, size, limit)
	}
	// /tmp shares the budget (the tiers without a mount namespace have
	// no /tmp of the sandbox's own at /tmp).
	if tier != IsolationLandlock {
		if code, out := sh(`dd if=/dev/zero of=/tmp/t bs=1M count=8`); code == 0 || !strings.Contains(out, "No space left on device") {
			t.Fatalf("/tmp on a full sandbox: exit %d: %s", code, out)
		}
	}
	clean := `rm -rf /workspace/0* /tmp/t && echo gone`
	if tier == IsolationLandlock {
		// /tmp is the host's there: a /tmp/t of someone else's must not
		// matter.
		clean = `rm -rf /workspace/0* && echo gone`
	}
	if code, out := sh(clean); code != 0 || !strings.Contains(out, "gone") {
		t.Fatalf("rm: exit %d: %s", code, out)
	}
	// Finding 2: 4 parallel dd of 64 MiB, three times: never above the
	// limit, and nothing left above it.
	for i := range 3 {
		code, out := sh(`for i in 1 2 3 4; do dd if=/dev/zero of=p$i bs=1M count=64 2>/dev/null & done; wait; echo done`)
		used, _ := fsUsed(t, e, "q")
		if code != 0 || !strings.Contains(out, "done") || used > limit {
			t.Fatalf("parallel dd #%d: exit %d, %d bytes used (limit %d): %s", i, code, used, limit, out)
		}
	}
	// Finding 3: files cost inodes: at most diskquota.Inodes(limit).
	code, out = sh(`rm -f p*; mkdir many && cd many && seq 1 10000 | xargs touch 2>/dev/null; ls | wc -l`)
	var files int64
	if _, err := fmt.Sscan(strings.TrimSpace(out), &files); err != nil || files >= 10000 || files > diskquota.Inodes(limit) {
		t.Fatalf("inodes: exit %d, %d files (inode limit %d): %s", code, files, diskquota.Inodes(limit), out)
	}
	// Idle cost: the monitor has measured nothing, however many files.
	time.Sleep(300 * time.Millisecond)
	e.b.store.checkStorage(context.Background())
	if n := len(e.b.store.usage); n != 0 {
		t.Fatalf("the monitor walks a sandbox on an image: %d walks", n)
	}
	if !slices.ContainsFunc(e.b.Info().Notes, func(n string) bool {
		return strings.Contains(n, "enforced by the kernel (kernel quota: per-sandbox ext4 image)")
	}) {
		t.Fatalf("info notes: %q", e.b.Info().Notes)
	}
}

// Uploads stage on the sandbox's image: concurrent gzip bombs cannot
// stage more than the limit (finding 4), running out of space is a 507
// naming no host path (finding 11), a rejected upload leaves nothing, and
// directories an upload creates are the sandbox's (finding 13b).
func TestRealQuotaUploads(t *testing.T) {
	t.Parallel()
	e := quotaEnv(t, nil)
	e.create("u", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "64Mi"})
	const limit = 64 << 20
	bomb := zeroTarGz(t, "zeros", 256<<20)
	var wg sync.WaitGroup
	statuses := make([]string, 4)
	var peak int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				if used, _ := fsUsed(t, e, "u"); used > peak {
					peak = used
				}
			}
		}
	}()
	for i := range statuses {
		wg.Go(func() {
			resp, body := e.do("POST", "/v1/sandboxes/u/files/upload?dest=/workspace/b"+fmt.Sprint(i), bomb)
			statuses[i] = fmt.Sprint(resp.StatusCode, " ", string(body))
		})
	}
	wg.Wait()
	close(stop)
	<-stopped
	for _, s := range statuses {
		if !strings.HasPrefix(s, "507 ") || !strings.Contains(s, "no space left in the sandbox's ephemeral storage") || strings.Contains(s, e.b.cfg.DataDir) {
			t.Errorf("bomb: %s", s)
		}
	}
	if peak > limit {
		t.Errorf("staging peaked at %d bytes, limit %d", peak, limit)
	}
	r := e.exec("u", map[string]any{"cmd": []string{"sh", "-c", "ls -A /workspace; ls -A /tmp"}})
	if r.ExitCode != 0 || r.Stdout != "" {
		t.Fatalf("rejected uploads left files: %+v", r)
	}
	if ents, err := os.ReadDir(filepath.Join(e.b.store.fsPath(sandboxKey("u")), stagingName)); err != nil || len(ents) != 0 {
		t.Fatalf("staging left: %v %v", ents, err)
	}
	// Finding 13b: a dest the upload creates is writable by the sandbox.
	up := tarGz(t, []tarEntry{{name: "f.txt", body: "hi"}})
	if resp, body := e.do("POST", "/v1/sandboxes/u/files/upload?dest=/workspace/new/dir", up); resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	r = e.exec("u", map[string]any{"cmd": []string{"sh", "-c", "touch /workspace/new/dir/x /workspace/new/y && cat /workspace/new/dir/f.txt"}})
	if r.ExitCode != 0 || r.Stdout != "hi" {
		t.Fatalf("upload-created dirs: %+v", r)
	}
}

// A sandbox's image survives a restart, a mount left behind by a server
// that died is reused, and delete removes the image and its mount.
func TestRealQuotaRestart(t *testing.T) {
	t.Parallel()
	e := quotaEnv(t, nil)
	e.create("r", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "16Mi"})
	if r := e.exec("r", map[string]any{"cmd": []string{"sh", "-c", "echo kept > k"}}); r.ExitCode != 0 {
		t.Fatalf("write: %+v", r)
	}
	cfg := e.b.cfg
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	key := sandboxKey("r")
	mnt := filepath.Join(cfg.DataDir, "sandboxes", key, fsName)
	if diskquota.Mounted(mnt) {
		t.Fatal("Close left the image mounted")
	}
	// A server that died left it mounted.
	x, err := diskquota.Probe(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Mount(context.Background(), filepath.Join(cfg.DataDir, "sandboxes", key, imageName), mnt); err != nil {
		t.Fatal(err)
	}
	cfg.newDisks = nil
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e2 := serve(t, b, "")
	e2.t = t
	if r := e2.exec("r", map[string]any{"cmd": []string{"cat", "k"}}); r.ExitCode != 0 || r.Stdout != "kept\n" {
		t.Fatalf("after restart: %+v", r)
	}
	if resp, body := e2.do("DELETE", "/v1/sandboxes/r", nil); resp.StatusCode != 204 && resp.StatusCode != 200 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if diskquota.Mounted(mnt) {
		t.Fatal("delete left the image mounted")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "sandboxes", key)); !os.IsNotExist(err) {
		t.Fatalf("delete left the sandbox dir: %v", err)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
