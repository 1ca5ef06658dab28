package sdk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bombFile is one file of a zip bomb: size bytes, of zeros unless body is
// set.
type bombFile struct {
	name string
	size int64
	body string
}

// makeBomb returns a gzip tar of files: megabytes of zeros compress to a
// few kilobytes.
func makeBomb(t testing.TB, files ...bombFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		var r io.Reader = io.LimitReader(zeros{}, f.size)
		if f.body != "" {
			r, f.size = strings.NewReader(f.body), int64(len(f.body))
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: f.size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// destWithFiles returns a directory holding keep.txt and big (both "old"),
// the files an extraction must leave alone, and its snapshot.
func destWithFiles(t *testing.T) (string, string) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "dest")
	os.MkdirAll(filepath.Join(dest, "sub"), 0o755)
	os.WriteFile(filepath.Join(dest, "keep.txt"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dest, "big"), []byte("old"), 0o644)
	return dest, snapshot(t, dest)
}

// TestExtractCaps: an archive over a cap of ExtractOptions fails with
// ErrTooLarge before the entry over it is written, and removes every file
// and directory the extraction had created, never one that was there.
func TestExtractCaps(t *testing.T) {
	t.Parallel()
	many := make([]bombFile, 12)
	for i := range many {
		many[i] = bombFile{name: fmt.Sprintf("d%d/f", i), body: "x"}
	}
	cases := []struct {
		name  string
		files []bombFile
		opts  ExtractOptions
		ok    bool
	}{
		{"gzip bomb over MaxBytes", []bombFile{{name: "new/a.txt", body: "first"}, {name: "new/deep/zeros", size: 6 << 20}, {name: "big", size: 64 << 20}},
			ExtractOptions{MaxBytes: 8 << 20}, false},
		{"bomb over the default cap", []bombFile{{name: "new/a.txt", body: "first"}, {name: "big", size: DefaultExtractMaxBytes + 1}},
			ExtractOptions{}, false},
		{"too many entries", many, ExtractOptions{MaxEntries: 10}, false},
		{"exactly at the caps", []bombFile{{name: "new/a", size: 4 << 20}, {name: "new/b", size: 4 << 20}},
			ExtractOptions{MaxBytes: 8 << 20, MaxEntries: 2}, true},
		{"unlimited", []bombFile{{name: "big", size: 9 << 20}}, ExtractOptions{MaxBytes: Unlimited, MaxEntries: Unlimited}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest, before := destWithFiles(t)
			var archive io.Reader
			if tc.files[len(tc.files)-1].size > 1<<30 {
				// The header alone: the cap refuses the entry before
				// reading its content.
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				tw.WriteHeader(&tar.Header{Name: "new/a.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
				tw.Write([]byte("first"))
				tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: tc.files[1].size, Typeflag: tar.TypeReg})
				tw.Flush()
				archive = &buf
			} else {
				archive = bytes.NewReader(makeBomb(t, tc.files...))
			}
			err := ExtractTarGzWith(archive, dest, tc.opts)
			if tc.ok {
				if err != nil {
					t.Fatalf("within the caps: %v", err)
				}
				for _, f := range tc.files {
					if fi, err := os.Stat(filepath.Join(dest, f.name)); err != nil || fi.Size() != f.size {
						t.Errorf("%s: %v, want %d bytes", f.name, err, f.size)
					}
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v: want ErrTooLarge", err)
			}
			if after := snapshot(t, dest); after != before {
				t.Errorf("dest changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// TestExtractFailureRemovesDest: a failed extraction into a directory it
// had to create removes that directory and the parents it made.
func TestExtractFailureRemovesDest(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dest := filepath.Join(base, "a", "b", "dest")
	err := ExtractTarGzWith(bytes.NewReader(makeBomb(t, bombFile{name: "x/y", body: "1"}, bombFile{name: "z", size: 2 << 20})),
		dest, ExtractOptions{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v: want ErrTooLarge", err)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("base holds %v after the failed extraction", entries)
	}
}

// TestDownloadToBomb: a backend that answers a download with a gzip bomb
// gets ErrTooLarge from DownloadToWith and DownloadTo, nothing is left
// behind, and no more than the cap reaches the disk.
func TestDownloadToBomb(t *testing.T) {
	t.Parallel()
	c, fb := setup(t)
	bomb := makeBomb(t, bombFile{name: "out/ok.txt", body: "fine"}, bombFile{name: "out/zeros", size: 96 << 20})
	fb.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/files/download") {
			return false
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(bomb)
		return true
	})
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "dl")
	err := c.DownloadToWith(ctx, "s", "", dest, ExtractOptions{MaxBytes: 32 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("DownloadToWith: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "MaxBytes") {
		t.Errorf("error %q does not name the cap", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dest left behind: %v", err)
	}
	// Within the cap the same archive extracts, its zeros as holes.
	if err := c.DownloadToWith(ctx, "s", "", dest, ExtractOptions{MaxBytes: 96<<20 + 4}); err != nil {
		t.Fatalf("DownloadToWith within the cap: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "out", "ok.txt")); string(got) != "fine" {
		t.Errorf("ok.txt = %q", got)
	}
}
