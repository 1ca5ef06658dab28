package server

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// fileInfo converts a path's description to the contract's type.
func fileInfo(fi driver.FileInfo) noxapi.FileInfo {
	out := noxapi.FileInfo{
		Path: fi.Path, Name: path.Base(fi.Path), Type: noxapi.FileInfoType(fi.Type),
		Size: max(fi.Size, 0), Mode: formatMode(fi.Mode), ModTime: fi.ModTime.UTC(),
	}
	if fi.Type == driver.TypeSymlink {
		target := fi.LinkTarget
		out.LinkTarget = &target
	}
	if fi.Type == driver.TypeFile && fi.ETag != "" {
		etag := fi.ETag
		out.Etag = &etag
	}
	return out
}

// formatMode writes the permission bits with setuid, setgid and sticky
// in octal, as chmod(1) reads them: "0644", "04755".
func formatMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("0%03o", v)
}

// parseMode reads an octal mode field ("644", "0644", "04755"); def is the
// answer when s is nil.
func parseMode(field string, s *string, def fs.FileMode) (fs.FileMode, error) {
	if s == nil {
		return def, nil
	}
	v, err := strconv.ParseUint(*s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, invalid("%s: %q is not an octal mode between 0000 and 07777", field, *s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}
