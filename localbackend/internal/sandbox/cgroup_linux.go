package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroup layout, nested under the server's own cgroup so that limits nest:
//
//	<self>/nox-sandbox/m<pid>-<rand>/   one per Manager (cgroupBase.dir)
//	  s-<key>-<n>/                      one per sandbox: cpu limit, pids and memory limits plus a
//	                                    reserve for the init; the init lives here
//	    cmds/                           pids.max = Limits.Pids, memory limit = Limits.MemoryBytes:
//	                                    every command's processes, so the OOM killer never picks the init
//	      c<seq>/                       one per command (pids only on v1), for the tree kill
//
// On v1 every level exists once per controller hierarchy (memory, cpu,
// pids); cmds only in pids and memory, c<seq> only in pids. On v2 it is
// one tree, and the init lives in s-<key>-<n>/init because of the
// no-internal-process rule.

const (
	cgroupRoot    = "/sys/fs/cgroup"
	cgroupTopName = "nox-sandbox"
	// initPidsReserve is what the init keeps for its own threads beyond
	// Limits.Pids, so a fork bomb in the commands cannot starve it.
	initPidsReserve = 64
	// initMemReserve is what the init may use beyond Limits.MemoryBytes.
	initMemReserve = 64 << 20
	cgroup2Magic   = 0x63677270
)

// cgroupBase is the Manager's cgroup directory in every hierarchy it uses.
type cgroupBase struct {
	v2   bool
	dirs map[string]string // controller ("" on v2) -> directory
}

// selfCgroups parses /proc/self/cgroup into controller -> path ("" for v2).
func selfCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroup: %w", err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m, s.Err()
}

// newCgroupBase finds a writable hierarchy and creates the Manager's
// directory in it, after removing stale ones left by dead servers. It
// returns nil and a reason when there is none.
func newCgroupBase(name string) (*cgroupBase, string) {
	self, err := selfCgroups()
	if err != nil {
		return nil, err.Error()
	}
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) == nil && st.Type == cgroup2Magic {
		// Pure v2: we need a delegated subtree where memory, pids and cpu
		// can be enabled for our children. Our own cgroup may not hold
		// processes then ("no internal processes"): if it refuses, move
		// the server into a leaf beside the sandboxes.
		parent := filepath.Join(cgroupRoot, self[""])
		const ctrls = "+memory +pids +cpu"
		if err := writeFile(parent, "cgroup.subtree_control", ctrls); errors.Is(err, unix.EBUSY) {
			leaf := filepath.Join(parent, "nox-server")
			if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Sprintf("cgroup v2: cannot create %s: %v", leaf, err)
			}
			if err := writeFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
				return nil, fmt.Sprintf("cgroup v2: cannot move the server into %s: %v", leaf, err)
			}
			err = writeFile(parent, "cgroup.subtree_control", ctrls)
			if err != nil {
				return nil, fmt.Sprintf("cgroup v2: cannot enable memory, pids and cpu below %s (no delegation?): %v", parent, err)
			}
		} else if err != nil {
			return nil, fmt.Sprintf("cgroup v2: cannot enable memory, pids and cpu below %s (no delegation?): %v", parent, err)
		}
		top := filepath.Join(parent, cgroupTopName)
		b := &cgroupBase{v2: true, dirs: map[string]string{"": filepath.Join(top, name)}}
		if err := os.MkdirAll(b.dirs[""], 0o755); err != nil {
			return nil, fmt.Sprintf("cgroup v2 subtree %s is not writable: %v", parent, err)
		}
		for _, d := range []string{top, b.dirs[""]} {
			if err := writeFile(d, "cgroup.subtree_control", ctrls); err != nil {
				_ = os.Remove(b.dirs[""])
				return nil, fmt.Sprintf("cgroup v2: cannot enable memory, pids and cpu below %s: %v", d, err)
			}
		}
		cleanStale(top, name)
		return b, ""
	}
	b := &cgroupBase{dirs: map[string]string{}}
	// cpuacct only measures (a sandbox's CPU time, see usage); when it is
	// co-mounted with cpu, the cpu directories have its files already.
	for _, c := range []string{"memory", "cpu", "pids", "cpuacct"} {
		h := filepath.Join(cgroupRoot, c)
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		if c == "cpuacct" && sameDir(h, filepath.Join(cgroupRoot, "cpu")) {
			continue
		}
		top := filepath.Join(h, self[c], cgroupTopName)
		d := filepath.Join(top, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			continue
		}
		if c == "memory" {
			// Limits below must be enforceable hierarchically.
			_ = writeFile(d, "memory.use_hierarchy", "1")
		}
		cleanStale(top, name)
		b.dirs[c] = d
	}
	if b.dirs["pids"] == "" {
		b.remove()
		return nil, "no writable cgroup v1 pids hierarchy"
	}
	return b, ""
}

// sameDir reports whether a and b are the same directory (co-mounted v1
// hierarchies are symbolic links to one mount).
func sameDir(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// cleanStale removes Manager directories below top whose server process is
// gone (named m<pid>-...), killing whatever still runs in them.
func cleanStale(top, keep string) {
	ents, err := os.ReadDir(top)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name() == keep || !strings.HasPrefix(e.Name(), "m") {
			continue
		}
		pidStr, _, _ := strings.Cut(e.Name()[1:], "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // a live server (maybe another Manager of ours)
		}
		removeTree(context.Background(), filepath.Join(top, e.Name()))
	}
}

// removeTree kills every process in a cgroup subtree and removes it,
// deepest first.
func removeTree(ctx context.Context, dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeTree(ctx, filepath.Join(dir, e.Name()))
		}
	}
	killCgroup(ctx, dir)
	rmdirRetry(ctx, dir)
}

// rmdirRetry removes an (empty) cgroup directory, retrying while the last
// exiting task is still attached.
func rmdirRetry(ctx context.Context, dir string) error {
	delay := time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if i >= 40 || ctx.Err() != nil {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// killCgroup SIGKILLs every process of one cgroup until it is empty: the
// v1 way, where a process may fork between the read and the kill (a
// process with a pending SIGKILL cannot fork, so this converges). A pid in
// spare (the sandbox's init, whose forking thread visits command cgroups)
// is never killed: the loop waits for it to leave.
func killCgroup(ctx context.Context, dir string, spare ...int) error {
	if len(spare) == 0 && writeFile(dir, "cgroup.kill", "1") == nil { // v2, 5.14+
		return waitEmpty(ctx, dir)
	}
	for i := 0; ; i++ {
		pids, err := readPids(dir)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, p := range pids {
			if !slices.Contains(spare, p) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if i > 2000 || ctx.Err() != nil {
			return fmt.Errorf("cgroup %s: %d processes survive SIGKILL", dir, len(pids))
		}
		if i > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// waitEmpty waits until no process is left in a cgroup (after
// cgroup.kill).
func waitEmpty(ctx context.Context, dir string) error {
	for i := 0; ; i++ {
		pids, err := readPids(dir)
		if err != nil || len(pids) == 0 {
			return err
		}
		if i > 2000 || ctx.Err() != nil {
			return fmt.Errorf("cgroup %s: %d processes survive cgroup.kill", dir, len(pids))
		}
		time.Sleep(time.Millisecond)
	}
}

// readPids lists the processes of a cgroup; none when it is gone.
func readPids(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read cgroup: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// writeFile writes val to dir/name, which must exist (a cgroup file).
func writeFile(dir, name, val string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// remove kills what runs in the Manager's cgroups and removes them.
func (b *cgroupBase) remove() {
	for _, d := range b.dirs {
		removeTree(context.Background(), d)
	}
}

// has reports whether this base can enforce limit ("cpu", "memory",
// "pids").
func (b *cgroupBase) has(limit string) bool {
	if b == nil {
		return false
	}
	if b.v2 {
		return true
	}
	switch limit {
	case "memory":
		return b.dirs["memory"] != ""
	case "cpu":
		return b.dirs["cpu"] != ""
	case "pids":
		return b.dirs["pids"] != ""
	}
	return false
}
