package sandbox

import (
	"fmt"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// allThreadsSyscall runs a syscall on every thread (psx also works in cgo
// binaries, where syscall.AllThreadsSyscall does not).
func allThreadsSyscall(trap, a1, a2, a3 uintptr) (uintptr, uintptr, syscall.Errno) {
	return psx.Syscall6(trap, a1, a2, a3, 0, 0, 0)
}

// loadSeccomp installs the deny-list on every thread of the init (TSYNC);
// commands inherit it.
func loadSeccomp() error {
	return wrap("seccomp", seccomp.LoadFilter(seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy:     seccompPolicy(),
	}))
}

// seccompPolicy denies kernel attack surface a build or test never needs,
// and every way to new namespaces, mounts or other processes' memory.
func seccompPolicy() seccomp.Policy {
	const nsFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
	enosys := seccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{
				Action: seccomp.ActionErrno, // EPERM
				Names: []string{
					"add_key", "keyctl", "request_key", "bpf", "perf_event_open",
					"userfaultfd", "kexec_load", "kexec_file_load", "init_module",
					"finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at",
					"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
					"fsmount", "fsconfig", "fspick", "mount_setattr", "setns", "unshare",
					"io_uring_setup", "io_uring_enter", "io_uring_register", "ptrace",
					"process_vm_readv", "process_vm_writev", "swapon", "swapoff",
					"reboot", "syslog", "acct", "quotactl", "lookup_dcookie", "vhangup",
					"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
					"iopl", "ioperm", "pidfd_getfd", "kcmp",
				},
			},
			{
				Action: seccomp.ActionErrno,
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name:       "clone",
					Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: nsFlags}},
				}},
			},
			// clone3 passes its flags in memory the filter cannot read;
			// ENOSYS makes glibc and Go fall back to clone(2).
			{Action: enosys, Names: []string{"clone3"}},
		},
	}
}

// landlockABI returns the kernel's Landlock ABI version, 0 if none.
func landlockABI() int {
	const createRulesetVersion = 1
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, createRulesetVersion)
	if e != 0 {
		return 0
	}
	return int(v)
}

// restrictLandlock confines the init (and so every command): system
// directories read-only, the workspace and its tmp directory read-write,
// no TCP bind/connect, no signals or abstract sockets outside.
func restrictLandlock(c *initConfig) ([]string, error) {
	var notes []string
	abi := landlockABI()
	if abi < 4 {
		notes = append(notes, "Landlock below ABI 4 cannot deny TCP: the network is reachable")
	}
	if abi < 6 {
		notes = append(notes, "Landlock below ABI 6 cannot scope signals: commands may signal host processes of the same uid")
	}
	rules := []landlock.Rule{
		landlock.RODirs(append(hostSystemDirs(), "/proc")...).IgnoreIfMissing(),
		landlock.RWDirs(c.Workspace, c.TmpDir),
		landlock.RWFiles("/dev/null", "/dev/zero", "/dev/full", "/dev/tty").IgnoreIfMissing(),
		landlock.ROFiles("/dev/random", "/dev/urandom").IgnoreIfMissing(),
	}
	if err := landlock.V7.BestEffort().Restrict(rules...); err != nil {
		return nil, fmt.Errorf("landlock: %w", err)
	}
	return notes, nil
}
