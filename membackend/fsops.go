package membackend

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// The files API (driver.Files) works on the sandbox's host directory
// through an os.Root opened on it, so no path, and no link a command
// planted, leads out of the sandbox: os.Root resolves every element
// itself and refuses to leave the directory. The API reaches /workspace
// and /tmp, the two areas of a membackend sandbox.

var _ driver.Files = (*Backend)(nil)

// tempPrefix starts the names of WriteFile's temporary files; watches
// hide them. The letter after it says whether the write creates the file
// ("c") or replaces one ("r"), so that a watch reports the rename that
// completes the write as a create or a write.
const tempPrefix = ".nox-write-"

// fsPath is a path of the files API resolved to the sandbox's root.
type fsPath struct {
	field, path string // the request field and the sandbox path
	rel         string // relative to the sandbox directory
}

// area maps an absolute, clean sandbox path to the sandbox directory.
func area(field, p string) (fsPath, error) {
	for _, a := range []struct{ dir, rel string }{{api.Workspace, "workspace"}, {"/tmp", "tmp"}} {
		if p == a.dir {
			return fsPath{field, p, a.rel}, nil
		}
		if rest, ok := strings.CutPrefix(p, a.dir+"/"); ok {
			return fsPath{field, p, a.rel + "/" + rest}, nil
		}
	}
	return fsPath{}, fmt.Errorf("%s: %q is outside %s and /tmp (the files API of %s reaches only these): %w", field, p, api.Workspace, Name, driver.ErrInvalidArgument)
}

// isAreaRoot reports whether p is /workspace or /tmp itself.
func (p fsPath) isAreaRoot() bool { return !strings.Contains(p.rel, "/") }

// openRoot looks sandbox id up (counting the call as activity) and opens
// its directory as an os.Root.
func (b *Backend) openRoot(id string) (*sandbox, *os.Root, error) {
	s, err := b.lookup(id, true)
	if err != nil {
		return nil, nil, err
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	return s, r, nil
}

// fsErr maps an error of an operation on p to the driver's categories,
// naming the path and never the host path.
func fsErr(p fsPath, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case slices.ContainsFunc(categories, func(c error) bool { return errors.Is(err, c) }), errors.Is(err, context.Canceled):
		return err
	case escapes(err):
		return fmt.Errorf("%s: %q leads out of the sandbox through a link: %w", p.field, p.path, driver.ErrInvalidArgument)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %q: %w", p.field, p.path, driver.ErrNotFound)
	case errno == syscall.ENOTDIR:
		return fmt.Errorf("%s %q: a parent is not a directory: %w", p.field, p.path, driver.ErrConflict)
	case errno == syscall.EISDIR:
		return fmt.Errorf("%s %q: is a directory: %w", p.field, p.path, driver.ErrConflict)
	case errno == syscall.ENOTEMPTY || errno == syscall.EEXIST:
		return fmt.Errorf("%s %q: directory not empty: %w", p.field, p.path, driver.ErrConflict)
	case errno == syscall.ELOOP:
		return fmt.Errorf("%s %q: too many levels of links: %w", p.field, p.path, driver.ErrInvalidArgument)
	case errno == syscall.ENOSPC || errno == syscall.EDQUOT:
		return fmt.Errorf("%s %q: the sandbox's storage is full: %w", p.field, p.path, driver.ErrInsufficientStorage)
	}
	return fmt.Errorf("%s %q: %s", p.field, p.path, opName(err))
}

// categories are the driver's error categories, which fsErr passes on.
var categories = []error{driver.ErrNotFound, driver.ErrInvalidArgument, driver.ErrTooLarge, driver.ErrInsufficientStorage,
	driver.ErrConflict, driver.ErrPreconditionFailed, driver.ErrBusy, driver.ErrUnavailable}

// escapes reports whether err is os.Root refusing a path that leaves the
// root (os does not export that error; TestFilesLinkEscape pins the text).
func escapes(err error) bool {
	// The error os.Root makes, however wrapped: in a *fs.PathError, in a
	// *os.LinkError (Rename), or twice (MkdirAll of a link that leaves).
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

// opName is the operation of a *fs.PathError without its host path.
func opName(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Op + ": " + le.Err.Error()
	}
	return "failed"
}

// describe describes rel (without following a final link) as path p.
func describe(r *os.Root, p fsPath) (driver.FileInfo, error) {
	st, err := r.Lstat(p.rel)
	if err != nil {
		return driver.FileInfo{}, fsErr(p, err)
	}
	fi := fileInfo(p.path, st)
	if fi.Type == driver.TypeSymlink {
		if fi.LinkTarget, err = r.Readlink(p.rel); err != nil {
			return driver.FileInfo{}, fsErr(p, err)
		}
	}
	return fi, nil
}

// fileInfo converts a host description to the driver's, as path p.
func fileInfo(p string, st fs.FileInfo) driver.FileInfo {
	fi := driver.FileInfo{Path: p, Size: st.Size(), ModTime: st.ModTime(),
		Mode: st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	switch {
	case st.Mode().IsRegular():
		fi.Type, fi.ETag = driver.TypeFile, etag(st)
	case st.IsDir():
		fi.Type, fi.Size = driver.TypeDir, 0
	case st.Mode()&fs.ModeSymlink != 0:
		fi.Type = driver.TypeSymlink
	default:
		fi.Type, fi.Size = driver.TypeOther, 0
	}
	return fi
}

// etag is a regular file's strong validator: its inode, size and
// modification time in nanoseconds. Writes through the API replace the
// file (a new inode); other writes change the modification time.
func etag(st fs.FileInfo) string {
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	return fmt.Sprintf(`"%x-%x-%x"`, ino, st.Size(), st.ModTime().UnixNano())
}

// OpenFile opens the regular file at p; links are followed inside the
// sandbox only.
func (b *Backend) OpenFile(ctx context.Context, id, p string) (driver.File, error) {
	fp, err := area("path", p)
	if err != nil {
		return nil, err
	}
	_, r, err := b.openRoot(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(fp.rel)
	if err != nil {
		return nil, fsErr(fp, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("path %q: is a %s, not a regular file: %w", p, fileInfo(p, st).Type, driver.ErrConflict)
	}
	if err != nil {
		f.Close()
		return nil, fsErr(fp, err)
	}
	return &openFile{File: f, info: fileInfo(p, st)}, nil
}

// openFile is a file opened by OpenFile.
type openFile struct {
	*os.File
	info driver.FileInfo
}

// Info describes the file as it was opened.
func (f *openFile) Info() driver.FileInfo { return f.info }

// Stat describes p without following a final link.
func (b *Backend) Stat(ctx context.Context, id, p string) (driver.FileInfo, error) {
	fp, err := area("path", p)
	if err != nil {
		return driver.FileInfo{}, err
	}
	_, r, err := b.openRoot(id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer r.Close()
	return describe(r, fp)
}

// WriteFile streams content to a temporary file beside req.Path and
// renames it over req.Path once complete, so that readers see the old
// content or the new. The preconditions (If-Match, create-only) are
// checked before the content is read and again, with the rename, under the
// sandbox's files lock.
func (b *Backend) WriteFile(ctx context.Context, id string, req driver.WriteFileRequest, content io.Reader) (driver.FileInfo, bool, error) {
	fp, err := area("path", req.Path)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	s, r, err := b.openRoot(id)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	defer r.Close()
	if fp.isAreaRoot() {
		return driver.FileInfo{}, false, fmt.Errorf("path %q: is a directory: %w", req.Path, driver.ErrConflict)
	}
	dir := path.Dir(fp.rel)
	if req.Parents {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return driver.FileInfo{}, false, fsErr(fsPath{"path", path.Dir(req.Path), dir}, err)
		}
	}
	old, existed, err := checkWrite(r, fp, req)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	tmp, err := writeTemp(r, dir, !existed, content, req.MaxBytes)
	if err != nil {
		return driver.FileInfo{}, false, fsErr(fp, err)
	}
	defer r.Remove(tmp) // after a successful rename: gone already
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if old, existed, err = checkWrite(r, fp, req); err != nil {
		return driver.FileInfo{}, false, err
	}
	mode := req.Mode
	if existed && !req.HasMode {
		mode = old.Mode
	}
	if err := r.Chmod(tmp, mode); err != nil {
		return driver.FileInfo{}, false, fsErr(fp, err)
	}
	if err := r.Rename(tmp, fp.rel); err != nil {
		return driver.FileInfo{}, false, fsErr(fp, err)
	}
	fi, err := describe(r, fp)
	return fi, !existed, err
}

// checkWrite checks what exists at fp against req and returns it.
func checkWrite(r *os.Root, fp fsPath, req driver.WriteFileRequest) (driver.FileInfo, bool, error) {
	old, err := describe(r, fp)
	existed := err == nil
	switch {
	case err != nil && !errors.Is(err, driver.ErrNotFound):
		return old, false, err
	case err != nil:
		if _, perr := r.Lstat(path.Dir(fp.rel)); perr != nil {
			return old, false, fmt.Errorf("path %q: the parent directory does not exist (parents creates it): %w", fp.path, driver.ErrNotFound)
		}
	case old.Type == driver.TypeDir:
		return old, true, fmt.Errorf("path %q: is a directory: %w", fp.path, driver.ErrConflict)
	}
	if req.CreateOnly && existed {
		return old, true, fmt.Errorf("path %q: exists (If-None-Match: *): %w", fp.path, driver.ErrPreconditionFailed)
	}
	if req.IfMatch != "" && (!existed || old.ETag != req.IfMatch) {
		return old, existed, fmt.Errorf("path %q: its ETag is not %s (If-Match): %w", fp.path, req.IfMatch, driver.ErrPreconditionFailed)
	}
	return old, existed, nil
}

// writeTemp writes content (at most maxBytes when > 0) to a new temporary
// file in dir and returns its name relative to the root.
func writeTemp(r *os.Root, dir string, create bool, content io.Reader, maxBytes int64) (string, error) {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	kind := "r-"
	if create {
		kind = "c-"
	}
	name := path.Join(dir, tempPrefix+kind+hex.EncodeToString(raw[:]))
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	src := content
	if maxBytes > 0 {
		src = io.LimitReader(content, maxBytes+1)
	}
	n, err := io.Copy(f, src)
	if err == nil && maxBytes > 0 && n > maxBytes {
		err = fmt.Errorf("body exceeds the limit of %d bytes: %w", maxBytes, driver.ErrTooLarge)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.Remove(name)
		return "", err
	}
	return name, nil
}

// MakeDir creates a directory, or with Parents its missing parents too.
func (b *Backend) MakeDir(ctx context.Context, id string, req driver.MakeDirRequest) (driver.FileInfo, error) {
	fp, err := area("path", req.Path)
	if err != nil {
		return driver.FileInfo{}, err
	}
	_, r, err := b.openRoot(id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer r.Close()
	if req.Parents {
		err = r.MkdirAll(fp.rel, req.Mode.Perm())
	} else if err = r.Mkdir(fp.rel, req.Mode.Perm()); errors.Is(err, fs.ErrExist) {
		return driver.FileInfo{}, fmt.Errorf("path %q: exists: %w", req.Path, driver.ErrConflict)
	}
	if err != nil {
		return driver.FileInfo{}, fsErr(fp, err)
	}
	fi, err := describe(r, fp)
	if err == nil && fi.Type != driver.TypeDir {
		err = fmt.Errorf("path %q: exists and is not a directory: %w", req.Path, driver.ErrConflict)
	}
	return fi, err
}

// Remove removes a file, link or empty directory, or with recursive a
// whole tree. /workspace and /tmp themselves are refused.
func (b *Backend) Remove(ctx context.Context, id, p string, recursive bool) error {
	fp, err := area("path", p)
	if err != nil {
		return err
	}
	if fp.isAreaRoot() {
		return fmt.Errorf("path: %s itself cannot be removed (its contents can): %w", p, driver.ErrInvalidArgument)
	}
	s, r, err := b.openRoot(id)
	if err != nil {
		return err
	}
	defer r.Close()
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if _, err := r.Lstat(fp.rel); err != nil {
		return fsErr(fp, err)
	}
	if recursive {
		return fsErr(fp, r.RemoveAll(fp.rel))
	}
	return fsErr(fp, r.Remove(fp.rel))
}

// Move renames req.Src to req.Dst: an existing dst is replaced only with
// Overwrite (a file, or an empty directory, as rename(2) allows).
func (b *Backend) Move(ctx context.Context, id string, req driver.MoveRequest) (driver.FileInfo, error) {
	src, err := area("src", req.Src)
	if err != nil {
		return driver.FileInfo{}, err
	}
	dst, err := area("dst", req.Dst)
	if err != nil {
		return driver.FileInfo{}, err
	}
	if src.isAreaRoot() || dst.isAreaRoot() {
		return driver.FileInfo{}, fmt.Errorf("src, dst: %s and /tmp themselves cannot be moved or replaced: %w", api.Workspace, driver.ErrInvalidArgument)
	}
	s, r, err := b.openRoot(id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer r.Close()
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if _, err := r.Lstat(src.rel); err != nil {
		return driver.FileInfo{}, fsErr(src, err)
	}
	if _, err := r.Lstat(dst.rel); err == nil && !req.Overwrite && src.rel != dst.rel {
		return driver.FileInfo{}, fmt.Errorf("dst %q: exists (overwrite replaces it): %w", req.Dst, driver.ErrConflict)
	}
	if err := r.Rename(src.rel, dst.rel); err != nil {
		return driver.FileInfo{}, fsErr(dst, err)
	}
	return describe(r, dst)
}

// ListDir lists req.Path depth-first in the order of path elements (a
// directory's entries follow it), up to req.Limit entries after
// req.After. Links are listed, never followed.
func (b *Backend) ListDir(ctx context.Context, id string, req driver.ListDirRequest) ([]driver.FileInfo, bool, error) {
	fp, err := area("path", req.Path)
	if err != nil {
		return nil, false, err
	}
	_, r, err := b.openRoot(id)
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	st, err := r.Stat(fp.rel)
	if err != nil {
		return nil, false, fsErr(fp, err)
	}
	if !st.IsDir() {
		return nil, false, fmt.Errorf("path %q: not a directory: %w", req.Path, driver.ErrConflict)
	}
	l := lister{ctx: ctx, r: r, req: req}
	err = l.walk(fp.rel, req.Path, 1)
	if errors.Is(err, errPageFull) {
		return l.page[:req.Limit], true, nil
	}
	if err != nil {
		return nil, false, fsErr(fp, err)
	}
	return l.page, false, nil
}

// errPageFull stops a listing that found one entry more than a page.
var errPageFull = errors.New("page full")

// lister collects one page of a listing.
type lister struct {
	ctx  context.Context
	r    *os.Root
	req  driver.ListDirRequest
	page []driver.FileInfo
}

// walk lists the directory rel (sandbox path p) at level depth.
func (l *lister) walk(rel, p string, depth int) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	d, err := l.r.Open(rel)
	if err != nil {
		return err
	}
	entries, err := d.Readdir(-1)
	d.Close()
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b fs.FileInfo) int { return cmp.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		q := strings.TrimSuffix(p, "/") + "/" + e.Name()
		before := l.req.After != "" && comparePaths(q, l.req.After) <= 0
		// The previous page may have ended at q itself or inside it: q's
		// entries that follow are still to list.
		inside := q == l.req.After || strings.HasPrefix(l.req.After, q+"/")
		if before && !inside {
			continue
		}
		if !before {
			fi := fileInfo(q, e)
			if fi.Type == driver.TypeSymlink {
				fi.LinkTarget, _ = l.r.Readlink(rel + "/" + e.Name())
			}
			l.page = append(l.page, fi)
			if len(l.page) > l.req.Limit {
				return errPageFull
			}
		}
		if e.IsDir() && depth < l.req.Depth {
			if err := l.walk(rel+"/"+e.Name(), q, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// comparePaths orders paths element by element, so that a directory's
// entries follow it directly ("/w/a", "/w/a/x", "/w/a-b").
func comparePaths(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}
