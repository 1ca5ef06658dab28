package tarball

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// testRoot returns an os.Root on a new directory holding file, dir/,
// link -> file, and out -> a file outside the root.
func testRoot(t *testing.T) (*os.Root, string) {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	outside := filepath.Join(base, "secret")
	for _, err := range []error{
		os.Mkdir(dir, 0o755),
		os.WriteFile(outside, []byte("secret"), 0o644),
		os.WriteFile(filepath.Join(dir, "file"), []byte("f"), 0o644),
		os.Mkdir(filepath.Join(dir, "dir"), 0o755),
		os.WriteFile(filepath.Join(dir, "dir", "inner"), []byte("i"), 0o644),
		os.Symlink("file", filepath.Join(dir, "link")),
		os.Symlink(outside, filepath.Join(dir, "out")),
		os.Symlink("..", filepath.Join(dir, "up")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root, outside
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		err     error // a sentinel, or errAny
		removed bool  // name no longer exists
	}{
		{"new", nil, false},
		{"a/b/new", nil, false},
		{"file", nil, true},
		{"link", nil, true},
		{"out", nil, true}, // the link is removed, not followed
		{"dir/inner", nil, true},
		{"dir", ErrIsDir, false},
		{"file/x", errAny, false},   // a file where a directory must go
		{"up/evil", errAny, false},  // a parent that leaves the root
		{"out/evil", errAny, false}, // a parent that is a link out
		{"dir/a/b", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root, outside := testRoot(t)
			err := Prepare(root, c.name)
			switch {
			case c.err == nil && err != nil, c.err != nil && err == nil:
				t.Fatalf("Prepare(%q) = %v, want %v", c.name, err, c.err)
			case c.err != nil && c.err != errAny && !errors.Is(err, c.err):
				t.Fatalf("Prepare(%q) = %v, want %v", c.name, err, c.err)
			}
			if _, err := root.Lstat(c.name); c.removed && err == nil {
				t.Errorf("Prepare(%q) left the entry in place", c.name)
			}
			if b, err := os.ReadFile(outside); err != nil || string(b) != "secret" {
				t.Errorf("outside file: %q, %v", b, err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(outside)); len(entries) != 2 {
				t.Errorf("Prepare(%q) wrote beside the root: %v", c.name, entries)
			}
		})
	}
}

// errAny stands for any error in test tables.
var errAny = errors.New("any error")

func TestHardLinkTarget(t *testing.T) {
	t.Parallel()
	root, _ := testRoot(t)
	cases := []struct {
		linkname, want string
		err            error
	}{
		{"file", "file", nil},
		{"./file", "file", nil},
		{"dir/inner", "dir/inner", nil},
		{"dir/../file", "", ErrOutside}, // .. is refused as in entry names
		{"", "", ErrOutside},
		{".", "", ErrOutside},
		{"../secret", "", ErrOutside},
		{"/etc/passwd", "", ErrOutside},
		{"missing", "", ErrNotRegular},
		{"dir", "", ErrNotRegular},
		{"link", "", ErrNotRegular}, // a link to a link may point anywhere
		{"out", "", ErrNotRegular},
		{"up/secret", "", ErrNotRegular}, // through a link out of the root
	}
	for _, c := range cases {
		got, err := HardLinkTarget(root, c.linkname)
		if got != c.want || !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("HardLinkTarget(%q) = %q, %v; want %q, %v", c.linkname, got, err, c.want, c.err)
		}
	}
}

func TestIsGzip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x1f, 0x8b}, true},
		{[]byte{0x1f, 0x8b, 8, 0}, true},
		{[]byte{0x1f}, false},
		{nil, false},
		{[]byte("ustar"), false},
		{[]byte{0x8b, 0x1f}, false},
	}
	for _, c := range cases {
		if got := IsGzip(c.b); got != c.want {
			t.Errorf("IsGzip(%x) = %v, want %v", c.b, got, c.want)
		}
	}
}

func TestIsSparse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		records map[string]string
		want    bool
	}{
		{nil, false},
		{map[string]string{"comment": "x", "path": "a"}, false},
		{map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}, true},
		{map[string]string{"GNU.sparse.map": "0,0"}, true},
	}
	for _, c := range cases {
		if got := IsSparse(&tar.Header{Name: "f", PAXRecords: c.records}); got != c.want {
			t.Errorf("IsSparse(%v) = %v, want %v", c.records, got, c.want)
		}
	}
}
