package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
)

// bomb returns a gzip tar holding a small file, then one of size zero
// bytes; with headerOnly the big file's content is left out (an extractor
// that honours its cap never reads it).
func bomb(t *testing.T, size int64, headerOnly bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "out/ok.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("ok"))
	tw.WriteHeader(&tar.Header{Name: "out/zeros", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	if !headerOnly {
		tw.Write(make([]byte, size))
		tw.Close()
	} else {
		tw.Flush()
	}
	gz.Close()
	return buf.Bytes()
}

// TestDownloadExtractCaps: nox download --extract refuses a gzip bomb over
// --max-size (default 1Gi) or --max-entries and leaves nothing behind;
// within the caps it extracts. Not parallel: see nox.
func TestDownloadExtractCaps(t *testing.T) {
	b, url := newTestBackend(t, testbackend.Options{})
	small := bomb(t, 8<<20, false)
	huge := bomb(t, 2<<30, true)
	var body []byte
	b.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/files/download") {
			return false
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(body)
		return true
	})
	for _, tc := range []struct {
		name    string
		archive []byte
		flags   []string
		code    int
		stderr  string
	}{
		{"over --max-size", small, []string{"--max-size", "4Mi"}, 1, "more than 4194304 bytes"},
		{"over the default cap", huge, nil, 1, "more than 1073741824 bytes"},
		{"over --max-entries", small, []string{"--max-entries", "1"}, 1, "more than 1 entries"},
		{"within --max-size", small, []string{"--max-size", "9Mi"}, 0, ""},
		{"unlimited", small, []string{"--max-size", "unlimited", "--max-entries", "-1"}, 0, ""},
		{"bad size", small, []string{"--max-size", "lots"}, 2, "--max-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body = tc.archive
			dest := filepath.Join(t.TempDir(), "dest")
			args := append([]string{"--base-url", url, "download", "s", "--extract", dest}, tc.flags...)
			res := nox(t, "", args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, tc.code, tc.stderr)
			}
			_, err := os.Lstat(dest)
			if tc.code != 0 {
				if !os.IsNotExist(err) {
					t.Errorf("%s left behind (%v)", dest, err)
				}
				return
			}
			fi, err := os.Stat(filepath.Join(dest, "out", "zeros"))
			if err != nil || fi.Size() != 8<<20 {
				t.Errorf("out/zeros: %v", err)
			}
		})
	}
}
