package sdk

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS is an io/fs view of a sandbox's DefaultWorkdir: fs.WalkDir,
// fs.ReadFile, fs.Glob, template.ParseFS and http.FS work on it. Names
// follow the io/fs rules (unrooted, slash-separated, fs.ValidPath; "." is
// DefaultWorkdir itself) and links are followed while they stay inside
// what the backend serves. Errors are *fs.PathError values matching
// fs.ErrNotExist, fs.ErrPermission or fs.ErrInvalid where one applies,
// and the SDK's sentinels (ErrNotFound, ...) as well.
//
// Every call is one or more requests made with the context FS was given.
// Open files read lazily, and support Seek and ReadAt through ranged
// reads. It implements fs.FS, fs.StatFS, fs.ReadDirFS and fs.ReadFileFS.
// Listing directories needs extension ExtFilesOps; on a backend without
// it Open and Stat of files and ReadFile use the tar fallback of Open and
// Stat.
type FS struct {
	ctx context.Context
	sb  *Sandbox
}

// FS returns an io/fs view of the sandbox's DefaultWorkdir whose calls use
// ctx.
func (s *Sandbox) FS(ctx context.Context) *FS { return &FS{ctx: ctx, sb: s} }

var (
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
)

// maxFSLinks bounds the links followed to resolve one name.
const maxFSLinks = 40

// abs returns the sandbox path of a valid io/fs name.
func (f *FS) abs(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return DefaultWorkdir, nil
	}
	return DefaultWorkdir + "/" + name, nil
}

// fsError is an SDK error as io/fs reports it.
type fsError struct {
	kind error // fs.ErrNotExist, ...; nil when none applies
	err  error
}

func (e *fsError) Error() string        { return e.err.Error() }
func (e *fsError) Unwrap() error        { return e.err }
func (e *fsError) Is(target error) bool { return e.kind != nil && target == e.kind }

func pathError(op, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	e := &fsError{err: err}
	switch {
	case errors.Is(err, ErrNotFound):
		e.kind = fs.ErrNotExist
	case errors.Is(err, ErrUnauthorized):
		e.kind = fs.ErrPermission
	case errors.Is(err, ErrInvalidArgument):
		e.kind = fs.ErrInvalid
	}
	return &fs.PathError{Op: op, Path: name, Err: e}
}

// stat describes abs, following links.
func (f *FS) stat(abs string) (FileInfo, error) {
	for range maxFSLinks {
		fi, err := f.sb.Stat(f.ctx, abs)
		if err != nil || fi.Type != TypeSymlink {
			return fi, err
		}
		target := fi.LinkTarget
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(abs), target)
		}
		abs = path.Clean(target)
	}
	return FileInfo{}, errors.New("too many links")
}

// Stat describes the named file, following links (fs.StatFS).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	abs, err := f.abs("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.stat(abs)
	if err != nil {
		return nil, pathError("stat", name, err)
	}
	return fileInfo{fi: fi, name: path.Base(name)}, nil
}

// ReadFile returns the content of the named file (fs.ReadFileFS).
func (f *FS) ReadFile(name string) ([]byte, error) {
	abs, err := f.abs("readfile", name)
	if err != nil {
		return nil, err
	}
	data, err := f.sb.ReadFile(f.ctx, abs)
	if err != nil {
		return nil, pathError("readfile", name, err)
	}
	return data, nil
}

// ReadDir lists the named directory sorted by name (fs.ReadDirFS).
// Entries describe links themselves, as os.ReadDir does.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	abs, err := f.abs("readdir", name)
	if err != nil {
		return nil, err
	}
	return f.readDir(name, abs)
}

func (f *FS) readDir(name, abs string) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for fi, err := range f.sb.ReadDir(f.ctx, abs, ReadDirOptions{}) {
		if err != nil {
			return out, pathError("readdir", name, err)
		}
		out = append(out, dirEntry{fileInfo{fi: fi, name: fi.Name}})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Open opens the named file or directory (fs.FS). The file's content is
// read when first asked for.
func (f *FS) Open(name string) (fs.File, error) {
	abs, err := f.abs("open", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.stat(abs)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	info := fileInfo{fi: fi, name: path.Base(name)}
	if fi.IsDir() {
		return &dirFile{fsys: f, name: name, abs: fi.Path, info: info}, nil
	}
	return &file{fsys: f, name: name, abs: fi.Path, info: info}, nil
}

// fileInfo is a FileInfo as an fs.FileInfo.
type fileInfo struct {
	fi   FileInfo
	name string
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.fi.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.fi.FileMode() }
func (i fileInfo) ModTime() time.Time { return i.fi.ModTime }
func (i fileInfo) IsDir() bool        { return i.fi.IsDir() }

// Sys returns the FileInfo.
func (i fileInfo) Sys() any { return i.fi }

// dirEntry is a listed entry as an fs.DirEntry.
type dirEntry struct{ info fileInfo }

func (d dirEntry) Name() string               { return d.info.name }
func (d dirEntry) IsDir() bool                { return d.info.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.info.Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.info, nil }
func (d dirEntry) String() string             { return fs.FormatDirEntry(d) }

// file is an open regular file of an FS.
type file struct {
	fsys      *FS
	name, abs string
	info      fileInfo
	rc        io.ReadCloser // open at pos, or nil
	pos       int64
	closed    bool
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if f.rc == nil {
		rc, err := f.fsys.sb.Open(f.fsys.ctx, f.abs, OpenOptions{Offset: f.pos})
		if err != nil {
			return 0, pathError("read", f.name, err)
		}
		f.rc = rc
	}
	n, err := f.rc.Read(p)
	f.pos += int64(n)
	if err != nil && err != io.EOF {
		err = pathError("read", f.name, err)
	}
	return n, err
}

// Seek moves the offset of the next Read (io.SeekEnd is relative to the
// size the file had when opened).
func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrClosed}
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.info.fi.Size
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if offset != f.pos && f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
	f.pos = offset
	return offset, nil
}

// ReadAt reads len(p) bytes at off with one ranged read.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if len(p) == 0 {
		return 0, nil
	}
	rc, err := f.fsys.sb.Open(f.fsys.ctx, f.abs, OpenOptions{Offset: off, Length: int64(len(p))})
	if err != nil {
		return 0, pathError("read", f.name, err)
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	} else if err != nil && err != io.EOF {
		err = pathError("read", f.name, err)
	}
	return n, err
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	if f.rc != nil {
		return f.rc.Close()
	}
	return nil
}

// dirFile is an open directory of an FS; it lists on the first ReadDir.
type dirFile struct {
	fsys      *FS
	name, abs string
	info      fileInfo
	entries   []fs.DirEntry
	listed    bool
	closed    bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *dirFile) Close() error {
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.name, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir returns the next n entries (all that remain for n <= 0), as
// fs.ReadDirFile says.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: fs.ErrClosed}
	}
	if !d.listed {
		entries, err := d.fsys.readDir(d.name, d.abs)
		if err != nil {
			return nil, err
		}
		d.entries, d.listed = entries, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		if out == nil {
			out = []fs.DirEntry{}
		}
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n:n]
	d.entries = d.entries[n:]
	return out, nil
}
