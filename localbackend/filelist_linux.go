package localbackend

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
)

// listDir returns a page of the tree below req.Path in lexical order of
// the entries' paths (see driver.Files). Its cost is bounded by the page:
// it visits at most req.Limit+1 directories beside the ancestors of
// req.After, reads each once (or again when entries it kept vanished
// meanwhile) keeping only the req.Limit+1 smallest names it may need,
// and never follows a link below req.Path.
func (s *store) listDir(ctx context.Context, id string, req driver.ListDirRequest) ([]driver.FileInfo, bool, error) {
	rel, err := workspaceRel("path", req.Path)
	if err != nil {
		return nil, false, err
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return nil, false, err
	}
	defer op.end()
	sp := path.Clean(req.Path)
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{follow: true})
	if err != nil {
		return nil, false, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	unix.Close(dirfd)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil, false, fmt.Errorf("path %q: not a directory: %w", sp, driver.ErrConflict)
	}
	if err != nil {
		return nil, false, pathError(sp, err)
	}
	defer unix.Close(fd)
	l := &lister{ctx: ctx, depth: max(req.Depth, 1), limit: max(req.Limit, 1), after: req.After}
	base := sp
	if base == "/" {
		base = ""
	}
	if err := l.list(fd, base, 1); err != nil && !errors.Is(err, errPageFull) {
		return nil, false, pathError(sp, err)
	}
	return l.out, l.more, nil
}

// errPageFull stops a listing whose page is complete.
var errPageFull = errors.New("page full")

// lister builds one page of a listing.
type lister struct {
	ctx          context.Context
	depth, limit int
	after        string
	out          []driver.FileInfo
	more         bool
}

// listKey is what a directory contributes to a listing, in order: an
// entry itself (key name) or the entries below a directory (key name+"/",
// which sorts where its paths do).
type listKey struct {
	key  string
	name string
	sub  bool
}

// list adds the entries of the directory fd (sandbox path dir, at level)
// and, while level < depth, those below its subdirectories.
func (l *lister) list(fd int, dir string, level int) error {
	bound := "" // keys at or below it were handled (a re-read)
	for {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		need := l.limit - len(l.out) + 1
		keys, truncated, err := l.smallest(fd, dir, level, bound, need)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := l.emit(fd, dir, level, k); err != nil {
				return err
			}
			bound = k.key
		}
		if !truncated {
			return nil
		}
		if _, err := unix.Seek(fd, 0, 0); err != nil {
			return err
		}
	}
}

// emit adds the entry of key k of the directory fd, or the entries below it.
func (l *lister) emit(fd int, dir string, level int, k listKey) error {
	p := dir + "/" + k.name
	if k.sub {
		sub, err := unix.Openat(fd, k.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil // replaced or removed meanwhile
		}
		defer unix.Close(sub)
		return l.list(sub, p, level+1)
	}
	fi, err := statInfo(fd, k.name, p)
	if err != nil {
		return nil // removed meanwhile
	}
	if len(l.out) == l.limit {
		l.more = true
		return errPageFull
	}
	l.out = append(l.out, fi)
	return nil
}

// smallest reads the directory fd and returns, sorted, the need smallest
// of its keys above bound that the page may hold (paths after l.after),
// and whether it left some out.
func (l *lister) smallest(fd int, dir string, level int, bound string, need int) ([]listKey, bool, error) {
	h := &keyHeap{}
	truncated := false
	add := func(k listKey) {
		if k.key <= bound && bound != "" {
			return
		}
		if h.Len() < need {
			heap.Push(h, k)
			return
		}
		truncated = true
		if k.key < (*h)[0].key {
			(*h)[0] = k
			heap.Fix(h, 0)
		}
	}
	for {
		ents, err := readDirents(fd, 256)
		if err != nil {
			return nil, false, err
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			p := dir + "/" + e.name
			if p > l.after {
				add(listKey{key: e.name, name: e.name})
			}
			if level < l.depth && direntIsDir(fd, e) && subtreeAfter(p+"/", l.after) {
				add(listKey{key: e.name + "/", name: e.name, sub: true})
			}
		}
	}
	keys := []listKey(*h)
	slices.SortFunc(keys, func(a, b listKey) int { return cmp.Compare(a.key, b.key) })
	return keys, truncated, nil
}

// subtreeAfter reports whether a path starting with prefix can sort after
// after.
func subtreeAfter(prefix, after string) bool {
	return after < prefix || strings.HasPrefix(after, prefix)
}

// keyHeap is a max-heap of keys: the largest kept is at the top.
type keyHeap []listKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].key > h[j].key }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(listKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
