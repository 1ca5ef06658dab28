package diskquota

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// probe returns the real Images, or skips (fails with
// NOX_REQUIRE_ISOLATION=1) where they cannot work.
func probe(t *testing.T) *Images {
	t.Helper()
	x, err := Probe(context.Background(), t.TempDir())
	if err != nil {
		if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" {
			t.Fatalf("probe: %v", err)
		}
		t.Skipf("no per-sandbox images here: %v", err)
	}
	return x
}

// An image's file system holds at most its size in bytes and
// Inodes(size) inodes; writes beyond fail with ENOSPC, deleting makes
// room, and a remount keeps the files.
func TestImageLimits(t *testing.T) {
	t.Parallel()
	x := probe(t)
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "fs")
	const size = 8 << 20
	if err := x.Create(context.Background(), img, mnt, size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Unmount(mnt) })
	if !Mounted(mnt) {
		t.Fatal("not mounted")
	}
	// Bytes: 16 MiB into an 8 MiB file system.
	f, err := os.Create(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	buf := make([]byte, 1<<20)
	for range 16 {
		m, err := f.Write(buf)
		n += int64(m)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("write: %v", err)
			}
			break
		}
	}
	f.Close()
	if n > size || n < size/2 {
		t.Fatalf("wrote %d bytes into a %d-byte image", n, size)
	}
	full := allocated(t, img)
	if err := os.Remove(filepath.Join(mnt, "big")); err != nil {
		t.Fatal(err)
	}
	// discard: the deleted file's blocks go back to the host.
	for i := 0; allocated(t, img) > full-size/2; i++ {
		if i == 100 {
			t.Fatalf("the image still holds %d bytes (%d when full)", allocated(t, img), full)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Inodes: empty files cost an inode each.
	var files int64
	for i := range 4 * MinInodes {
		f, err := os.Create(filepath.Join(mnt, fmt.Sprint(i)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("create: %v", err)
			}
			break
		}
		f.Close()
		files++
	}
	if files > Inodes(size) || files < Inodes(size)/2 {
		t.Fatalf("created %d files; inodes %d", files, Inodes(size))
	}
	// Unmount and remount: the files stay; a second Mount is a no-op.
	if err := x.Unmount(mnt); err != nil || Mounted(mnt) {
		t.Fatalf("unmount: %v", err)
	}
	for range 2 {
		if err := x.Mount(context.Background(), img, mnt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, "0")); err != nil {
		t.Fatalf("after remount: %v", err)
	}
	// A lazily unmounted file system still held open (here by a file)
	// is mounted again through its own loop device: one instance, which
	// sees the held file's writes.
	if err := os.Remove(filepath.Join(mnt, "1")); err != nil {
		t.Fatal(err)
	}
	held, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if err := x.Mount(context.Background(), img, mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := held.WriteString("same"); err != nil {
		t.Fatal(err)
	}
	held.Close()
	if b, err := os.ReadFile(filepath.Join(mnt, "held")); err != nil || string(b) != "same" {
		t.Fatalf("remount of a held file system: %q %v", b, err)
	}
	if err := x.Unmount(mnt); err != nil || Mounted(mnt) {
		t.Fatalf("unmount: %v", err)
	}
	if err := x.Unmount(mnt); err != nil {
		t.Fatalf("unmount of nothing: %v", err)
	}
}

// allocated returns the host bytes allocated to the file name.
func allocated(t *testing.T, name string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// Concurrent creates each get a loop device of their own.
func TestImagesConcurrent(t *testing.T) {
	t.Parallel()
	x := probe(t)
	dir := t.TempDir()
	errs := make(chan error, 8)
	for i := range cap(errs) {
		go func() {
			mnt := filepath.Join(dir, fmt.Sprint("fs", i))
			err := x.Create(context.Background(), filepath.Join(dir, fmt.Sprint("img", i)), mnt, 2<<20)
			if err == nil {
				err = os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o600)
				err = errors.Join(err, x.Unmount(mnt))
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
