package server

import (
	"errors"
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
