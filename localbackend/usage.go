package localbackend

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// entryCharge is the least an entry of a workspace counts for: one file
// system block, so that inodes are not free (an empty file still costs
// an inode and a directory entry).
const entryCharge = 4096

// maxWalkDepth bounds the directories a walk holds open at once: a
// deeper tree cannot be measured, which counts as over the limit.
const maxWalkDepth = 1024

// errTooDeep is a workspace nested deeper than maxWalkDepth.
var errTooDeep = fmt.Errorf("directories nested deeper than %d levels", maxWalkDepth)

// usageWalk measures the storage a workspace uses, resumably: every step
// visits at most a given number of entries, so that the monitor's work
// per tick is bounded however many files the sandboxes hold. It never
// resolves a path: each directory is opened relative to its parent's
// descriptor with O_NOFOLLOW (links are counted, never followed), so
// neither a link planted by sandboxed code nor a path longer than
// PATH_MAX changes what it measures.
//
// An entry counts for the larger of its apparent size (regular files:
// sparse files count whole) and its allocated blocks, and for at least
// entryCharge.
type usageWalk struct {
	root  string
	stack []*walkDir // open directories, the deepest last
	used  int64
}

// walkDir is an open directory and its entries not yet visited.
type walkDir struct {
	f       *os.File
	pending []string
}

// newUsageWalk starts a measurement of the directory root.
func newUsageWalk(root string) *usageWalk { return &usageWalk{root: root} }

// step visits up to budget entries and returns how many it visited and
// whether the measurement is complete (w.used is then the usage) or
// stopped early because w.used exceeds capAt. An error (the workspace
// cannot be measured) ends the walk; the caller treats the sandbox as
// over its limit, never as unlimited.
func (w *usageWalk) step(budget int, capAt int64) (visited int, done bool, err error) {
	if w.stack == nil {
		fd, err := unix.Open(w.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return 0, true, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("open workspace: %w", err)
		}
		w.stack = []*walkDir{{f: os.NewFile(uintptr(fd), "workspace")}}
		w.used = entryCharge
	}
	for visited < budget {
		if w.used > capAt {
			return visited, true, nil
		}
		if len(w.stack) == 0 {
			return visited, true, nil
		}
		top := w.stack[len(w.stack)-1]
		if len(top.pending) == 0 {
			names, err := top.f.Readdirnames(256)
			if len(names) == 0 {
				if err != nil && !errors.Is(err, io.EOF) {
					return visited, false, fmt.Errorf("read directory: %w", err)
				}
				top.f.Close()
				w.stack = w.stack[:len(w.stack)-1]
				continue
			}
			top.pending = names
		}
		name := top.pending[0]
		top.pending = top.pending[1:]
		visited++
		if err := w.visit(top, name); err != nil {
			return visited, false, err
		}
	}
	return visited, len(w.stack) == 0 || w.used > capAt, nil
}

// visit charges the entry name of dir and descends into it when it is a
// directory.
func (w *usageWalk) visit(dir *walkDir, name string) error {
	dfd := int(dir.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed meanwhile
		}
		return fmt.Errorf("stat: %w", err)
	}
	n := st.Blocks * 512
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		n = max(n, st.Size)
	}
	w.used += max(n, entryCharge)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	if len(w.stack) >= maxWalkDepth {
		return errTooDeep
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return nil // removed or replaced meanwhile
	case err != nil:
		return fmt.Errorf("open directory: %w", err)
	}
	w.stack = append(w.stack, &walkDir{f: os.NewFile(uintptr(fd), name)})
	return nil
}

// close releases the walk's directories.
func (w *usageWalk) close() {
	for _, d := range w.stack {
		d.f.Close()
	}
	w.stack = nil
}

// measureUsage measures root whole (up to budget entries): for uploads and
// the floor after a kill. A workspace with more entries than budget is an
// error.
func measureUsage(root string, budget int, capAt int64) (used int64, capped bool, err error) {
	w := newUsageWalk(root)
	defer w.close()
	_, done, err := w.step(budget, capAt)
	if err != nil {
		return w.used, false, err
	}
	if !done {
		return w.used, false, fmt.Errorf("more than %d entries", budget)
	}
	return w.used, w.used > capAt, nil
}
