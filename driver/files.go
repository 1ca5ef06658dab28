package driver

import (
	"context"
	"io"
	"io/fs"
	"time"
)

// Files is the optional interface of a backend that implements the
// files.ops extension: single-file operations on paths inside a sandbox.
// The server advertises api.ExtFilesOps, and routes the operations to it,
// only when the Backend implements Files and lists api.ExtFilesOps in
// Info().Extensions (so a backend can switch the extension off by
// configuration).
//
// Paths reaching a Files method are absolute and clean (the server
// resolves paths relative to /workspace and removes "." and ".."
// elements); a backend that serves only part of the sandbox answers
// ErrInvalidArgument naming the path outside it. No method follows a link
// out of what the backend serves. A missing path (or parent) is
// ErrNotFound, a path of the wrong type or one that exists where it must
// not ErrConflict, a full sandbox ErrInsufficientStorage; each message
// names the path.
type Files interface {
	// OpenFile opens the regular file at path for reading. The caller
	// closes the returned File.
	OpenFile(ctx context.Context, id, path string) (File, error)

	// WriteFile writes content to path atomically (a reader sees the old
	// content or the new, never a part; on error path is unchanged) and
	// returns the new file's description and whether it was created.
	WriteFile(ctx context.Context, id string, req WriteFileRequest, content io.Reader) (info FileInfo, created bool, err error)

	// Stat describes path without following a final link.
	Stat(ctx context.Context, id, path string) (FileInfo, error)

	// ListDir returns up to req.Limit entries of the directory req.Path in
	// lexical order of their paths, descending req.Depth levels, starting
	// after the path req.After ("" for the first page), and whether more
	// follow.
	ListDir(ctx context.Context, id string, req ListDirRequest) (page []FileInfo, more bool, err error)

	// MakeDir creates the directory path (with parents: missing parents
	// too, and an existing directory is no error).
	MakeDir(ctx context.Context, id string, req MakeDirRequest) (FileInfo, error)

	// Remove removes path: a file or link, an empty directory, or with
	// recursive a whole tree.
	Remove(ctx context.Context, id, path string, recursive bool) error

	// Move renames req.Src to req.Dst atomically and describes the result.
	Move(ctx context.Context, id string, req MoveRequest) (FileInfo, error)
}

// Watcher is the optional interface of a backend that implements the
// files.watch extension. The server advertises api.ExtFilesWatch only when
// the Backend implements it and lists api.ExtFilesWatch in
// Info().Extensions.
type Watcher interface {
	// Watch starts watching the directory path of sandbox id. It returns
	// once the watch is in place (changes made afterwards are reported);
	// the caller reads Watch.Events until it is closed and then calls
	// Close. Beyond the backend's limit of watches it returns ErrBusy.
	Watch(ctx context.Context, id string, req WatchRequest) (Watch, error)
}

// File is an open regular file of a sandbox.
type File interface {
	io.ReadSeekCloser
	// Info describes the file as it was opened.
	Info() FileInfo
}

// FileType is the type of a path.
type FileType string

// The types of paths.
const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	TypeOther   FileType = "other"
)

// FileInfo describes a path, like lstat(2).
type FileInfo struct {
	// Path is absolute inside the sandbox.
	Path string
	Type FileType
	// Size is the apparent size of a file.
	Size int64
	// Mode holds the permission bits with setuid, setgid and sticky
	// (fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky).
	Mode    fs.FileMode
	ModTime time.Time
	// LinkTarget is the target of a symlink, as stored.
	LinkTarget string
	// ETag is a strong validator of a file's content, quoted ("\"...\""),
	// changing whenever the content may have; "" for other types.
	ETag string
}

// WriteFileRequest is a validated write.
type WriteFileRequest struct {
	Path string
	// Mode is the permission bits of a new file; an existing file keeps
	// its own unless HasMode.
	Mode    fs.FileMode
	HasMode bool
	// Parents creates missing parent directories (mode 0755).
	Parents bool
	// IfMatch, when set, is the ETag the current file must have
	// (ErrPreconditionFailed otherwise).
	IfMatch string
	// CreateOnly fails with ErrPreconditionFailed when path exists.
	CreateOnly bool
	// MaxBytes caps the content (ErrTooLarge beyond it); 0: no cap.
	MaxBytes int64
}

// ListDirRequest is a validated listing.
type ListDirRequest struct {
	Path  string
	Depth int // >= 1
	Limit int // >= 1
	// After is the path of the last entry of the previous page.
	After string
}

// MakeDirRequest is a validated mkdir.
type MakeDirRequest struct {
	Path    string
	Parents bool
	Mode    fs.FileMode
}

// MoveRequest is a validated move.
type MoveRequest struct {
	Src, Dst  string
	Overwrite bool
}

// WatchRequest is a validated watch.
type WatchRequest struct {
	Path      string
	Recursive bool
}

// Watch is a running watch.
type Watch interface {
	// Events delivers the changes, coalesced as the contract says; it is
	// closed when the watch ends (Close, ctx done, the sandbox or the
	// watched directory gone), after which Err says why (nil for Close
	// or ctx).
	Events() <-chan FileEvent
	// Err is the reason the watch ended, once Events is closed.
	Err() error
	// Close ends the watch and releases what it holds.
	Close() error
}

// FileEventType is the kind of a change.
type FileEventType string

// The kinds of change. EventOverflow reports that events were dropped.
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
	Type FileEventType
	// Path is absolute inside the sandbox; OldPath is the previous path of
	// a rename ("" when it was outside the watched tree).
	Path, OldPath string
	IsDir         bool
}
