package localbackend

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeSparse makes the file name of size bytes, all holes but data at
// each offset of at.
func writeSparse(t testing.TB, name string, size int64, data []byte, at ...int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range at {
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestDownloadLimits: a src over MaxDownloadBytes (sparse files counted
// at their apparent size) or MaxDownloadEntries is answered 413, with the
// limit and the size found and no host path, before any archive is sent;
// one within the limits downloads.
func TestDownloadLimits(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxDownloadBytes = 64 << 20; c.MaxDownloadEntries = 20 })
	e.create("dl", map[string]any{"ttlSeconds": 60})
	ws := e.b.store.workspacePath(sandboxKey("dl"))
	// 96 MiB of apparent size in 4 KiB of data.
	os.MkdirAll(filepath.Join(ws, "sparse"), 0o755)
	writeSparse(t, filepath.Join(ws, "sparse", "big"), 96<<20, []byte("data"), 0)
	os.MkdirAll(filepath.Join(ws, "many"), 0o755)
	for i := range 25 {
		os.WriteFile(filepath.Join(ws, "many", strconv.Itoa(i)), []byte("x"), 0o644)
	}
	os.WriteFile(filepath.Join(ws, "small.txt"), []byte("fine"), 0o644)
	for _, tc := range []struct {
		src, want string
	}{
		{"/workspace", `src "/workspace" holds more than 20 entries`},
		{"/workspace/sparse", "holds 100663296 bytes of file contents (sparse files counted at their full size), over the download limit of 67108864 bytes"},
		{"/workspace/sparse/big", "over the download limit of 67108864 bytes"},
		{"/workspace/many", "holds more than 20 entries, over the download limit of 20 entries"},
	} {
		resp, body := e.do("GET", "/v1/sandboxes/dl/files/download?src="+tc.src, nil)
		expectError(t, resp, body, 413, tc.want)
		if strings.Contains(string(body), e.b.cfg.DataDir) {
			t.Errorf("413 names a host path: %s", body)
		}
	}
	resp, body := e.do("GET", "/v1/sandboxes/dl/files/download?src=/workspace/small.txt", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("download within the limits: %d %s", resp.StatusCode, body)
	}
	if h := readTarGz(t, body); len(h) != 1 || h["small.txt"] == nil {
		t.Errorf("archive holds %v", keys(h))
	}
	// The limits are in GET /v1/info.
	info, err := e.client.GetInfoWithResponse(context.Background())
	if err != nil || info.JSON200 == nil || info.JSON200.Limits == nil {
		t.Fatalf("info: %v", err)
	}
	if l := info.JSON200.Limits; l.MaxDownloadBytes == nil || *l.MaxDownloadBytes != 64<<20 || l.MaxDownloadEntries == nil || *l.MaxDownloadEntries != 20 {
		t.Errorf("info limits: maxDownloadBytes %v, maxDownloadEntries %v", l.MaxDownloadBytes, l.MaxDownloadEntries)
	}
}

// TestDownloadGrowsPastLimit: a file that grows past MaxDownloadBytes
// after the download was admitted ends the archive with an ErrTooLarge
// error instead of sending more than the limit.
func TestDownloadGrowsPastLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxDownloadBytes = 16 << 20 })
	e.create("grow", map[string]any{"ttlSeconds": 60})
	ws := e.b.store.workspacePath(sandboxKey("grow"))
	// a: 4 MiB that do not compress, so the archiver blocks in it until
	// the body is read; b: small when measured, 1 GiB when archived.
	noise := make([]byte, 4<<20)
	rand.Read(noise)
	os.WriteFile(filepath.Join(ws, "a"), noise, 0o644)
	os.WriteFile(filepath.Join(ws, "b"), []byte("b"), 0o644)
	rc, err := e.b.store.download(context.Background(), "grow", "/workspace")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := os.Truncate(filepath.Join(ws, "b"), 1<<30); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("archive of a grown tree: %v after %d bytes, want ErrTooLarge", err, n)
	}
	if n > 16<<20 {
		t.Errorf("%d bytes sent, over the limit", n)
	}
}

// TestDownloadSparse: a sparse file is archived with its holes as zeros,
// and the archiver reads its data only (measured with the kernel's count
// of bytes read by this process). Not parallel: other tests' reads would
// count too.
func TestDownloadSparse(t *testing.T) {
	if _, err := os.ReadFile("/proc/self/io"); err != nil {
		t.Skipf("no /proc/self/io to count reads: %v", err)
	}
	dir := t.TempDir()
	const size = 128 << 20
	data := bytes.Repeat([]byte("nox!"), 2048) // 8 KiB
	writeSparse(t, filepath.Join(dir, "sparse"), size, data, 1<<20, 100<<20)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("plain"), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	b := &downloadBudget{src: "/workspace", maxBytes: size + 5, maxEntries: 2}
	if err := checkDownload(context.Background(), root, ".", b); err != nil {
		t.Fatalf("within the limits: %v", err)
	}
	var archive bytes.Buffer
	before := readBytes(t)
	zw, _ := gzip.NewWriterLevel(&archive, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := writeTar(context.Background(), root, ".", tw, b); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	read := readBytes(t) - before
	t.Logf("archived %d bytes (%d of data) reading %d bytes; archive %d bytes", size, 2*len(data), read, archive.Len())
	if read > 1<<20 {
		t.Errorf("archiving a sparse file of %d data bytes read %d bytes: holes were read", 2*len(data), read)
	}
	// The archive holds the whole file: zeros where the holes are.
	want := make([]byte, size)
	copy(want[1<<20:], data)
	copy(want[100<<20:], data)
	zr, err := gzip.NewReader(&archive)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	got := map[string][32]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, tr)
		got[hdr.Name] = [32]byte(h.Sum(nil))
	}
	if got["sparse"] != sha256.Sum256(want) || got["plain"] != sha256.Sum256([]byte("plain")) || len(got) != 2 {
		t.Errorf("archive content differs from the files (%d entries)", len(got))
	}
}

// readBytes is this process's count of bytes read (rchar of /proc/self/io).
func readBytes(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// TestMeasureTreeBounded: measuring a tree stops soon after the entry
// limit, however many entries there are, follows no link, and a chain of
// directories too deep to archive cheaply is refused.
func TestMeasureTreeBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		sub := filepath.Join(dir, fmt.Sprint("d", i))
		os.Mkdir(sub, 0o755)
		for j := range 600 {
			os.WriteFile(filepath.Join(sub, strconv.Itoa(j)), []byte("12345"), 0o644)
		}
	}
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	ctx := context.Background()
	ts, err := measureTree(ctx, root, ".", 100, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if ts.entries <= 100 || ts.entries > 100+256 {
		t.Errorf("counted %d entries with a limit of 100; want the walk cut after one more batch", ts.entries)
	}
	ts, err = measureTree(ctx, root, ".", 1<<20, 1<<40)
	if err != nil || ts.entries != 3+1800 || ts.bytes != 5*1800 || ts.depths != 3+2*1800 {
		t.Errorf("whole tree: %+v, %v; want 1803 entries, 9000 bytes, depths 3603", ts, err)
	}
	// A link is counted, never followed.
	os.Symlink("/", filepath.Join(dir, "d0", "root"))
	if ts, _ := measureTree(ctx, root, ".", 1<<20, 1<<40); ts.entries != 1804 {
		t.Errorf("with a link to /: %d entries, want 1804", ts.entries)
	}

	// A chain of 90 directories: few entries, but 4095 levels to resolve.
	deep := t.TempDir()
	os.MkdirAll(filepath.Join(deep, strings.Repeat("d/", 90)), 0o755)
	droot, _ := os.OpenRoot(deep)
	defer droot.Close()
	b := &downloadBudget{src: "/workspace", maxBytes: 1 << 30, maxEntries: 100}
	if err := checkDownload(ctx, droot, ".", b); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "too deeply") {
		t.Errorf("a chain of 90 directories with a limit of 100 entries: %v, want ErrTooLarge (too deeply)", err)
	}
	b.maxEntries = 200
	if err := checkDownload(ctx, droot, ".", b); err != nil {
		t.Errorf("the same chain with a limit of 200 entries: %v", err)
	}
}
