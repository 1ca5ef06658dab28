package server

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/noxrunner/nox/driver"
)

func TestResolvePath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want, err string }{
		{in: "out.txt", want: "/workspace/out.txt"},
		{in: "./a/../b/", want: "/workspace/b"},
		{in: ".", want: "/workspace"},
		{in: "..", want: "/"},
		{in: "../tmp/x", want: "/tmp/x"},
		{in: "/workspace//a/./b", want: "/workspace/a/b"},
		{in: "/", want: "/"},
		{in: "/a/../b", want: "/b"},
		{in: "/..", err: `path: "/.." climbs above /`},
		{in: "/../etc/passwd", err: `climbs above /`},
		{in: "../../etc", err: `climbs above /`},
		{in: "a/../../../x", err: `climbs above /`},
		{in: "a\x00b", err: "path: must not contain a NUL byte"},
		{in: "", err: "path: must not be empty"},
	} {
		got, err := resolvePath("path", c.in)
		switch {
		case c.err != "":
			if err == nil || !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("resolvePath(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("resolvePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// FuzzResolvePath: whatever a client sends, a resolved path is absolute,
// clean, free of NUL and never climbs above / (the input's ".." elements
// are either refused or absorbed by earlier elements).
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"a", "/workspace/a", "../x", "/../etc", "a/../../b", "./.", "a\x00b", "//x//y/", "/workspace/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := resolvePath("path", p)
		if err != nil {
			return
		}
		if !path.IsAbs(got) || path.Clean(got) != got || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("resolvePath(%q) = %q: not absolute and clean", p, got)
		}
		if path.IsAbs(p) && path.Clean(p) != got {
			t.Fatalf("resolvePath(%q) = %q, want %q", p, got, path.Clean(p))
		}
		if !path.IsAbs(p) && path.Clean("/workspace/"+p) != got {
			t.Fatalf("resolvePath(%q) = %q, want it relative to /workspace", p, got)
		}
	})
}
