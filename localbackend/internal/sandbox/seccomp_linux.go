package sandbox

import (
	"fmt"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter of every command: a deny-list (seccompPolicy),
// assembled by go-seccomp-bpf, behind a guard of our own (archGuard). The
// library lets a syscall of another architecture through to its default
// action, allow: on a host with 32-bit emulation, int 0x80 (or a 32-bit
// binary) would bypass the whole list. The guard answers ENOSYS to every
// syscall that is not of the native architecture, as a kernel without
// the emulation would (and, on x86_64, to the x32 ABI too).

// retENOSYS is SECCOMP_RET_ERRNO with ENOSYS.
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// x32SyscallBit marks a syscall of the x32 ABI on x86_64 (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// Offsets in struct seccomp_data.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
)

// allowedSocketFamilies are the address families a command may create
// sockets of: everything a build or test needs (local, IP, and netlink
// for interface queries). Others (AF_VSOCK, which no network namespace
// scopes; AF_PACKET, AF_ALG, AF_KEY, ...) are kernel attack surface and
// fail with EAFNOSUPPORT, as if the kernel had no such family.
var allowedSocketFamilies = []uint64{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK}

// loadSeccomp installs the filter on every thread of the init (TSYNC);
// commands inherit it.
func loadSeccomp() error {
	prog, err := seccompProgram()
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	switch {
	case e != 0:
		return fmt.Errorf("seccomp: %w", e)
	case r != 0: // TSYNC: the id of a thread that could not be synchronized
		return fmt.Errorf("seccomp: thread %d cannot take the filter", r)
	}
	return nil
}

// seccompProgram is the whole filter: archGuard, then the deny-list.
func seccompProgram() ([]bpf.Instruction, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	policy := seccompPolicy()
	body, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	return append(archGuard(native), body...), nil
}

// archGuard returns ENOSYS for a syscall of any architecture but native,
// and of the x32 ABI on x86_64. The deny-list after it reloads what it
// needs.
func archGuard(native *arch.Info) []bpf.Instruction {
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: retENOSYS},
	}
	if native.ID == arch.X86_64.ID {
		guard = append(guard,
			bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
			// x32 numbers (and anything above, which no ABI uses).
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			bpf.RetConstant{Val: retENOSYS},
		)
	}
	return guard
}

// seccompPolicy denies kernel attack surface a build or test never needs,
// every way to new namespaces, mounts or other processes' memory, and
// sockets of families outside allowedSocketFamilies.
func seccompPolicy() seccomp.Policy {
	const nsFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
	enosys := seccomp.Action(retENOSYS)
	eafnosupport := seccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT))
	// socket(2) and socketpair(2) with a domain (argument 0) other than
	// every allowed family.
	var otherFamily seccomp.ArgumentConditions
	for _, f := range allowedSocketFamilies {
		otherFamily = append(otherFamily, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: f})
	}
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
			{
				Action: eafnosupport,
				NamesWithCondtions: []seccomp.NameWithConditions{
					{Name: "socket", Conditions: otherFamily},
					{Name: "socketpair", Conditions: otherFamily},
				},
			},
		},
	}
}
