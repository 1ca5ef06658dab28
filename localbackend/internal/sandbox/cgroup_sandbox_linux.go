package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sandboxCgroup is one sandbox's cgroup set.
type sandboxCgroup struct {
	v2       bool
	dirs     map[string]string // controller -> sandbox dir
	cmds     string            // parent of the per-command cgroups
	initDir  string            // where the init lives (v2: dirs[""]/init)
	taskFile string            // "tasks" (v1: move one thread) or "cgroup.procs" (v2)
	memCmds  string            // the memory cgroup with Limits.MemoryBytes, "" if none
}

// newSandbox creates the cgroups of one sandbox (name) below the
// Manager's and applies lim: the sandbox's limits (plus the init's
// reserve) on its own cgroup, the commands' on cmds. On error it removes
// what it created.
func (b *cgroupBase) newSandbox(name string, lim Limits) (*sandboxCgroup, error) {
	sc := &sandboxCgroup{v2: b.v2, dirs: map[string]string{}, taskFile: "tasks"}
	if b.v2 {
		sc.taskFile = "cgroup.procs"
	}
	if err := sc.create(b, name, lim); err != nil {
		sc.remove(context.Background())
		return nil, err
	}
	return sc, nil
}

// create makes the sandbox's directories and sets their limits.
func (sc *sandboxCgroup) create(b *cgroupBase, name string, lim Limits) error {
	for c, base := range b.dirs {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup: %w", err)
		}
		sc.dirs[c] = d
	}
	limit := sc.limitV1
	if b.v2 {
		limit = sc.limitV2
	}
	if err := limit(lim); err != nil {
		return err
	}
	if sc.initDir != sc.dirs["pids"] || b.v2 {
		if err := os.Mkdir(sc.initDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup: %w", err)
		}
	}
	if err := os.Mkdir(sc.cmds, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup: %w", err)
	}
	if lim.Pids > 0 {
		if err := setCgroup(sc.cmds, "pids.max", strconv.FormatInt(lim.Pids, 10)); err != nil {
			return err
		}
	}
	if b.v2 && lim.MemoryBytes > 0 {
		sc.memCmds = sc.cmds
		if err := setCgroup(sc.cmds, "memory.max", strconv.FormatInt(lim.MemoryBytes, 10)); err != nil {
			return err
		}
		_ = setCgroup(sc.cmds, "memory.swap.max", "0")
	}
	return nil
}

// limitV2 sets the sandbox cgroup's limits on v2 and places the init
// (init) and the commands (cmds) below it.
func (sc *sandboxCgroup) limitV2(lim Limits) error {
	d := sc.dirs[""]
	if err := setCgroup(d, "cgroup.subtree_control", "+memory +pids +cpu"); err != nil {
		return err
	}
	if lim.MemoryBytes > 0 {
		if err := setCgroup(d, "memory.max", strconv.FormatInt(lim.MemoryBytes+initMemReserve, 10)); err != nil {
			return err
		}
		_ = setCgroup(d, "memory.swap.max", "0")
	}
	if lim.CPUMilli > 0 {
		if err := setCgroup(d, "cpu.max", fmt.Sprintf("%d 100000", lim.CPUMilli*100)); err != nil {
			return err
		}
	}
	if lim.Pids > 0 {
		if err := setCgroup(d, "pids.max", strconv.FormatInt(lim.Pids+initPidsReserve, 10)); err != nil {
			return err
		}
	}
	sc.initDir = filepath.Join(d, "init")
	sc.cmds = filepath.Join(d, "cmds")
	return nil
}

// limitV1 sets the sandbox's limits in each v1 hierarchy (the commands'
// memory limit on a cmds cgroup of its own), and places the init in the
// pids cgroup, the commands in its cmds.
func (sc *sandboxCgroup) limitV1(lim Limits) error {
	if d := sc.dirs["memory"]; d != "" && lim.MemoryBytes > 0 {
		sc.memCmds = filepath.Join(d, "cmds")
		if err := os.Mkdir(sc.memCmds, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup: %w", err)
		}
		for dir, v := range map[string]int64{d: lim.MemoryBytes + initMemReserve, sc.memCmds: lim.MemoryBytes} {
			if err := setCgroup(dir, "memory.limit_in_bytes", strconv.FormatInt(v, 10)); err != nil {
				return err
			}
			// Only with swap accounting; must be >= limit_in_bytes.
			_ = writeFile(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(v, 10))
			_ = writeFile(dir, "memory.swappiness", "0")
		}
	}
	if d := sc.dirs["cpu"]; d != "" && lim.CPUMilli > 0 {
		if err := setCgroup(d, "cpu.cfs_period_us", "100000"); err != nil {
			return err
		}
		if err := setCgroup(d, "cpu.cfs_quota_us", strconv.FormatInt(lim.CPUMilli*100, 10)); err != nil {
			return err
		}
	}
	d := sc.dirs["pids"]
	if lim.Pids > 0 {
		if err := setCgroup(d, "pids.max", strconv.FormatInt(lim.Pids+initPidsReserve, 10)); err != nil {
			return err
		}
	}
	sc.initDir = d
	sc.cmds = filepath.Join(d, "cmds")
	return nil
}

// setCgroup writes val to a cgroup's file, with both in the error.
func setCgroup(dir, file, val string) error {
	if err := writeFile(dir, file, val); err != nil {
		return fmt.Errorf("cgroup %s=%s: %w", file, val, err)
	}
	return nil
}

// addProc moves a process (the init, before it runs anything) into the
// sandbox's cgroups.
func (sc *sandboxCgroup) addProc(pid int) error {
	for c, d := range sc.dirs {
		if c == "pids" || c == "" {
			d = sc.initDir
		}
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("move init into cgroup %s: %w", d, err)
		}
	}
	return nil
}

// openTasks opens the file the init writes "0" to in order to move its
// forking thread (v1) or itself (v2) into dir. The kernel checks the
// opener's (our) credentials, so the unprivileged init can use it.
func (sc *sandboxCgroup) openTasks(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, sc.taskFile), os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return f, nil
}

// newCommand creates the cgroup of one command and opens its task file.
func (sc *sandboxCgroup) newCommand(seq uint64) (string, *os.File, error) {
	d := filepath.Join(sc.cmds, "c"+strconv.FormatUint(seq, 10))
	if err := os.Mkdir(d, 0o755); err != nil {
		return "", nil, fmt.Errorf("create command cgroup: %w", err)
	}
	f, err := sc.openTasks(d)
	if err != nil {
		_ = unix.Rmdir(d)
		return "", nil, err
	}
	return d, f, nil
}

// oomKills reads the sandbox's OOM kill counter.
func (sc *sandboxCgroup) oomKills() int64 {
	if sc.memCmds == "" {
		return 0
	}
	d, file := sc.memCmds, "memory.oom_control"
	if sc.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(d, file))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove kills what runs in the sandbox's cgroups and removes them.
func (sc *sandboxCgroup) remove(ctx context.Context) {
	for _, d := range sc.dirs {
		removeTree(ctx, d)
	}
}
