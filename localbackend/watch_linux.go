package localbackend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/watchqueue"
)

// watchMask is what a watch asks inotify for on every directory.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// fileWatch is one watch of the files API: an inotify instance of its
// own, read through the runtime's netpoller (no thread parked per
// watch), with a watch on each directory it covers, added through
// /proc/self/fd of a descriptor opened relative to the workspace (never
// a host path). It holds its sandbox like a download: a delete or
// expiry ends it.
type fileWatch struct {
	s         *store
	b         *box
	root      *wsRoot
	ino       *os.File
	ifd       int
	base      string // the sandbox path watched
	recursive bool
	maxDirs   int
	q         *watchqueue.Queue

	// The reader's own state.
	dirs    map[int32]string // watch descriptor -> sandbox path of its directory
	baseWd  int32
	moves   map[uint32]*pendingMove
	tmpMove map[uint32]driver.FileEventType

	reading  sync.WaitGroup
	endOnce  sync.Once
	stopOnce sync.Once
	stopCtx  func() bool // ends the context hook
}

// pendingMove is a MOVED_FROM waiting for its MOVED_TO.
type pendingMove struct {
	old    string
	isDir  bool
	detach map[int32]string // the moved directory's watches, by their old paths
}

// watch starts a watch of req.Path in sandbox id.
func (s *store) watch(ctx context.Context, id string, req driver.WatchRequest) (driver.Watch, error) {
	rel, err := workspaceRel("path", req.Path)
	if err != nil {
		return nil, err
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if op.b.watches >= s.cfg.MaxWatchesPerSandbox {
		s.mu.Unlock()
		op.end()
		return nil, fmt.Errorf("sandbox %q has %d watches open, its limit (maxWatchesPerSandbox): %w", id, s.cfg.MaxWatchesPerSandbox, ErrBusy)
	}
	if b := s.cfg.HostWatchesBudget; b > 0 && s.watchesOpen >= b {
		s.mu.Unlock()
		op.end()
		return nil, fmt.Errorf("the server has %d watches open, its budget of the host's inotify instances (HostWatchesBudget); retry later: %w", b, ErrBusy)
	}
	op.b.watches++
	s.watchesOpen++
	s.mu.Unlock()
	w := &fileWatch{
		s: s, b: op.b, root: op.root, ifd: -1, base: path.Clean(req.Path), recursive: req.Recursive,
		maxDirs: s.cfg.MaxWatchDirs, dirs: map[int32]string{}, moves: map[uint32]*pendingMove{},
		tmpMove: map[uint32]driver.FileEventType{},
	}
	// A tree over MaxWatchDirs gives a watch that ends at once with the
	// error naming the limit: the stream reports it as an error event.
	var over *dirLimitError
	if err := w.init(rel); err != nil && !errors.As(err, &over) {
		w.release()
		return nil, err
	}
	w.q = watchqueue.New(s.cfg.MaxWatchQueue, w.stop)
	if !s.addCut(op.b, w, func() {
		w.finish(fmt.Errorf("sandbox %q was deleted or expired: %w", id, ErrNotFound))
	}) {
		w.q.Close()
		return nil, notFound(id)
	}
	w.reading.Add(1)
	go w.read()
	w.stopCtx = context.AfterFunc(ctx, func() { w.finish(nil) })
	if over != nil {
		w.finish(over)
	}
	return w.q, nil
}

// init makes the inotify instance and watches the tree.
func (w *fileWatch) init(rel string) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		return fmt.Errorf("the host's limit of inotify instances is reached (fs.inotify.max_user_instances); retry later: %w", ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	w.ifd = fd
	w.ino = os.NewFile(uintptr(fd), "inotify")
	dirfd, name, err := w.root.resolve(w.base, rel, resolveOpts{follow: true})
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	dfd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("path %q: not a directory: %w", w.base, driver.ErrConflict)
	}
	if err != nil {
		return pathError(w.base, err)
	}
	defer unix.Close(dfd)
	wd, err := w.add(dfd, w.base)
	if err != nil {
		return err
	}
	w.baseWd = wd
	if w.recursive {
		return w.scan(dfd, w.base, false)
	}
	return nil
}

// add watches the directory open as fd, the sandbox path p.
func (w *fileWatch) add(fd int, p string) (int32, error) {
	if len(w.dirs) >= w.maxDirs {
		return -1, &dirLimitError{base: w.base, max: w.maxDirs}
	}
	if b := w.s.cfg.HostWatchDirsBudget; b > 0 && w.s.watchDirs.Load() >= b {
		return -1, fmt.Errorf("path %q: the server's watches cover %d directories, its budget of the host's inotify watches (HostWatchDirsBudget); retry later: %w", w.base, b, ErrBusy)
	}
	wd, err := unix.InotifyAddWatch(w.ifd, fmt.Sprintf("/proc/self/fd/%d", fd), watchMask)
	if errors.Is(err, unix.ENOSPC) {
		return -1, fmt.Errorf("the host's limit of inotify watches is reached (fs.inotify.max_user_watches): %w", ErrBusy)
	}
	if err != nil {
		return -1, pathError(p, err)
	}
	if _, again := w.dirs[int32(wd)]; !again {
		w.s.watchDirs.Add(1)
	}
	w.dirs[int32(wd)] = p
	return int32(wd), nil
}

// dirLimitError ends a watch whose tree grew past MaxWatchDirs.
type dirLimitError struct {
	base string
	max  int
}

func (e *dirLimitError) Error() string {
	return fmt.Sprintf("path %q: the watch would cover more than %d directories, its limit (maxWatchDirs); watch a smaller tree: %v", e.base, e.max, ErrTooLarge)
}

func (e *dirLimitError) Unwrap() error { return ErrTooLarge }

// scan watches the subdirectories of the directory fd (sandbox path p),
// recursively; with report it queues a create for each entry (ones made
// before their directory's watch was in place).
func (w *fileWatch) scan(fd int, p string, report bool) error {
	for {
		ents, err := readDirents(fd, 256)
		if err != nil || len(ents) == 0 {
			return nil // gone meanwhile: its parent reports it
		}
		for _, e := range ents {
			if isTempName(e.name) {
				continue
			}
			cp := p + "/" + e.name
			isDir := direntIsDir(fd, e)
			if report {
				w.emit(driver.FileEvent{Type: driver.EventCreate, Path: cp, IsDir: isDir})
			}
			if isDir {
				if err := w.addTreeAt(fd, e.name, cp, report); err != nil {
					return err
				}
			}
		}
	}
}

// addTreeAt watches the directory name of dirfd (sandbox path p) and,
// recursively, those below it.
func (w *fileWatch) addTreeAt(dirfd int, name, p string, report bool) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // removed or replaced meanwhile
	}
	defer unix.Close(fd)
	if _, err := w.add(fd, p); err != nil {
		return err
	}
	return w.scan(fd, p, report)
}

// addTree watches the new directory p (recursive watches), reporting what
// was made in it before its watch was.
func (w *fileWatch) addTree(p string) error {
	rel, err := workspaceRel("path", p)
	if err != nil {
		return nil
	}
	dirfd, name, err := w.root.resolve(p, rel, resolveOpts{})
	if err != nil {
		return nil // gone meanwhile
	}
	defer unix.Close(dirfd)
	return w.addTreeAt(dirfd, name, p, true)
}

// isTempName reports the temporary files of writes in progress.
func isTempName(name string) bool {
	return strings.HasPrefix(name, tmpNewPrefix) || strings.HasPrefix(name, tmpReplacePrefix)
}

// read reads inotify events until the watch ends.
func (w *fileWatch) read() {
	defer w.reading.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.ino.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// No MOVED_TO followed the pending MOVED_FROMs.
			w.settleMoves()
			_ = w.ino.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.finish(fmt.Errorf("watch of %q: %w", w.base, err))
			}
			return
		}
		if err := w.handleBatch(buf[:n]); err != nil {
			w.finish(err)
			return
		}
		if len(w.moves) > 0 || len(w.tmpMove) > 0 {
			// A rename's two events can be split across reads: its
			// MOVED_TO gets a moment before the MOVED_FROM is settled.
			_ = w.ino.SetReadDeadline(time.Now().Add(moveSettle))
		} else {
			_ = w.ino.SetReadDeadline(time.Time{})
		}
	}
}

// moveSettle is how long a MOVED_FROM waits for its MOVED_TO when a read
// ended between the two.
const moveSettle = 10 * time.Millisecond

// settleMoves settles the MOVED_FROMs no MOVED_TO followed.
func (w *fileWatch) settleMoves() {
	w.movedOut()
	clear(w.tmpMove)
}

// handleBatch handles the events of one read.
func (w *fileWatch) handleBatch(b []byte) error {
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		cookie := binary.NativeEndian.Uint32(b[8:12])
		size := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
		if size > len(b) {
			break
		}
		name := string(b[unix.SizeofInotifyEvent:size])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if err := w.handle(wd, mask, cookie, name); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}

// movedOut reports the entries moved away whose MOVED_TO did not follow
// (moved out of the tree) as removed, and drops the watches of moved
// directories. The kernel queues a rename's two events one after the
// other, so anything else after a MOVED_FROM settles it, and so does a
// short wait when a read ended between the two (read).
func (w *fileWatch) movedOut() {
	for c, m := range w.moves {
		for wd := range m.detach {
			_, _ = unix.InotifyRmWatch(w.ifd, uint32(wd))
			w.s.watchDirs.Add(-1)
		}
		delete(w.moves, c)
		w.emit(driver.FileEvent{Type: driver.EventRemove, Path: m.old, IsDir: m.isDir})
	}
}

// emit hands ev to the queue.
func (w *fileWatch) emit(ev driver.FileEvent) { w.q.Emit(ev) }

// handle handles one inotify event.
func (w *fileWatch) handle(wd int32, mask, cookie uint32, name string) error {
	if mask&unix.IN_MOVED_TO == 0 && len(w.moves) > 0 {
		w.movedOut()
	}
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.emit(driver.FileEvent{Type: driver.EventOverflow})
		return nil
	}
	if mask&unix.IN_UNMOUNT != 0 {
		return fmt.Errorf("path %q: its file system went away (the sandbox is being deleted): %w", w.base, ErrNotFound)
	}
	dir, ok := w.dirs[wd]
	if mask&unix.IN_IGNORED != 0 {
		if ok {
			delete(w.dirs, wd)
			w.s.watchDirs.Add(-1)
		}
		if wd == w.baseWd {
			return fmt.Errorf("path %q: the watched directory was removed: %w", w.base, ErrNotFound)
		}
		return nil
	}
	if !ok {
		return nil
	}
	if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
		if wd == w.baseWd {
			return fmt.Errorf("path %q: the watched directory was removed or moved: %w", w.base, ErrNotFound)
		}
		return nil // its parent reports it
	}
	if name == "" {
		return nil
	}
	p := dir + "/" + name
	isDir := mask&unix.IN_ISDIR != 0
	temp := isTempName(name)
	switch {
	case mask&unix.IN_MOVED_FROM != 0 && temp:
		w.tmpMove[cookie] = driver.EventCreate
		if strings.HasPrefix(name, tmpReplacePrefix) {
			w.tmpMove[cookie] = driver.EventWrite
		}
	case mask&unix.IN_MOVED_TO != 0 && !temp:
		return w.movedTo(p, cookie, isDir)
	case temp:
	case mask&unix.IN_CREATE != 0:
		w.emit(driver.FileEvent{Type: driver.EventCreate, Path: p, IsDir: isDir})
		if isDir && w.recursive {
			return w.addTree(p)
		}
	case mask&unix.IN_MODIFY != 0:
		w.emit(driver.FileEvent{Type: driver.EventWrite, Path: p})
	case mask&unix.IN_ATTRIB != 0:
		w.emit(driver.FileEvent{Type: driver.EventChmod, Path: p, IsDir: isDir})
	case mask&unix.IN_DELETE != 0:
		w.emit(driver.FileEvent{Type: driver.EventRemove, Path: p, IsDir: isDir})
	case mask&unix.IN_MOVED_FROM != 0:
		m := &pendingMove{old: p, isDir: isDir}
		if isDir {
			m.detach = map[int32]string{}
			for d, dp := range w.dirs {
				if dp == p || strings.HasPrefix(dp, p+"/") {
					m.detach[d] = dp
					delete(w.dirs, d)
				}
			}
		}
		w.moves[cookie] = m
	}
	return nil
}

// movedTo handles an entry moved to p: the end of a rename inside the
// tree, a write of the files API put in place, or a move into the tree.
func (w *fileWatch) movedTo(p string, cookie uint32, isDir bool) error {
	if t, ok := w.tmpMove[cookie]; ok {
		delete(w.tmpMove, cookie)
		w.emit(driver.FileEvent{Type: t, Path: p})
		return nil
	}
	if m, ok := w.moves[cookie]; ok {
		delete(w.moves, cookie)
		for d, dp := range m.detach {
			w.dirs[d] = p + strings.TrimPrefix(dp, m.old)
		}
		w.emit(driver.FileEvent{Type: driver.EventRename, Path: p, OldPath: m.old, IsDir: isDir})
		return nil
	}
	w.emit(driver.FileEvent{Type: driver.EventCreate, Path: p, IsDir: isDir})
	if isDir && w.recursive {
		return w.addTree(p)
	}
	return nil
}

// finish ends the watch's source for the reason err (nil: the context
// ended): what is queued is still delivered, then Events is closed.
func (w *fileWatch) finish(err error) {
	w.endOnce.Do(func() {
		w.q.Finish(err)
		_ = w.ino.Close() // ends the reader
	})
}

// stop is the queue's onClose: it stops the reader and releases what the
// watch holds.
func (w *fileWatch) stop() {
	w.stopOnce.Do(func() {
		w.finish(nil)
		w.reading.Wait()
		if w.stopCtx != nil {
			w.stopCtx()
		}
		w.s.dropCut(w.b, w)
		w.release()
	})
}

// release gives back the watch's slot, workspace and sandbox.
func (w *fileWatch) release() {
	if w.ino != nil {
		_ = w.ino.Close()
	} else if w.ifd >= 0 {
		_ = unix.Close(w.ifd)
	}
	_ = w.root.Close()
	w.s.watchDirs.Add(-int64(len(w.dirs)))
	w.s.mu.Lock()
	w.b.watches--
	w.s.watchesOpen--
	w.s.mu.Unlock()
	w.s.release(w.b, false)
}

// watchBudgetNote is the info note on the server's share of the host's
// inotify limits.
func watchBudgetNote(c Config) string {
	budget := func(n int64) string {
		if n <= 0 {
			return "no bound"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("files.watch: inotify, shared with the host: at most %s watches open in the server at once (HostWatchesBudget) covering %s directories (HostWatchDirsBudget), by default half the host's fs.inotify.max_user_instances and max_user_watches; beyond, a watch is 503", budget(c.HostWatchesBudget), budget(c.HostWatchDirsBudget))
}
