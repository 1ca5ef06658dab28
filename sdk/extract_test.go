package sdk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// entry describes one tar entry for tests.
type entry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, Size: int64(len(e.body)),
			ModTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: map[string]string{"comment": "x"}}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}

// snapshot lists every path under dir with its type and content.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			lines = append(lines, "error "+err.Error())
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + d.Type().String()
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hostileLayout makes base/outside/secret and base/dest with a symlink
// dest/esc pointing outside, and returns base and dest.
func hostileLayout(t testing.TB) (base, dest string) {
	base = t.TempDir()
	dest = filepath.Join(base, "dest")
	os.MkdirAll(filepath.Join(base, "outside"), 0o755)
	os.WriteFile(filepath.Join(base, "outside", "secret"), []byte("secret"), 0o644)
	os.MkdirAll(dest, 0o755)
	os.Symlink("../outside", filepath.Join(dest, "esc"))
	os.Symlink("../outside/secret", filepath.Join(dest, "escfile"))
	return base, dest
}

func TestExtractHostile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}},
		{"nested dotdot", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []entry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}},
		{"windows absolute", []entry{{name: `C:\evil`, typ: tar.TypeReg, body: "x"}}},
		{"empty name", []entry{{name: "", typ: tar.TypeReg, body: "x"}}},
		{"absolute symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}}},
		{"dotdot symlink", []entry{{name: "a/l", typ: tar.TypeSymlink, link: "../../outside"}}},
		{"empty symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: ""}}},
		{"symlink chain escape", []entry{
			{name: "l", typ: tar.TypeSymlink, link: "."},
			{name: "m", typ: tar.TypeSymlink, link: "l/.."},
			{name: "m/evil", typ: tar.TypeReg, body: "x"},
		}},
		{"symlink then write through", []entry{
			{name: "d", typ: tar.TypeSymlink, link: "esc"},
			{name: "d/secret", typ: tar.TypeReg, body: "pwned"},
		}},
		{"write through existing link dir", []entry{{name: "esc/secret", typ: tar.TypeReg, body: "pwned"}}},
		{"write through existing link dir (dir)", []entry{{name: "esc/newdir", typ: tar.TypeDir}}},
		{"hardlink escape", []entry{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}}},
		{"hardlink absolute", []entry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}},
		{"hardlink to escaping symlink", []entry{{name: "h", typ: tar.TypeLink, link: "escfile"}}},
		{"hardlink through link dir", []entry{{name: "h", typ: tar.TypeLink, link: "esc/secret"}}},
		{"char device", []entry{{name: "null", typ: tar.TypeChar}}},
		{"block device", []entry{{name: "sda", typ: tar.TypeBlock}}},
		{"fifo", []entry{{name: "fifo", typ: tar.TypeFifo}}},
		{"unknown type", []entry{{name: "x", typ: 'Z'}}},
		{"file replacing root", []entry{{name: ".", typ: tar.TypeReg, body: "x"}}},
		{"symlink replacing root", []entry{{name: ".", typ: tar.TypeSymlink, link: "x"}}},
		{"hardlink replacing root", []entry{{name: ".", typ: tar.TypeLink, link: "x"}}},
		{"hardlink to root", []entry{{name: "h", typ: tar.TypeLink, link: "."}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, dest := hostileLayout(t)
			before := snapshot(t, filepath.Join(base, "outside"))
			err := ExtractTarGz(bytes.NewReader(gzipBytes(makeTar(t, tc.entries...))), dest)
			if err == nil {
				t.Fatal("hostile archive extracted without error")
			}
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("error %v: want ErrUnsafeArchive", err)
			}
			if after := snapshot(t, filepath.Join(base, "outside")); after != before {
				t.Errorf("outside changed:\n%s\nwas:\n%s", after, before)
			}
			entries, _ := os.ReadDir(base)
			if len(entries) != 2 {
				t.Errorf("base holds %d entries, want dest and outside", len(entries))
			}
		})
	}
}

// sparseBomb is `truncate -s 1G big; tar --sparse --format=pax -cf - big |
// gzip -9 | base64`: 352 bytes that a naive extractor turns into a 1 GiB file.
const sparseBomb = "H4sIAAAAAAACA+3UsU7DMBAGYM9+ijyBc2c7djtkBSaEhHgAAxYyahpkB6ni6XE7hUi0A1Cp4v8WR/95iHU+q/Yu7G5ieI65tI/pRfwBqpy1h7VarqS9F9wZYjLW2ZozeWdEsxNn8F6mkOuviP9J6+b69kGVt5BLVEN4HXPPcpGmbU1JajNPt2GIfb0x0th5nGPYlPQR+9pE4y2vtJWGmmFKdTv7dWfNmmilvPOejGPeV8PR6tP3VQE/o9rau/tD667SJirutOdffghOzD/vv7/Ov/W2Ew2dc/7zOE7H9p2qLw93IVjO5pQwTwAAAAAAAAAAAAAAAAAAAACX5hOz38etACgAAA=="

func TestExtractSparse(t *testing.T) {
	t.Parallel()
	data, err := base64.StdEncoding.DecodeString(sparseBomb)
	assertNoErr(t, err)
	dir := t.TempDir()
	err = ExtractTarGz(bytes.NewReader(data), dir)
	assertIs(t, err, ErrUnsafeArchive)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("sparse entry extracted: %v", entries)
	}
	// An old-format GNU sparse entry is refused too (here the reader
	// already rejects the empty sparse map).
	if err := ExtractTar(bytes.NewReader(makeTar(t, entry{name: "old", typ: tar.TypeGNUSparse})), t.TempDir()); err == nil {
		t.Error("old GNU sparse entry extracted")
	}
}

func TestExtractGood(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "dir")
	archive := makeTar(t,
		entry{name: "./", typ: tar.TypeDir, mode: 0o755},
		entry{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		entry{name: "ro/file", typ: tar.TypeReg, body: "r", mode: 0o400},
		entry{name: "a/b/c.sh", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		entry{name: "a/link", typ: tar.TypeSymlink, link: "b/c.sh"},
		entry{name: "a/up", typ: tar.TypeSymlink, link: "../ro/file"},
		entry{name: "hard", typ: tar.TypeLink, link: "a/b/c.sh"},
		entry{name: "a/b/c.sh", typ: tar.TypeReg, body: "replaced", mode: 0o755},
		entry{name: "a/link", typ: tar.TypeReg, body: "no longer a link"},
		entry{name: "dangling", typ: tar.TypeSymlink, link: "missing"},
		entry{name: "empty/", typ: tar.TypeDir, mode: 0o700},
		entry{name: "g", typ: tar.TypeXGlobalHeader},
	)
	// Plain tar (no gzip) through ExtractTarGz.
	assertNoErr(t, ExtractTarGz(bytes.NewReader(archive), dir))
	assertFile(t, filepath.Join(dir, "a/b/c.sh"), "replaced", 0o755)
	assertFile(t, filepath.Join(dir, "hard"), "#!/bin/sh\n", 0o755)
	assertFile(t, filepath.Join(dir, "a/link"), "no longer a link", 0o644)
	assertFile(t, filepath.Join(dir, "ro/file"), "r", 0o400)
	if l, _ := os.Readlink(filepath.Join(dir, "a/up")); l != "../ro/file" {
		t.Errorf("a/up -> %q", l)
	}
	fi, err := os.Stat(filepath.Join(dir, "ro"))
	assertNoErr(t, err)
	assertEq(t, "ro mode", fi.Mode().Perm(), os.FileMode(0o755)) // u+rwx kept usable
	assertEq(t, "mtime", fi.ModTime().UTC(), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	fi, err = os.Stat(filepath.Join(dir, "empty"))
	assertNoErr(t, err)
	assertEq(t, "empty mode", fi.Mode().Perm(), os.FileMode(0o700))

	// Errors: empty input, corrupt gzip, truncated tar, a file where a
	// directory must go.
	if err := ExtractTarGz(bytes.NewReader(nil), t.TempDir()); err == nil {
		t.Error("empty input accepted")
	}
	if err := ExtractTarGz(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), t.TempDir()); err == nil {
		t.Error("corrupt gzip accepted")
	}
	if err := ExtractTar(bytes.NewReader(archive[:700]), t.TempDir()); err == nil {
		t.Error("truncated tar accepted")
	}
	if err := ExtractTar(bytes.NewReader(makeTar(t, entry{name: "f", typ: tar.TypeReg}, entry{name: "f/g", typ: tar.TypeReg})), t.TempDir()); err == nil {
		t.Error("file below a file accepted")
	}
	if err := ExtractTar(bytes.NewReader(makeTar(t, entry{name: "d/x", typ: tar.TypeReg}, entry{name: "d", typ: tar.TypeReg})), t.TempDir()); err == nil {
		t.Error("file replacing a non-empty directory accepted")
	}
	if err := ExtractTar(bytes.NewReader(nil), filepath.Join(dir, "a/b/c.sh", "sub")); err == nil {
		t.Error("extracting below a file accepted")
	}
}

func TestWriteTarRoundTrip(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "a/b.txt"), "b", 0o600)
	mustWrite(t, filepath.Join(src, "x.sh"), "x", 0o755)
	assertNoErr(t, os.MkdirAll(filepath.Join(src, "e/f"), 0o750))
	assertNoErr(t, os.Symlink("a/b.txt", filepath.Join(src, "l")))
	var buf bytes.Buffer
	assertNoErr(t, WriteTarGz(&buf, src))
	dst := t.TempDir()
	assertNoErr(t, ExtractTarGz(&buf, dst))
	if a, b := snapshot(t, src), snapshot(t, dst); a != b {
		t.Errorf("round trip differs:\n%s\nvs\n%s", a, b)
	}
	if err := WriteTarGz(&buf, filepath.Join(src, "missing")); err == nil {
		t.Error("missing source accepted")
	}
	unreadable := filepath.Join(src, "e/secret")
	mustWrite(t, unreadable, "s", 0o000)
	if os.Getuid() != 0 {
		if err := WriteTar(&buf, src); err == nil {
			t.Error("unreadable file archived without error")
		}
	}
}

func FuzzExtract(f *testing.F) {
	// Seeds are gzip-compressed: tar's 10 KiB blocking makes raw seeds slow
	// to mutate. Plain tars are covered by the mutator removing the gzip
	// layer's magic and by TestExtractHostile.
	for _, entries := range [][]entry{
		{{name: "a/b", typ: tar.TypeReg, body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "a/b"}},
		{{name: "l", typ: tar.TypeSymlink, link: "."}, {name: "m", typ: tar.TypeSymlink, link: "l/.."}},
		{{name: "h", typ: tar.TypeLink, link: "esc/secret"}},
		{{name: "d", typ: tar.TypeSymlink, link: "esc"}, {name: "d/secret", typ: tar.TypeReg, body: "p"}},
		{{name: "../x", typ: tar.TypeReg, body: "x"}},
	} {
		f.Add(gzipBytes(makeTar(f, entries...)))
	}
	f.Add(makeBomb(f, bombFile{name: "a/b", body: "x"}, bombFile{name: "z", size: 1 << 20}))
	f.Add(makeTar(f, entry{name: "a", typ: tar.TypeReg, body: "x"})[:1024])
	f.Fuzz(func(t *testing.T, data []byte) {
		base, dest := hostileLayout(t)
		before := snapshot(t, filepath.Join(base, "outside"))
		names := func() map[string]bool {
			m := map[string]bool{}
			filepath.WalkDir(dest, func(p string, _ fs.DirEntry, _ error) error { m[p] = true; return nil })
			return m
		}
		was := names()
		// Small caps, so that the fuzzer reaches them.
		if err := ExtractTarGzWith(bytes.NewReader(data), dest, ExtractOptions{MaxBytes: 64 << 10, MaxEntries: 16}); err != nil {
			// A failed extraction leaves no path that was not there.
			for p := range names() {
				if !was[p] {
					t.Errorf("%s left behind by a failed extraction (%v)", p, err)
				}
			}
		}
		if after := snapshot(t, filepath.Join(base, "outside")); after != before {
			t.Fatalf("outside changed:\n%s", after)
		}
		entries, _ := os.ReadDir(base)
		if len(entries) != 2 {
			t.Fatalf("base holds %d entries", len(entries))
		}
		// Every link the archive made resolves inside dest (or nowhere).
		filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 || p == filepath.Join(dest, "esc") || p == filepath.Join(dest, "escfile") {
				return nil
			}
			if d.Type()&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeCharDevice) != 0 {
				t.Errorf("%s: special file", p)
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil
			}
			realDest, _ := filepath.EvalSymlinks(dest)
			if real != realDest && !strings.HasPrefix(real, realDest+string(filepath.Separator)) {
				t.Errorf("link %s resolves to %s, outside %s", p, real, dest)
			}
			return nil
		})
	})
}

// TestExtractTarGzTruncated: a gzip stream cut after the tar end marker
// (its CRC and length trailer missing) is an error, not a silent success.
func TestExtractTarGzTruncated(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("hi"))
	tw.Close()
	gz.Close()
	whole := buf.Bytes()
	if err := ExtractTarGz(bytes.NewReader(whole), t.TempDir()); err != nil {
		t.Fatalf("whole archive: %v", err)
	}
	cut := whole[:len(whole)-8] // drop the gzip trailer
	if err := ExtractTarGz(bytes.NewReader(cut), t.TempDir()); err == nil {
		t.Fatal("an archive without its gzip trailer extracted without error")
	}
}
