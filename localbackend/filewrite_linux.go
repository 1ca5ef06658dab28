package localbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// The prefixes of the temporary files of writes in progress: hidden,
// beside their target. The watch tells a new file (tmpNewPrefix) from a
// replaced one (tmpReplacePrefix) when the temporary file is renamed
// into place.
const (
	tmpNewPrefix     = ".nox-new-"
	tmpReplacePrefix = ".nox-rpl-"
)

// writeBufSize is the copy buffer of one write.
const writeBufSize = 256 << 10

// writeFile writes body to req.Path atomically: into a hidden temporary
// file created (O_EXCL) in the target's directory, owned by the
// sandbox's user, renamed over the target once complete. A failed or cut
// body leaves the target as it was and removes the temporary file. A
// final link is followed while it stays inside the workspace. The file
// is not fsynced: the rename gives readers atomicity, and durability over
// a host crash is not promised for a sandbox's files (an fsync tripled a
// 4 KiB write's p50, 0.55 to 1.72 ms, and halved a 1 GiB write's rate).
func (s *store) writeFile(ctx context.Context, id string, req driver.WriteFileRequest, body io.Reader) (driver.FileInfo, bool, error) {
	rel, err := workspaceRel("path", req.Path)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	sp := path.Clean(req.Path)
	if rel == "." {
		return driver.FileInfo{}, false, fmt.Errorf("path %q: is a directory: %w", sp, driver.ErrConflict)
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	defer op.end()
	owner, err := op.owner(ctx)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	budget, err := s.writeBudget(op.b)
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	var charge func(int64) error
	if budget != nil {
		defer budget.release()
		charge = budget.charge
	}
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{follow: true, mkdir: req.Parents, owner: owner})
	if err != nil {
		return driver.FileInfo{}, false, err
	}
	defer unix.Close(dirfd)
	w := &fileWrite{sp: sp, dirfd: dirfd, name: name, req: req, owner: owner}
	if err := w.check(); err != nil {
		return driver.FileInfo{}, false, err
	}
	if err := w.create(); err != nil {
		return driver.FileInfo{}, false, err
	}
	defer w.cleanup()
	if err := w.copy(body, req.MaxBytes, charge); err != nil {
		return driver.FileInfo{}, false, err
	}
	if req.IfMatch != "" || req.CreateOnly {
		op.b.condMu.Lock()
		defer op.b.condMu.Unlock()
		if err := w.check(); err != nil {
			return driver.FileInfo{}, false, err
		}
	}
	return w.commit()
}

// writeBudget is the charge of a write to the storage of sandbox b when
// the monitor measures it (shared with uploads in progress, like theirs),
// or nil when its file system enforces the limit or it has none.
func (s *store) writeBudget(b *box) (*stageBudget, error) {
	if b.meta.StorageBytes <= 0 || s.onImage(b.meta.Key) {
		return nil, nil
	}
	room, err := s.storageRoom(b)
	if err != nil {
		return nil, err
	}
	return &stageBudget{s: s, b: b, room: room, limit: b.meta.StorageBytes}, nil
}

// fileWrite is one write in progress.
type fileWrite struct {
	sp      string
	dirfd   int
	name    string
	req     driver.WriteFileRequest
	owner   *fileOwnerIDs
	exists  bool
	cur     unix.Stat_t
	tmp     string
	f       *os.File
	renamed bool
}

// check looks at the current target against the request's conditions.
func (w *fileWrite) check() error {
	if w.name == "." {
		return fmt.Errorf("path %q: is a directory: %w", w.sp, driver.ErrConflict)
	}
	err := unix.Fstatat(w.dirfd, w.name, &w.cur, unix.AT_SYMLINK_NOFOLLOW)
	w.exists = err == nil
	switch {
	case err != nil && !errors.Is(err, unix.ENOENT):
		return pathError(w.sp, err)
	case w.exists && w.cur.Mode&unix.S_IFMT == unix.S_IFDIR:
		return fmt.Errorf("path %q: is a directory: %w", w.sp, driver.ErrConflict)
	case w.exists && w.cur.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("path %q: exists and is not a regular file: %w", w.sp, driver.ErrConflict)
	case w.exists && w.req.CreateOnly:
		return fmt.Errorf("path %q: already exists (If-None-Match: *): %w", w.sp, driver.ErrPreconditionFailed)
	case w.req.IfMatch != "" && !w.exists:
		return fmt.Errorf("path %q: does not exist, so If-Match %s does not hold: %w", w.sp, w.req.IfMatch, driver.ErrPreconditionFailed)
	case w.req.IfMatch != "" && !etagMatch(w.req.IfMatch, etagOf(&w.cur)):
		return fmt.Errorf("path %q: its ETag is %s, not %s (If-Match): %w", w.sp, etagOf(&w.cur), w.req.IfMatch, driver.ErrPreconditionFailed)
	}
	return nil
}

// etagMatch reports whether the If-Match list h names etag (or is *).
func etagMatch(h, etag string) bool {
	for t := range strings.SplitSeq(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// create makes the temporary file with its final mode and owner.
func (w *fileWrite) create() error {
	mode := uint32(0o644)
	switch {
	case w.req.HasMode:
		mode = api.ModeBits(w.req.Mode)
	case w.exists:
		mode = w.cur.Mode & 0o7777
	case w.req.Mode != 0:
		mode = api.ModeBits(w.req.Mode)
	}
	prefix := tmpNewPrefix
	if w.exists {
		prefix = tmpReplacePrefix
	}
	fd, made := -1, false
	for range 8 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		w.tmp = prefix + hex.EncodeToString(rnd[:])
		var err error
		fd, err = unix.Openat(w.dirfd, w.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			w.tmp = ""
			return pathError(w.sp, err)
		}
		made = true
		break
	}
	if !made {
		w.tmp = ""
		return fmt.Errorf("path %q: no temporary file could be made beside it", w.sp)
	}
	w.f = os.NewFile(uintptr(fd), w.sp)
	if w.owner != nil {
		if err := unix.Fchown(fd, w.owner.uid, w.owner.gid); err != nil {
			return pathError(w.sp, err)
		}
	}
	// After the chown, which clears setuid and setgid.
	return pathError(w.sp, unix.Fchmod(fd, mode))
}

// copy writes body to the temporary file: at most maxBytes (ErrTooLarge
// beyond; 0: no cap), each chunk charged first when charge is set
// (ErrInsufficientStorage when it fails).
func (w *fileWrite) copy(body io.Reader, maxBytes int64, charge func(int64) error) error {
	src := body
	if maxBytes > 0 {
		src = io.LimitReader(body, maxBytes+1)
	}
	buf := make([]byte, writeBufSize)
	n, err := io.CopyBuffer(onlyWriter{w.f, charge}, onlyReader{src}, buf)
	var we *copyDstError
	switch {
	case errors.As(err, &we) && errors.Is(we.err, driver.ErrInsufficientStorage):
		return we.err
	case errors.As(err, &we):
		return pathError(w.sp, we.err)
	case err != nil:
		return fmt.Errorf("path %q: reading the body: %w", w.sp, err)
	case maxBytes > 0 && n > maxBytes:
		return fmt.Errorf("path %q: the body exceeds %d bytes: %w", w.sp, maxBytes, ErrTooLarge)
	}
	return nil
}

// commit renames the temporary file over the target and describes it.
func (w *fileWrite) commit() (driver.FileInfo, bool, error) {
	flags := uint(0)
	if w.req.CreateOnly || !w.exists {
		flags = unix.RENAME_NOREPLACE
	}
	err := unix.Renameat2(w.dirfd, w.tmp, w.dirfd, w.name, flags)
	if errors.Is(err, unix.EEXIST) && !w.req.CreateOnly {
		// Created meanwhile by someone else: replace it as asked.
		w.exists = true
		err = unix.Renameat(w.dirfd, w.tmp, w.dirfd, w.name)
	}
	switch {
	case errors.Is(err, unix.EEXIST):
		return driver.FileInfo{}, false, fmt.Errorf("path %q: already exists (If-None-Match: *): %w", w.sp, driver.ErrPreconditionFailed)
	case err != nil:
		return driver.FileInfo{}, false, pathError(w.sp, err)
	}
	w.renamed = true
	// The file written, whatever replaced it since.
	var st unix.Stat_t
	if err := unix.Fstat(int(w.f.Fd()), &st); err != nil {
		return driver.FileInfo{}, false, pathError(w.sp, err)
	}
	return fileInfo(w.sp, &st), !w.exists, nil
}

// cleanup removes the temporary file of a write that did not complete.
func (w *fileWrite) cleanup() {
	if w.f != nil {
		_ = w.f.Close()
	}
	if w.tmp != "" && !w.renamed {
		_ = unix.Unlinkat(w.dirfd, w.tmp, 0)
	}
}

// copyDstError marks an error of the destination in a copy.
type copyDstError struct{ err error }

func (e *copyDstError) Error() string { return e.err.Error() }

// onlyWriter hides the file's ReadFrom (the copy buffer is bounded),
// charges what it writes and marks its errors.
type onlyWriter struct {
	f      *os.File
	charge func(int64) error
}

func (o onlyWriter) Write(p []byte) (int, error) {
	if o.charge != nil {
		if err := o.charge(int64(len(p))); err != nil {
			return 0, &copyDstError{err}
		}
	}
	n, err := o.f.Write(p)
	if err != nil {
		err = &copyDstError{err}
	}
	return n, err
}

// onlyReader hides a body's WriteTo.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
