// Package tarball is the one tar codec of nox: the rules that decide
// whether an archive entry's name and link target are safe, the steps that
// extract an entry through an os.Root, and the writers of entries from the
// file system or from memory. The SDK, the CLI, the conformance suite and
// the local backend build their archives and extractors from it; each keeps
// its own policy (limits, staging, error wording) on top.
package tarball

import (
	"errors"
	"path"
	"strings"
)

// The reasons an entry name or link target is refused. Each rule returns
// one of them as it is, so that callers can word their errors as they must
// and test for the reason with errors.Is.
var (
	// ErrEmptyName is an entry with an empty name.
	ErrEmptyName = errors.New("empty name")
	// ErrNUL is a name or link target holding a NUL byte.
	ErrNUL = errors.New("NUL byte in name")
	// ErrAbsolute is an absolute entry name.
	ErrAbsolute = errors.New("absolute path")
	// ErrDotDot is an entry name with a ".." element.
	ErrDotDot = errors.New(`path has a ".." element`)
	// ErrEmptyTarget is a link with an empty target.
	ErrEmptyTarget = errors.New("empty link target")
	// ErrAbsoluteTarget is a symbolic link to an absolute path where no
	// absolute path is allowed.
	ErrAbsoluteTarget = errors.New("absolute link target")
	// ErrOutside is a link whose target leaves the target directory.
	ErrOutside = errors.New("link target leaves the target directory")
)

// CleanName is the rule for archive entry names: a name must be non-empty,
// free of NUL bytes, relative (no leading slash) and without ".." elements.
// It returns the name cleaned, relative to the target directory ("." for
// the directory itself), or ErrEmptyName, ErrNUL, ErrAbsolute or ErrDotDot,
// checked in that order.
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", ErrEmptyName
	case strings.IndexByte(name, 0) >= 0:
		return "", ErrNUL
	case path.IsAbs(name):
		return "", ErrAbsolute
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == ".." {
			return "", ErrDotDot
		}
	}
	return path.Clean(name), nil
}

// Escapes reports whether the relative slash-separated path p, once
// cleaned, leaves the directory it is relative to ("..", "../x").
func Escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

// CheckSymlink is the rule for symbolic link entries: name, a clean entry
// name from CleanName, may point to target when target is non-empty and
// free of NUL bytes, and a relative target, resolved lexically from the
// link's own directory, stays inside the target directory. An absolute
// target is allowed only inside abs, the absolute slash-separated path the
// target directory has where the link will be followed (a sandbox's
// workspace, say); with abs empty every absolute target is refused.
// The error is ErrEmptyTarget, ErrNUL, ErrAbsoluteTarget or ErrOutside.
//
// The rule is lexical: an extractor must still make sure a link extracted
// earlier does not lead the new one out (os.Root does).
func CheckSymlink(name, target, abs string) error {
	switch {
	case target == "":
		return ErrEmptyTarget
	case strings.IndexByte(target, 0) >= 0:
		return ErrNUL
	case path.IsAbs(target):
		if abs == "" {
			return ErrAbsoluteTarget
		}
		if !within(target, abs) {
			return ErrOutside
		}
		return nil
	case Escapes(path.Join(path.Dir(name), target)):
		return ErrOutside
	}
	return nil
}

// within reports whether the absolute path p lies in or at the absolute
// path dir.
func within(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
