package tarball

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, want string
		err        error
	}{
		{"a", "a", nil},
		{"a/b/c.txt", "a/b/c.txt", nil},
		{"./a", "a", nil},
		{"a/b/", "a/b", nil},
		{"a//b", "a/b", nil},
		{"a/./b", "a/b", nil},
		{".", ".", nil},
		{"./", ".", nil},
		{"..a", "..a", nil},
		{"a..", "a..", nil},
		{"a/...", "a/...", nil},
		{`\x`, `\x`, nil}, // a backslash is a name character in a tar
		{"C:x", "C:x", nil},
		{"ünï code.txt", "ünï code.txt", nil},
		{"", "", ErrEmptyName},
		{"a\x00b", "", ErrNUL},
		{"/a\x00", "", ErrNUL}, // NUL is checked before absolute
		{"/", "", ErrAbsolute},
		{"/etc/passwd", "", ErrAbsolute},
		{"//a", "", ErrAbsolute},
		{"/../a", "", ErrAbsolute},
		{"..", "", ErrDotDot},
		{"../", "", ErrDotDot},
		{"../a", "", ErrDotDot},
		{"a/../../b", "", ErrDotDot},
		{"a/..", "", ErrDotDot},
		{"a/../b", "", ErrDotDot}, // even one that stays inside
		{"./..", "", ErrDotDot},
	}
	for _, c := range cases {
		got, err := CleanName(c.name)
		if got != c.want || !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("CleanName(%q) = %q, %v; want %q, %v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestEscapes(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"a": false, ".": false, "": false, "a/..": false, "a/../b": false, "..a": false, "a/../..b": false,
		"..": true, "../": true, "../a": true, "a/../..": true, "a/../../b": true, "./../a": true,
	}
	for p, want := range cases {
		if got := Escapes(p); got != want {
			t.Errorf("Escapes(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestCheckSymlink(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target, abs string
		err               error
	}{
		{"l", "a", "", nil},
		{"l", ".", "", nil},
		{"a/l", "..", "", nil},
		{"a/l", "../b/c", "", nil},
		{"a/b/l", "../../c", "", nil},
		{"l", "missing", "", nil}, // dangling links are fine
		{"l", "", "", ErrEmptyTarget},
		{"l", "a\x00", "", ErrNUL},
		{"l", "/etc", "", ErrAbsoluteTarget},
		{"l", "/", "", ErrAbsoluteTarget},
		{"l", "..", "", ErrOutside},
		{"a/l", "../..", "", ErrOutside},
		{"a/l", "../../outside", "", ErrOutside},
		{"a/l", "b/../../../x", "", ErrOutside},
		{"l", "/workspace", "/workspace", nil},
		{"l", "/workspace/a/b", "/workspace", nil},
		{"l", "/workspace/a/../b", "/workspace", nil},
		{"l", "/workspace/", "/workspace/", nil},
		{"l", "/etc", "/workspace", ErrOutside},
		{"l", "/workspace2", "/workspace", ErrOutside},
		{"l", "/workspace/../etc", "/workspace", ErrOutside},
		{"l", "/", "/workspace", ErrOutside},
		{"l", "/anything", "/", nil},
		{"l", "../x", "/workspace", ErrOutside}, // abs does not widen relative targets
	}
	for _, c := range cases {
		err := CheckSymlink(c.name, c.target, c.abs)
		if !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("CheckSymlink(%q, %q, %q) = %v, want %v", c.name, c.target, c.abs, err, c.err)
		}
	}
}

// nameErrors are the errors the name and link rules may return.
var nameErrors = []error{ErrEmptyName, ErrNUL, ErrAbsolute, ErrDotDot, ErrEmptyTarget, ErrAbsoluteTarget, ErrOutside}

func isRuleError(err error) bool {
	for _, e := range nameErrors {
		if err == e {
			return true
		}
	}
	return false
}

// FuzzCleanName checks that every name CleanName accepts, which comes from
// an untrusted archive, is a clean relative path inside the target
// directory, and that it fails only with one of its reasons.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a", "./a/b/", ".", "..", "../a", "a/../b", "/etc", "a\x00", "", `C:\x`, "a//b/./c", "...", "a/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := CleanName(name)
		if err != nil {
			if c != "" || !isRuleError(err) {
				t.Fatalf("CleanName(%q) = %q, %v", name, c, err)
			}
			return
		}
		switch {
		case c == "", path.IsAbs(c), Escapes(c), strings.IndexByte(c, 0) >= 0, path.Clean(c) != c:
			t.Fatalf("CleanName(%q) = %q: not a clean relative path inside the root", name, c)
		}
		for el := range strings.SplitSeq(c, "/") {
			if el == ".." {
				t.Fatalf("CleanName(%q) = %q: holds ..", name, c)
			}
		}
		if j := path.Join("/root", c); j != "/root" && !strings.HasPrefix(j, "/root/") {
			t.Fatalf("CleanName(%q) = %q lands at %q", name, c, j)
		}
		if again, err := CleanName(c); again != c || err != nil {
			t.Fatalf("CleanName(%q) = %q, %v; want it unchanged", c, again, err)
		}
	})
}

// FuzzCheckSymlink checks that every link CheckSymlink accepts resolves,
// lexically, inside the target directory (or inside abs for an absolute
// target).
func FuzzCheckSymlink(f *testing.F) {
	for _, s := range [][3]string{
		{"l", "a", ""}, {"a/l", "../b", ""}, {"a/l", "../../x", ""}, {"l", "/etc", ""},
		{"l", "/workspace/x", "/workspace"}, {"l", "/workspace/../etc", "/workspace"}, {"l", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, target, abs string) {
		name, err := CleanName(name)
		if err != nil || name == "." {
			return
		}
		if abs != "" && !path.IsAbs(abs) {
			return
		}
		err = CheckSymlink(name, target, abs)
		if err != nil {
			if !isRuleError(err) {
				t.Fatalf("CheckSymlink(%q, %q, %q) = %v", name, target, abs, err)
			}
			return
		}
		if target == "" || strings.IndexByte(target, 0) >= 0 {
			t.Fatalf("CheckSymlink(%q, %q, %q) accepted an empty or NUL target", name, target, abs)
		}
		if path.IsAbs(target) {
			a, tc := path.Clean(abs), path.Clean(target)
			if abs == "" || (a != "/" && tc != a && !strings.HasPrefix(tc, a+"/")) {
				t.Fatalf("CheckSymlink(%q, %q, %q) accepted a target outside abs", name, target, abs)
			}
			return
		}
		if j := path.Join("/root", path.Dir(name), target); j != "/root" && !strings.HasPrefix(j, "/root/") {
			t.Fatalf("CheckSymlink(%q, %q, %q) accepted a link to %q", name, target, abs, j)
		}
	})
}
