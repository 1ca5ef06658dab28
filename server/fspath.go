package server

import (
	"path"
	"strings"

	"github.com/noxrunner/nox/api"
)

// resolvePath turns the path a client sent in field (path, src, dst) into
// the absolute, clean path a driver.Files method receives: a relative path
// is relative to /workspace, "." and ".." elements are removed. It
// answers ErrInvalidArgument naming the field for an empty path, a NUL
// byte, or ".." that would climb above / (path.Clean would silently stop
// there, turning "/../etc" into "/etc"; a client that wrote that made a
// mistake worth reporting). Whether the result lies in what the backend
// serves is the backend's decision.
func resolvePath(field, p string) (string, error) {
	if p == "" {
		return "", invalid("%s: must not be empty", field)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", invalid("%s: must not contain a NUL byte", field)
	}
	abs := p
	if !path.IsAbs(p) {
		abs = api.Workspace + "/" + p
	}
	depth := 0
	for _, el := range strings.Split(abs, "/") {
		switch el {
		case "", ".":
		case "..":
			if depth == 0 {
				return "", invalid("%s: %q climbs above / with ..", field, p)
			}
			depth--
		default:
			depth++
		}
	}
	return path.Clean(abs), nil
}
