package tarball

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// read is one entry read back from an archive.
type read struct {
	hdr  *tar.Header
	body string
}

func readTar(t *testing.T, b []byte) []read {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []read
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, read{h, string(body)})
	}
}

// summary lists entries as "name type mode [-> link] [body]".
func summary(rs []read) string {
	var lines []string
	for _, r := range rs {
		line := fmt.Sprintf("%s %c %04o", r.hdr.Name, r.hdr.Typeflag, r.hdr.Mode)
		if r.hdr.Linkname != "" {
			line += " -> " + r.hdr.Linkname
		}
		if r.body != "" {
			line += " " + strings.TrimSpace(r.body)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := map[string][]byte{
		"b.txt":       []byte("B"),
		"dir/a.txt":   []byte("A"),
		"./dir/b.txt": []byte("DB"),
		"x/y/z/e":     nil,
		"x/f":         []byte("F"),
	}
	if err := WriteFiles(tw, files, mtime); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf.Bytes())
	want := strings.Join([]string{
		"dir/ 5 0755", "dir/b.txt 0 0644 DB", // "./dir/b.txt" sorts first
		"b.txt 0 0644 B",
		"dir/a.txt 0 0644 A",
		"x/ 5 0755", "x/f 0 0644 F",
		"x/y/ 5 0755", "x/y/z/ 5 0755", "x/y/z/e 0 0644",
	}, "\n")
	if s := summary(got); s != want {
		t.Errorf("archive:\n%s\nwant:\n%s", s, want)
	}
	for _, r := range got {
		if !r.hdr.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", r.hdr.Name, r.hdr.ModTime, mtime)
		}
	}
}

func TestWriteFilesBadNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error // a sentinel, or errAny
	}{
		{"", ErrEmptyName},
		{"/etc/x", ErrAbsolute},
		{"a/../../x", ErrDotDot},
		{"a\x00", ErrNUL},
		{".", errAny},
		{"./", errAny},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		err := WriteFiles(tw, map[string][]byte{"good.txt": []byte("g"), c.name: nil}, time.Now())
		if err == nil || (c.err != errAny && !errors.Is(err, c.err)) || !strings.Contains(err.Error(), "file name") {
			t.Errorf("WriteFiles with %q: %v, want %v", c.name, err, c.err)
		}
		if buf.Len() != 0 {
			t.Errorf("WriteFiles with %q wrote %d bytes before failing", c.name, buf.Len())
		}
	}
}

func TestWriteEntry(t *testing.T) {
	t.Parallel()
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	entries := []Entry{
		{Name: "f", Body: []byte("body")},
		{Name: "x", Mode: 0o755, Body: []byte("#!")},
		{Name: "d", Type: tar.TypeDir},
		{Name: "d2", Type: tar.TypeDir, Mode: 0o700},
		{Name: "l", Type: tar.TypeSymlink, Linkname: "../../outside"}, // written unchecked
		{Name: "../evil", Body: []byte("e")},
		{Name: "h", Type: tar.TypeLink, Linkname: "f"},
		{Name: "null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := WriteEntry(tw, e, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf.Bytes())
	want := strings.Join([]string{
		"f 0 0644 body", "x 0 0755 #!", "d 5 0755", "d2 5 0700", "l 2 0644 -> ../../outside",
		"../evil 0 0644 e", "h 1 0644 -> f", "null 3 0644",
	}, "\n")
	if s := summary(got); s != want {
		t.Errorf("archive:\n%s\nwant:\n%s", s, want)
	}
	if h := got[len(got)-1].hdr; h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("device numbers %d,%d", h.Devmajor, h.Devminor)
	}
	if err := WriteEntry(tar.NewWriter(io.Discard), Entry{Name: "bad\x00"}, mtime); err == nil || !strings.Contains(err.Error(), "tar header") {
		t.Errorf("WriteEntry of a NUL name: %v", err)
	}
}

func TestAddFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mtime := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, err := range []error{
		os.WriteFile(filepath.Join(dir, "f.sh"), []byte("#!/bin/sh\n"), 0o750),
		os.Mkdir(filepath.Join(dir, "d"), 0o700),
		os.Symlink("f.sh", filepath.Join(dir, "l")),
		syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644),
		os.Chtimes(filepath.Join(dir, "f.sh"), mtime, mtime),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, c := range []struct {
		p, name string
		follow  bool
	}{
		{"f.sh", "f.sh", false},
		{"d", "sub/d", false},
		{"l", "l", false},
		{"l", "followed", true},
		{"fifo", "fifo", false},
	} {
		p := filepath.Join(dir, c.p)
		stat := os.Lstat
		if c.follow {
			stat = os.Stat
		}
		fi, err := stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := AddFile(tw, p, c.name, fi); err != nil {
			t.Fatalf("AddFile(%s): %v", c.p, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf.Bytes())
	want := strings.Join([]string{"f.sh 0 0750 #!/bin/sh", "sub/d/ 5 0700", "l 2 0777 -> f.sh", "followed 0 0750 #!/bin/sh"}, "\n")
	if s := summary(got); s != want {
		t.Errorf("archive:\n%s\nwant:\n%s", s, want)
	}
	for _, r := range got {
		h := r.hdr
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: owner %d:%d %q:%q, atime %v, ctime %v; want none", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
	}
	if !got[0].hdr.ModTime.Equal(mtime) {
		t.Errorf("mtime %v, want %v", got[0].hdr.ModTime, mtime)
	}

	// A file that changed size since it was described.
	p := filepath.Join(dir, "f.sh")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!"), 0o750); err != nil {
		t.Fatal(err)
	}
	err = AddFile(tar.NewWriter(io.Discard), p, "f.sh", fi)
	if err == nil || !strings.Contains(err.Error(), "changed size") {
		t.Errorf("AddFile of a shrunk file: %v, want a changed-size error", err)
	}
	if err := AddFile(tar.NewWriter(io.Discard), filepath.Join(dir, "gone"), "gone", fi); err == nil {
		t.Error("AddFile of a missing file succeeded")
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Header(fi, "a/b", "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "a/b/" || h.Typeflag != tar.TypeDir || h.Mode&0o777 != 0o755 || h.Format != tar.FormatPAX || h.Uid != 0 || h.Uname != "" {
		t.Errorf("Header of a directory: %+v", h)
	}
}
