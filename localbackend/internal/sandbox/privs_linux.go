package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

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

// Securebits (linux/securebits.h).
const (
	secbitNoRoot                 = 1 << 0
	secbitNoRootLocked           = 1 << 1
	secbitNoSetuidFixup          = 1 << 2
	secbitNoSetuidFixupLocked    = 1 << 3
	secbitKeepCapsLocked         = 1 << 5
	secbitNoCapAmbientRaise      = 1 << 6
	secbitNoCapAmbientRaiseLockd = 1 << 7
)

// lastCap is the highest capability number the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return n
}

// dropBounding empties this thread's capability bounding set.
func dropBounding() error {
	for c := 0; c <= lastCap(); c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return wrap("drop bounding set", err)
		}
	}
	return nil
}

// dropPrivileges leaves this thread (the one that forks commands) with no
// capabilities in any set, locked securebits and no_new_privs.
func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return wrap("clear ambient caps", err)
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil && (data[0].Effective&(1<<unix.CAP_SETPCAP)) != 0 {
		if err := dropBounding(); err != nil {
			return err
		}
		if err := unix.Prctl(unix.PR_SET_SECUREBITS, secbitNoRoot|secbitNoRootLocked|secbitNoSetuidFixup|
			secbitNoSetuidFixupLocked|secbitKeepCapsLocked|secbitNoCapAmbientRaise|secbitNoCapAmbientRaiseLockd, 0, 0, 0); err != nil {
			return wrap("securebits", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return wrap("no_new_privs", err)
	}
	data = [2]unix.CapUserData{}
	return wrap("capset", unix.Capset(&hdr, &data[0]))
}

// dropOtherThreads clears the capabilities of the init's other threads too,
// (psx works in cgo and pure Go binaries). Only the locked main thread
// forks commands, so this is hygiene, not the barrier.
func dropOtherThreads() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := allThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 {
		return "the sandbox init's helper threads keep their ambient capabilities (" + e.Error() + "); commands are forked only from the dropped thread"
	}
	if _, _, e := allThreadsSyscall(unix.SYS_CAPSET, uintptr(ptr(&hdr)), uintptr(ptr(&data[0])), 0); e != 0 {
		return "the sandbox init's helper threads keep their capabilities (" + e.Error() + "); commands are forked only from the dropped thread"
	}
	return ""
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
		landlock.RWFiles("/dev/null", "/dev/zero", "/dev/full").IgnoreIfMissing(),
		// /dev/tty is the opener's controlling terminal (a command has
		// none unless it runs on its own): stty, less and vim need its
		// ioctls, which Landlock ABI 5 denies on devices by default.
		landlock.RWFiles("/dev/tty").WithIoctlDev().IgnoreIfMissing(),
		landlock.ROFiles("/dev/random", "/dev/urandom").IgnoreIfMissing(),
	}
	if err := landlock.V7.BestEffort().Restrict(rules...); err != nil {
		return nil, fmt.Errorf("landlock: %w", err)
	}
	return notes, nil
}
