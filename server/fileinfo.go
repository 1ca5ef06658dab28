package server

import (
	"io/fs"
	"path"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// fileInfo converts a path's description to the contract's type.
func fileInfo(fi driver.FileInfo) noxapi.FileInfo {
	out := noxapi.FileInfo{
		Path: fi.Path, Name: path.Base(fi.Path), Type: noxapi.FileInfoType(fi.Type),
		Size: max(fi.Size, 0), Mode: api.FormatMode(fi.Mode), ModTime: fi.ModTime.UTC(),
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

// parseMode reads an octal mode field ("644", "0644", "04755"); def is the
// answer when s is nil.
func parseMode(field string, s *string, def fs.FileMode) (fs.FileMode, error) {
	if s == nil {
		return def, nil
	}
	m, err := api.ParseMode(*s)
	if err != nil {
		return 0, invalid("%s: %q is not an octal mode between 0000 and 07777", field, *s)
	}
	return m, nil
}
