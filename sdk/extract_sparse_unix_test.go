//go:build unix

package sdk

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestExtractWritesHoles: a downloaded file of mostly zeros takes the disk
// space of its data, not of its size (where the file system has holes).
func TestExtractWritesHoles(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	const size = 64 << 20
	archive := makeBomb(t, bombFile{name: "sparse", size: size})
	if err := ExtractTarGz(bytes.NewReader(archive), dest); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dest, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Fatalf("size %d, want %d", fi.Size(), size)
	}
	used := fi.Sys().(*syscall.Stat_t).Blocks * 512
	if used >= size/2 {
		t.Errorf("a file of %d zero bytes uses %d bytes of disk", size, used)
	}
	t.Logf("%d bytes of zeros take %d bytes of disk", size, used)
}
