package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
)

// openFile opens the regular file at p for reading, a final link followed
// while it stays inside the workspace. The file holds its sandbox until
// closed, like a download, and a delete or expiry of the sandbox cuts it.
func (s *store) openFile(ctx context.Context, id, p string) (driver.File, error) {
	rel, err := workspaceRel("path", p)
	if err != nil {
		return nil, err
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return nil, err
	}
	sp := path.Clean(p)
	f, info, err := openRegular(op.root, sp, rel)
	_ = op.root.Close()
	if err != nil {
		s.release(op.b, false)
		return nil, err
	}
	rf := &readFile{File: f, info: info, s: s, b: op.b}
	if !s.addCut(op.b, rf, rf.cut) {
		_ = f.Close()
		s.release(op.b, false)
		return nil, notFound(id)
	}
	return rf, nil
}

// openRegular opens the regular file at rel for reading. It looks at what
// the path is through an O_PATH descriptor first and opens the file again
// through /proc/self/fd only when it is regular, so that opening a FIFO or
// a device planted in the workspace has no effect.
func openRegular(root *wsRoot, sp, rel string) (*os.File, driver.FileInfo, error) {
	dirfd, name, err := root.resolve(sp, rel, resolveOpts{follow: true})
	if err != nil {
		return nil, driver.FileInfo{}, err
	}
	defer unix.Close(dirfd)
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, driver.FileInfo{}, pathError(sp, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, driver.FileInfo{}, pathError(sp, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil, driver.FileInfo{}, fmt.Errorf("path %q: is a directory: %w", sp, driver.ErrConflict)
	case unix.S_IFLNK: // replaced by a link meanwhile
		return nil, driver.FileInfo{}, fmt.Errorf("path %q: changed while it was opened; retry: %w", sp, driver.ErrConflict)
	default:
		return nil, driver.FileInfo{}, fmt.Errorf("path %q: not a regular file: %w", sp, driver.ErrConflict)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, driver.FileInfo{}, pathError(sp, err)
	}
	return os.NewFile(uintptr(fd), sp), fileInfo(sp, &st), nil
}

// readFile is an open file of the files API.
type readFile struct {
	*os.File
	info driver.FileInfo
	s    *store
	b    *box
	once sync.Once
	mu   sync.Mutex
	cuts bool
}

// Info describes the file as it was opened.
func (f *readFile) Info() driver.FileInfo { return f.info }

// cut ends the read: the sandbox is deleted or expired.
func (f *readFile) cut() {
	f.mu.Lock()
	f.cuts = true
	f.mu.Unlock()
	_ = f.File.Close()
}

func (f *readFile) wasCut(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cuts {
		return fmt.Errorf("read of %q cut: the sandbox was deleted or expired: %w", f.info.Path, ErrNotFound)
	}
	return err
}

// Read reads from the file; once cut, it fails with ErrNotFound.
func (f *readFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = f.wasCut(err)
	}
	return n, err
}

// Seek sets the offset of the next Read.
func (f *readFile) Seek(off int64, whence int) (int64, error) {
	n, err := f.File.Seek(off, whence)
	if err != nil {
		err = f.wasCut(err)
	}
	return n, err
}

// Close closes the file and releases its sandbox.
func (f *readFile) Close() error {
	f.once.Do(func() {
		f.s.dropCut(f.b, f)
		f.s.release(f.b, false)
	})
	err := f.File.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
