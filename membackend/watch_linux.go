package membackend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/watchqueue"
)

// On Linux the Backend implements driver.Watcher with inotify on the
// sandbox's host directory: changes made by commands (plain host
// processes here), uploads and the files API are all seen. One inotify
// instance per watch; a recursive watch adds a watch per directory (up
// to Limits.MaxWatchDirs) and those created later.
var _ driver.Watcher = (*Backend)(nil)

// watchMask is what a watch asks inotify for on each directory.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// Watch starts watching the directory req.Path (not followed when it is a
// link). Beyond Limits.MaxWatchesPerSandbox open watches it returns
// ErrBusy.
func (b *Backend) Watch(ctx context.Context, id string, req driver.WatchRequest) (driver.Watch, error) {
	fp, err := area("path", req.Path)
	if err != nil {
		return nil, err
	}
	s, r, err := b.openRoot(id)
	if err != nil {
		return nil, err
	}
	st, err := r.Lstat(fp.rel)
	r.Close()
	if err != nil {
		return nil, fsErr(fp, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("path %q: not a directory: %w", req.Path, driver.ErrConflict)
	}
	l := b.cfg.Limits
	b.mu.Lock()
	if s.watches >= l.MaxWatchesPerSandbox {
		b.mu.Unlock()
		return nil, fmt.Errorf("sandbox %q has %d watches open, the backend's limit (maxWatchesPerSandbox): %w", id, s.watches, driver.ErrBusy)
	}
	s.watches++
	b.mu.Unlock()
	release := func() {
		b.mu.Lock()
		s.watches--
		b.mu.Unlock()
	}
	iw, err := newInotify(s.dir, fp, req.Recursive, l.MaxWatchDirs)
	if err != nil {
		release()
		return nil, err
	}
	var wg sync.WaitGroup
	w := watchqueue.New(l.MaxWatchQueue, func() {
		iw.f.Close() // wakes the reader
		wg.Wait()
		release()
	})
	iw.w = w
	wg.Add(1)
	go func() {
		defer wg.Done()
		iw.read()
	}()
	context.AfterFunc(ctx, func() { _ = w.Close() })
	return w, nil
}

// inotifyWatch is the inotify source of one watch.
type inotifyWatch struct {
	f         *os.File
	fd        int
	base      string // the sandbox's host directory
	root      string // the watched sandbox path
	recursive bool
	maxDirs   int
	w         *watchqueue.Queue
	dirs      map[int]string // watch descriptor -> sandbox path
	pending   *moveFrom
}

// moveFrom is the first half of a rename, waiting for its IN_MOVED_TO.
type moveFrom struct {
	cookie uint32
	path   string
	isDir  bool
	temp   bool // a WriteFile temporary file
	create bool // ... of a write that creates its file
}

// newInotify opens an inotify instance watching fp (and with recursive
// its subdirectories).
func newInotify(base string, fp fsPath, recursive bool, maxDirs int) (*inotifyWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("path %q: inotify: %v: %w", fp.path, err, driver.ErrBusy)
	}
	iw := &inotifyWatch{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, base: base, root: fp.path,
		recursive: recursive, maxDirs: maxDirs, dirs: map[int]string{}}
	if err := iw.add(fp.path, false); err != nil {
		iw.f.Close()
		return nil, err
	}
	return iw, nil
}

// hostPath is the host path of a sandbox path below /workspace or /tmp.
func (iw *inotifyWatch) hostPath(p string) string {
	fp, _ := area("path", p)
	return filepath.Join(iw.base, filepath.FromSlash(fp.rel))
}

// add watches directory p and, when recursive, the directories below it;
// with announce it emits a create event for each entry found below p
// (created before its watch was in place).
func (iw *inotifyWatch) add(p string, announce bool) error {
	if len(iw.dirs) >= iw.maxDirs {
		return fmt.Errorf("path %q: the watch would cover more than %d directories (maxWatchDirs): %w", iw.root, iw.maxDirs, driver.ErrTooLarge)
	}
	wd, err := unix.InotifyAddWatch(iw.fd, iw.hostPath(p), watchMask)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // gone already (or a link): its remove follows
		}
		return fmt.Errorf("path %q: inotify: %v: %w", p, err, driver.ErrBusy)
	}
	iw.dirs[wd] = p
	if !iw.recursive && !announce {
		return nil
	}
	entries, err := os.ReadDir(iw.hostPath(p))
	if err != nil {
		return nil
	}
	for _, e := range entries {
		q := p + "/" + e.Name()
		if strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if announce {
			iw.w.Emit(driver.FileEvent{Type: driver.EventCreate, Path: q, IsDir: e.IsDir()})
		}
		if e.IsDir() && iw.recursive {
			if err := iw.add(q, announce); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveSettle is how long an IN_MOVED_FROM waits for its IN_MOVED_TO when
// a read ended between the two.
const moveSettle = 10 * time.Millisecond

// read turns inotify events into FileEvents until the instance is closed
// or the watched directory goes.
func (iw *inotifyWatch) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := iw.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// No IN_MOVED_TO followed the pending IN_MOVED_FROM.
			iw.flushPending()
			_ = iw.f.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			iw.w.Finish(nil) // closed
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			cookie := binary.NativeEndian.Uint32(buf[off+8:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			if err := iw.handle(wd, mask, cookie, name); err != nil {
				iw.w.Finish(err)
				return
			}
		}
		if iw.pending != nil {
			// A rename's two events can be split across reads: its
			// IN_MOVED_TO gets a moment before the IN_MOVED_FROM is
			// settled as a move out of the watch.
			_ = iw.f.SetReadDeadline(time.Now().Add(moveSettle))
		} else {
			_ = iw.f.SetReadDeadline(time.Time{})
		}
	}
}

// handle translates one inotify event.
func (iw *inotifyWatch) handle(wd int, mask, cookie uint32, name string) error {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		iw.flushPending()
		iw.w.Emit(driver.FileEvent{Type: driver.EventOverflow})
		return nil
	}
	dir, ok := iw.dirs[wd]
	if !ok {
		return nil
	}
	if mask&unix.IN_IGNORED != 0 {
		delete(iw.dirs, wd)
		if dir == iw.root {
			return fmt.Errorf("path %q: the watched directory was removed: %w", iw.root, driver.ErrNotFound)
		}
		return nil
	}
	if name == "" { // the directory itself
		if dir == iw.root && mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			return fmt.Errorf("path %q: the watched directory was removed or moved: %w", iw.root, driver.ErrNotFound)
		}
		return nil
	}
	p := dir + "/" + name
	isDir := mask&unix.IN_ISDIR != 0
	temp := strings.HasPrefix(name, tempPrefix)
	if mask&unix.IN_MOVED_TO != 0 {
		return iw.movedTo(cookie, p, isDir)
	}
	iw.flushPending()
	switch {
	case mask&unix.IN_MOVED_FROM != 0:
		iw.pending = &moveFrom{cookie: cookie, path: p, isDir: isDir, temp: temp,
			create: temp && strings.HasPrefix(name, tempPrefix+"c-")}
	case temp:
	case mask&unix.IN_CREATE != 0:
		iw.w.Emit(driver.FileEvent{Type: driver.EventCreate, Path: p, IsDir: isDir})
		if isDir && iw.recursive {
			return iw.add(p, true)
		}
	case mask&unix.IN_DELETE != 0:
		iw.w.Emit(driver.FileEvent{Type: driver.EventRemove, Path: p, IsDir: isDir})
	case mask&unix.IN_MODIFY != 0:
		iw.w.Emit(driver.FileEvent{Type: driver.EventWrite, Path: p})
	case mask&unix.IN_ATTRIB != 0:
		iw.w.Emit(driver.FileEvent{Type: driver.EventChmod, Path: p, IsDir: isDir})
	}
	return nil
}

// movedTo completes a rename: with its IN_MOVED_FROM a rename (or, for a
// WriteFile temporary file, the create or write it stands for), without
// one a create (moved in from outside the watch).
func (iw *inotifyWatch) movedTo(cookie uint32, p string, isDir bool) error {
	from := iw.pending
	iw.pending = nil
	switch {
	case from != nil && from.cookie == cookie && from.temp:
		typ := driver.EventWrite
		if from.create {
			typ = driver.EventCreate
		}
		iw.w.Emit(driver.FileEvent{Type: typ, Path: p})
		return nil
	case from != nil && from.cookie == cookie:
		iw.w.Emit(driver.FileEvent{Type: driver.EventRename, Path: p, OldPath: from.path, IsDir: isDir})
		if isDir {
			iw.renameDirs(from.path, p)
		}
		return nil
	}
	if from != nil {
		iw.pending = from
		iw.flushPending()
	}
	iw.w.Emit(driver.FileEvent{Type: driver.EventCreate, Path: p, IsDir: isDir})
	if isDir && iw.recursive {
		return iw.add(p, true)
	}
	return nil
}

// flushPending reports a rename whose IN_MOVED_TO did not follow as a
// remove (moved out of the watch), and stops watching what moved out.
func (iw *inotifyWatch) flushPending() {
	from := iw.pending
	iw.pending = nil
	if from == nil || from.temp {
		return
	}
	iw.w.Emit(driver.FileEvent{Type: driver.EventRemove, Path: from.path, IsDir: from.isDir})
	if from.isDir {
		for wd, d := range iw.dirs {
			if d == from.path || strings.HasPrefix(d, from.path+"/") {
				_, _ = unix.InotifyRmWatch(iw.fd, uint32(wd))
				delete(iw.dirs, wd)
			}
		}
	}
}

// renameDirs moves the watched directories below old to new.
func (iw *inotifyWatch) renameDirs(old, new string) {
	for wd, d := range iw.dirs {
		if d == old {
			iw.dirs[wd] = new
		} else if rest, ok := strings.CutPrefix(d, old+"/"); ok {
			iw.dirs[wd] = new + "/" + rest
		}
	}
}
