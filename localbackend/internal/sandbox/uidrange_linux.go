package sandbox

// The host-wide registry of uid ranges. A root server runs each sandbox as
// a host uid of its own; per-uid kernel limits (inotify instances, RLIMIT_NPROC,
// keyrings, ...) and file ownership are then per sandbox, but only if no
// other server on the host hands out the same uids. Every Manager of the
// host therefore registers its state directory (one per data directory) in
// one file, under an exclusive flock, and gets a range of uidRangeSize
// uids no other registered directory, /etc/subuid, /etc/subgid, /etc/passwd
// or /etc/group uses: like /etc/subuid, assigned once and kept across
// restarts (a workspace keeps its owner).
//
// The file has one line per directory:
//
//	<first uid>:<count>:<device>:<inode>:<canonical path>
//
// A directory is recognized by its device and inode (a moved directory
// keeps its range) or else by its path (a directory recreated at the same
// path takes the range over). Entries of directories that no longer exist
// are dropped when another directory registers; a Manager that created its
// state directory itself (Options.StateDir empty) drops its entry on
// Close.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Where ranges are looked for: above the ids distributions hand out
// (system and login users, the usual /etc/subuid ranges, and 200000-299999
// used by earlier versions of this runtime), below 2^31 (some tools take
// uids for signed 32-bit integers).
const (
	uidRangeSize   = 65536
	uidSearchStart = 1 << 20
	uidSearchEnd   = 1 << 31
)

// uidRange is a range of host uids (and the gids of the same numbers).
type uidRange struct {
	First, Count int
}

// contains reports whether uid lies in r.
func (r uidRange) contains(uid int) bool { return uid >= r.First && uid < r.First+r.Count }

// overlaps reports whether r and o share an id.
func (r uidRange) overlaps(o uidRange) bool {
	return r.First < o.First+o.Count && o.First < r.First+r.Count
}

// uidRegistry is the registry file and the host files whose ids it keeps
// clear of.
type uidRegistry struct {
	path string
	// reserved are files of "name:first:count" ranges (/etc/subuid) and
	// of passwd/group entries ("name:x:id:...").
	subIDFiles, idFiles []string
}

// hostUIDRegistry is the registry at path on this host.
func hostUIDRegistry(path string) *uidRegistry {
	return &uidRegistry{
		path:       path,
		subIDFiles: []string{"/etc/subuid", "/etc/subgid"},
		idFiles:    []string{"/etc/passwd", "/etc/group"},
	}
}

// registryEntry is one line of the registry.
type registryEntry struct {
	uidRange
	dev, ino uint64
	path     string
}

// dirID is how the registry recognizes a directory.
type dirID struct {
	dev, ino uint64
	path     string
}

// identify returns the canonical path, device and inode of dir.
func identify(dir string) (dirID, error) {
	p, err := filepath.Abs(dir)
	if err == nil {
		p, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return dirID{}, err
	}
	if strings.ContainsAny(p, "\n") {
		return dirID{}, fmt.Errorf("%q: a newline in the path", p)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return dirID{}, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return dirID{dev: uint64(st.Dev), ino: uint64(st.Ino), path: p}, nil
}

// register returns the range of dir, registering a free one if it has
// none.
func (g *uidRegistry) register(dir string) (uidRange, error) {
	id, err := identify(dir)
	if err != nil {
		return uidRange{}, fmt.Errorf("uid registry: %w", err)
	}
	var out uidRange
	err = g.update(func(entries []registryEntry) ([]registryEntry, error) {
		// The directory's own entry: same inode (maybe moved), else same
		// path (recreated).
		for _, match := range []func(e registryEntry) bool{
			func(e registryEntry) bool { return e.dev == id.dev && e.ino == id.ino },
			func(e registryEntry) bool { return e.path == id.path },
		} {
			for i, e := range entries {
				if match(e) {
					entries[i].dev, entries[i].ino, entries[i].path = id.dev, id.ino, id.path
					out = e.uidRange
					return entries, nil
				}
			}
		}
		entries = dropVanished(entries)
		r, err := g.free(entries)
		if err != nil {
			return nil, err
		}
		out = r
		return append(entries, registryEntry{uidRange: r, dev: id.dev, ino: id.ino, path: id.path}), nil
	})
	return out, err
}

// release removes the entry of dir (by inode or path), if any.
func (g *uidRegistry) release(dir string) error {
	id, err := identify(dir)
	if err != nil {
		id = dirID{path: dir} // gone already: match by path only
	}
	return g.update(func(entries []registryEntry) ([]registryEntry, error) {
		kept := entries[:0]
		for _, e := range entries {
			if !(e.path == id.path || id.ino != 0 && e.dev == id.dev && e.ino == id.ino) {
				kept = append(kept, e)
			}
		}
		return kept, nil
	})
}

// dropVanished drops the entries of directories that no longer exist (or
// whose path now names another directory).
func dropVanished(entries []registryEntry) []registryEntry {
	kept := entries[:0]
	for _, e := range entries {
		var st unix.Stat_t
		err := unix.Stat(e.path, &st)
		if errors.Is(err, unix.ENOENT) || err == nil && (uint64(st.Dev) != e.dev || uint64(st.Ino) != e.ino) {
			continue
		}
		kept = append(kept, e)
	}
	return kept
}

// free returns the lowest range of the search space that overlaps no
// entry and no id of the host's account files.
func (g *uidRegistry) free(entries []registryEntry) (uidRange, error) {
	var taken []uidRange
	for _, e := range entries {
		taken = append(taken, e.uidRange)
	}
	taken = append(taken, g.hostIDs()...)
	for first := uidSearchStart; first+uidRangeSize <= uidSearchEnd; first += uidRangeSize {
		r := uidRange{first, uidRangeSize}
		clear := true
		for _, t := range taken {
			if r.overlaps(t) {
				clear = false
				break
			}
		}
		if clear {
			return r, nil
		}
	}
	return uidRange{}, errors.New("uid registry: no free range of host uids left")
}

// hostIDs lists the ids the host's account files use: subordinate ranges
// and the ids of users and groups.
func (g *uidRegistry) hostIDs() []uidRange {
	var out []uidRange
	scan := func(file string, f func(fields []string)) {
		fh, err := os.Open(file)
		if err != nil {
			return
		}
		defer fh.Close()
		s := bufio.NewScanner(fh)
		for s.Scan() {
			f(strings.Split(s.Text(), ":"))
		}
	}
	for _, file := range g.subIDFiles {
		scan(file, func(f []string) {
			if len(f) >= 3 {
				first, err1 := strconv.Atoi(f[1])
				n, err2 := strconv.Atoi(f[2])
				if err1 == nil && err2 == nil && n > 0 {
					out = append(out, uidRange{first, n})
				}
			}
		})
	}
	for _, file := range g.idFiles {
		scan(file, func(f []string) {
			if len(f) >= 3 {
				if id, err := strconv.Atoi(f[2]); err == nil {
					out = append(out, uidRange{id, 1})
				}
			}
		})
	}
	return out
}

// update runs f on the registry's entries under the registry's lock and
// writes what it returns (atomically, by rename).
func (g *uidRegistry) update(f func([]registryEntry) ([]registryEntry, error)) error {
	if err := os.MkdirAll(filepath.Dir(g.path), 0o755); err != nil {
		return fmt.Errorf("uid registry: %w", err)
	}
	lock, err := os.OpenFile(g.path+".lock", os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("uid registry: %w", err)
	}
	defer lock.Close() // releases the flock
	for {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("uid registry: lock %s: %w", lock.Name(), err)
	}
	entries, err := g.read()
	if err != nil {
		return err
	}
	entries, err = f(entries)
	if err != nil {
		return err
	}
	return g.write(entries)
}

// read parses the registry; a missing file is empty, a malformed line an
// error (never silently dropped: its range would be handed out again).
func (g *uidRegistry) read() ([]registryEntry, error) {
	b, err := os.ReadFile(g.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("uid registry: %w", err)
	}
	var out []registryEntry
	for i, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.SplitN(l, ":", 5)
		var e registryEntry
		var errs [4]error
		if len(f) == 5 {
			e.First, errs[0] = strconv.Atoi(f[0])
			e.Count, errs[1] = strconv.Atoi(f[1])
			e.dev, errs[2] = strconv.ParseUint(f[2], 10, 64)
			e.ino, errs[3] = strconv.ParseUint(f[3], 10, 64)
			e.path = f[4]
		}
		if len(f) != 5 || errors.Join(errs[:]...) != nil || e.Count <= 0 || e.path == "" {
			return nil, fmt.Errorf("uid registry %s: line %d is malformed: %q", g.path, i+1, l)
		}
		out = append(out, e)
	}
	return out, nil
}

// write replaces the registry with entries.
func (g *uidRegistry) write(entries []registryEntry) error {
	var b strings.Builder
	b.WriteString("# nox: host uid ranges of sandbox state directories (first:count:device:inode:path)\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%d:%d:%d:%d:%s\n", e.First, e.Count, e.dev, e.ino, e.path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(g.path), "."+filepath.Base(g.path)+".*")
	if err != nil {
		return fmt.Errorf("uid registry: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(b.String())
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), g.path)
	}
	if err != nil {
		return fmt.Errorf("uid registry: %w", err)
	}
	return nil
}
