package sdk

import (
	"io/fs"
	"time"

	"github.com/noxrunner/nox/api"
)

// Extension names of the file operations.
const (
	// ExtFilesOps is the single-file operations (ReadFile, Open, WriteFile,
	// Create, Stat, ReadDir, Mkdir, MkdirAll, Remove, RemoveAll, Rename).
	ExtFilesOps = api.ExtFilesOps
	// ExtFilesWatch is Watch.
	ExtFilesWatch = api.ExtFilesWatch
)

// FileType is the type of a path in a sandbox.
type FileType string

// The types of paths.
const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	TypeOther   FileType = "other"
)

// FileInfo describes a path in a sandbox, like lstat(2).
type FileInfo struct {
	// Path is absolute inside the sandbox; Name its last element.
	Path string   `json:"path"`
	Name string   `json:"name"`
	Type FileType `json:"type"`
	// Size is the apparent size of a file.
	Size int64 `json:"size"`
	// Mode holds the permission bits with setuid, setgid and sticky; see
	// FileMode for an io/fs mode with the type bits.
	Mode    fs.FileMode `json:"mode"`
	ModTime time.Time   `json:"modTime"`
	// LinkTarget is the target of a symlink, as stored.
	LinkTarget string `json:"linkTarget,omitempty"`
	// ETag is the validator of a file's content (Open's IfNoneMatch,
	// WriteOptions.IfMatch); "" for other types and from backends without
	// ExtFilesOps.
	ETag string `json:"etag,omitempty"`
}

// IsDir reports whether the path is a directory.
func (fi FileInfo) IsDir() bool { return fi.Type == TypeDir }

// FileMode returns Mode with the io/fs type bits of Type (fs.ModeDir,
// fs.ModeSymlink, fs.ModeIrregular).
func (fi FileInfo) FileMode() fs.FileMode {
	m := fi.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch fi.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeOther:
		m |= fs.ModeIrregular
	}
	return m
}

// OpenOptions are the optional parameters of Open. The zero value reads
// the whole file.
type OpenOptions struct {
	// Offset is the first byte to read; Length the most bytes to read from
	// there (0: to the end). An Offset at or past the end reads nothing.
	Offset, Length int64
	// IfNoneMatch is an ETag (FileInfo.ETag): when the file still has it,
	// Open fails with an error matching ErrNotModified.
	IfNoneMatch string
}

// WriteOptions are the optional parameters of WriteFile and Create. The
// zero value replaces or creates the file with the backend's default mode.
type WriteOptions struct {
	// Mode is the permission bits of the file; 0 leaves an existing file's
	// own and gives a new one the backend's default (0644).
	Mode fs.FileMode
	// Parents creates missing parent directories (mode 0755).
	Parents bool
	// IfMatch replaces the file only when its ETag is this one; otherwise
	// the write fails with an error matching ErrPreconditionFailed.
	IfMatch string
	// CreateOnly fails with an error matching ErrPreconditionFailed when
	// the path exists.
	CreateOnly bool
}

// ReadDirOptions are the optional parameters of ReadDir.
type ReadDirOptions struct {
	// Depth is how many levels to list (0 or 1: the directory's own
	// entries); a directory's entries follow it.
	Depth int
	// PageSize is the most entries asked for in one request (0: the
	// backend's default); the backend may send fewer.
	PageSize int
}

// WatchOptions are the optional parameters of Watch.
type WatchOptions struct {
	// Recursive watches the whole tree below the path, including
	// directories created later.
	Recursive bool
}

// FileEventType is the kind of a change Watch reports.
type FileEventType string

// The kinds of change. EventOverflow says the backend dropped events
// (its queue for the watch overflowed): re-list what is watched.
const (
	EventCreate   FileEventType = "create"
	EventWrite    FileEventType = "write"
	EventRemove   FileEventType = "remove"
	EventRename   FileEventType = "rename"
	EventChmod    FileEventType = "chmod"
	EventOverflow FileEventType = "overflow"
)

// FileEvent is one change below a watched directory.
type FileEvent struct {
	Type FileEventType `json:"type"`
	// Path is absolute inside the sandbox ("" for EventOverflow); OldPath
	// is the previous path of a rename when it was inside the watched
	// tree.
	Path    string `json:"path,omitempty"`
	OldPath string `json:"oldPath,omitempty"`
	IsDir   bool   `json:"isDir,omitempty"`
}
