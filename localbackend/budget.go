package localbackend

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Host budgets. Every running sandbox may start up to its Pids processes,
// each holding up to OpenFiles open files (RLIMIT_NOFILE), and the host's
// process and file tables are shared: without a budget 31 default
// sandboxes could exhaust a pid_max of 32768. The server admits a sandbox
// environment only while the sum of the limits of the running ones stays
// within HostPidsBudget and HostOpenFilesBudget, by default half of what
// the host allows (the other half stays for the host and the server).

// procSys is where the kernel's limits are read.
const procSys = "/proc/sys"

// hostLimits are the kernel's limits the budgets derive from; zero when
// unknown (not Linux).
type hostLimits struct {
	pidMax, threadsMax, fileMax int64
	// fs.inotify.max_user_instances and max_user_watches: per host user,
	// shared by the server with every other process of its user.
	inotifyInstances, inotifyWatches int64
}

// readHostLimits reads kernel.pid_max, kernel.threads-max and fs.file-max
// under dir.
func readHostLimits(dir string) hostLimits {
	read := func(name string) int64 {
		b, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			return 0
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	return hostLimits{
		pidMax: read("kernel/pid_max"), threadsMax: read("kernel/threads-max"), fileMax: read("fs/file-max"),
		inotifyInstances: read("fs/inotify/max_user_instances"), inotifyWatches: read("fs/inotify/max_user_watches"),
	}
}

// half is half of a kernel limit, or -1 (no budget) when unknown.
func half(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return max(n/2, 1)
}

// pidsBudget is half of the host's processes (the smaller of pid_max and
// threads-max: both count every thread), or -1 (none) when unknown.
func (h hostLimits) pidsBudget() int64 {
	n := h.pidMax
	if h.threadsMax > 0 && (n == 0 || h.threadsMax < n) {
		n = h.threadsMax
	}
	if n <= 0 {
		return -1
	}
	return n / 2
}

// openFilesBudget is half of fs.file-max, or -1 (none) when unknown or
// effectively unlimited.
func (h hostLimits) openFilesBudget() int64 {
	if h.fileMax <= 0 || h.fileMax >= 1<<62 {
		return -1
	}
	return h.fileMax / 2
}

// budgetLocked returns an ErrBusy error when starting the environment of
// a sandbox with pids processes would exceed a host budget, counting every
// other sandbox whose environment runs or is being built (self, when
// non-nil, is not counted). s.mu must be held.
func (s *store) budgetLocked(self *box, pids int64) error {
	if s.cfg.HostPidsBudget <= 0 && s.cfg.HostOpenFilesBudget <= 0 {
		return nil
	}
	var running, usedPids int64
	for _, b := range s.boxes {
		if b != self && (b.env != nil || b.starting) {
			running++
			usedPids += b.meta.Pids
		}
	}
	if s.cfg.HostPidsBudget > 0 && usedPids+pids > s.cfg.HostPidsBudget {
		return fmt.Errorf("the host's process budget is spent: %d running sandboxes may start %d of the %d processes this server allows (HostPidsBudget); retry later or delete idle sandboxes: %w",
			running, usedPids, s.cfg.HostPidsBudget, ErrBusy)
	}
	usedFiles := running * s.cfg.OpenFiles
	if s.cfg.HostOpenFilesBudget > 0 && usedFiles+s.cfg.OpenFiles > s.cfg.HostOpenFilesBudget {
		return fmt.Errorf("the host's open-file budget is spent: %d running sandboxes may open %d of the %d files this server allows (HostOpenFilesBudget); retry later or delete idle sandboxes: %w",
			running, usedFiles, s.cfg.HostOpenFilesBudget, ErrBusy)
	}
	return nil
}
