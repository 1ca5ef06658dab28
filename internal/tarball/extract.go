package tarball

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
)

var (
	// ErrNotRegular is a hard link whose target is not a regular file
	// extracted before it.
	ErrNotRegular = errors.New("hard link target is not a regular file extracted before")
	// ErrIsDir is an entry that would replace a directory.
	ErrIsDir = errors.New("replaces a directory")
)

// IsGzip reports whether b, the first bytes of a stream, starts with the
// gzip magic bytes: archives are accepted gzip-compressed or plain.
func IsGzip(b []byte) bool {
	return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

// IsSparse reports a GNU sparse file in the PAX format (the old GNU format
// has a type flag of its own, tar.TypeGNUSparse). A few bytes of sparse map
// can stand for terabytes of zeros.
func IsSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// Prepare makes room in root for the entry name (a clean name from
// CleanName, not "."): it creates the missing parent directories and
// removes the file or link name holds now, so that the new entry never
// writes through an existing link. An existing directory is not replaced:
// that is ErrIsDir.
func Prepare(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return ErrIsDir
	}
	return root.Remove(name)
}

// HardLinkTarget is the rule for hard link entries: the target linkname
// must be an entry name (see CleanName) other than the target directory
// itself, and name a regular file already in root (a hard link to a
// symbolic link would copy a link that may point anywhere). It returns the
// target cleaned, or ErrOutside or ErrNotRegular.
func HardLinkTarget(root *os.Root, linkname string) (string, error) {
	t, err := CleanName(linkname)
	if err != nil || t == "." {
		return "", ErrOutside
	}
	if fi, err := root.Lstat(t); err != nil || !fi.Mode().IsRegular() {
		return "", ErrNotRegular
	}
	return t, nil
}
