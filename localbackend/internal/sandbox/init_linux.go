package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaybeInit must be the first call in main (and in TestMain). When the
// process is a re-executed sandbox init or probe it never returns;
// otherwise it returns at once.
func MaybeInit() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case probeArg:
		os.Exit(probeMain())
	case initArg:
		// Capabilities, securebits and no_new_privs are per thread: the
		// main goroutine stays on this thread, drops everything here, and
		// is the only one that forks commands.
		runtime.LockOSThread()
		os.Exit(initMain())
	}
}

// probeMain runs in a fresh user (or only mount) namespace: creating one is
// not enough (an AppArmor userns restriction lets clone succeed and denies
// the capabilities), so it must really mount.
func probeMain() int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return 3
	}
	if err := unix.Mount("probe", "/tmp", "tmpfs", 0, "size=4k"); err != nil {
		return 4
	}
	return 0
}

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC (linux/close_range.h, 5.11+).
const closeRangeCloexec = 1 << 2

// sealInheritedFDs marks every fd >= 3 close-on-exec. Go's fork/exec does
// not close fds the server itself inherited without O_CLOEXEC; a leaked
// directory fd would be a mount-namespace escape (runc CVE-2024-21626).
func sealInheritedFDs() {
	if unix.CloseRange(3, ^uint(0), closeRangeCloexec) == nil {
		return
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			unix.CloseOnExec(fd)
		}
	}
}

// zygote is the state of a running sandbox init.
type zygote struct {
	fd   int // the control socket (blocking)
	cfg  initConfig
	home *os.File // task file of the init's own cgroup, or nil
	// v1 memory limit: task files of the commands' and the init's memory
	// cgroups, or nil.
	memEnter, memHome *os.File
	devNull           *os.File

	mu      sync.Mutex
	waiters map[int]uint64 // command pid -> exec id
	byID    map[uint64]int // exec id -> command pid
	forked  chan struct{}  // wakes the reaper when it has no children
}

// initMain is the sandbox's init: it receives its configuration, sets up
// the environment (setup), answers "ready", and serves exec, kill and signal
// requests until the server goes away.
func initMain() int {
	sealInheritedFDs()
	// The kernel clears the parent-death signal on a "secureexec" (exec
	// with ambient caps); re-arm it before anything else.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	// Not dumpable: commands (same uid) cannot ptrace us or open
	// /proc/1/{mem,exe,environ}.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	resetInheritedIgnores()
	dropSignals()
	// The control socket is used with plain blocking syscalls from the
	// locked main thread: no scheduler hand-offs on the exec path.
	z := &zygote{fd: 3, waiters: map[int]uint64{}, byID: map[uint64]int{}, forked: make(chan struct{}, 1)}
	buf, oob := make([]byte, maxPacket), make([]byte, 4096)
	var req request
	files, err := recvRaw(z.fd, buf, oob, &req)
	if err != nil || req.Op != "config" || req.Config == nil {
		return 125 // the server is gone or speaks another protocol
	}
	z.cfg = *req.Config
	file := func(i int) *os.File {
		if i < 0 || i >= len(files) {
			return nil
		}
		return files[i]
	}
	z.home = file(z.cfg.HomeFD)
	z.memEnter, z.memHome = file(z.cfg.MemEnterFD), file(z.cfg.MemHomeFD)
	z.cfg.tmpTree = file(z.cfg.TmpFD)
	notes, err := z.setup(file(z.cfg.WorkspaceFD), file(z.cfg.RootFSFD), file(z.cfg.CmdsFD))
	for i, f := range files {
		if i != z.cfg.HomeFD && i != z.cfg.MemEnterFD && i != z.cfg.MemHomeFD {
			f.Close()
		}
	}
	if err != nil {
		_ = sendRaw(z.fd, reply{Op: "failed", Err: err.Error()})
		return 125
	}
	if err := sendRaw(z.fd, reply{Op: "ready", Pid: os.Getpid(), Notes: notes}); err != nil {
		return 125
	}
	go z.reapLoop()
	z.serve(buf, oob)
	return 0
}

// dropSignals catches and drops every signal that would end the init,
// sent by kill(2) (si_code SI_USER): all of them but SIGKILL and SIGSTOP
// (which the kernel never delivers to the init of a pid namespace from
// inside it), SIGCHLD and SIGURG (harmless, used by the runtime) and the
// runtime's own 32 and 33. PID 1 of a pid namespace gets only the signals
// it has handlers for, and the Go runtime installs handlers that exit or
// crash on most. (Not signal.Ignore: SIG_IGN of a signal the runtime does
// not handle would be inherited by every command.) ignoreFaultSignals
// completes this once the setup is done.
func dropSignals() {
	sink := make(chan os.Signal, 16)
	go func() {
		for range sink {
		}
	}()
	var sigs []os.Signal
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		switch sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, 32, 33:
			continue
		}
		sigs = append(sigs, sig)
	}
	signal.Notify(sink, sigs...)
}

// resetInheritedIgnores gives every signal the server's environment left
// ignored (a server started under nohup, or by a parent that ignored a
// real-time signal) its default action back, before anything else: an
// ignored signal survives execve, so commands would inherit it. Those the
// init must survive are caught by dropSignals next.
func resetInheritedIgnores() {
	const sigsetSize = 8
	var old, dfl [4]uint64 // struct sigaction; dfl is SIG_DFL, no flags
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(ptr(&old)), sigsetSize, 0, 0)
		if e == 0 && old[0] == 1 { // SIG_IGN
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(ptr(&dfl)), 0, sigsetSize, 0, 0)
		}
	}
}

// faultSignals are the signals the Go runtime takes for a fault of its own
// when their si_code is not SI_USER or SI_TKILL: sent with
// rt_sigqueueinfo(2) or pidfd_send_signal(2) as SI_QUEUE, they crash the
// init even though signal.Notify asked for them.
var faultSignals = []syscall.Signal{
	syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE,
	syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS,
}

// ignoreFaultSignals sets faultSignals to SIG_IGN behind the runtime's
// back, so that the kernel discards them whoever sends them and however.
// A real fault of the init still kills it: the kernel resets an ignored
// synchronous signal to its default action (without the runtime's stack
// trace). Commands get the default action back: the runtime resets every
// signal it handled in a forked child (syscall.ForkExec), and it handles
// all of these. Called after the setup, so that a fault in the setup
// still shows the runtime's trace.
func ignoreFaultSignals() error {
	// struct sigaction with sa_handler first (every architecture but
	// mips): SIG_IGN, no flags, an empty mask; the other fields stay
	// zero.
	var act [4]uint64
	act[0] = 1 // SIG_IGN
	for _, sig := range faultSignals {
		const sigsetSize = 8
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(ptr(&act)), 0, sigsetSize, 0, 0)
		if e != 0 {
			return fmt.Errorf("ignore %v: %w", sig, e)
		}
	}
	return nil
}

// setup builds the environment (buildEnvironment) and then drops every
// privilege of the forking thread (confine). It returns notes about what
// it could not do.
func (z *zygote) setup(ws, rootfs, cmds *os.File) ([]string, error) {
	if err := z.buildEnvironment(ws, rootfs, cmds); err != nil {
		return nil, err
	}
	notes, err := confine(&z.cfg)
	if err != nil {
		return nil, err
	}
	return notes, ignoreFaultSignals()
}

// buildEnvironment builds the cgroup namespace, the root, hostname and
// loopback in the namespaces (or, in host mode, makes the init the
// subreaper of its commands), opens /dev/null for the commands' stdin and
// sets the rlimits they inherit.
func (z *zygote) buildEnvironment(ws, rootfs, cmds *os.File) error {
	c := &z.cfg
	switch c.Mode {
	case modeUserNS, modeRootNS:
		if err := z.newCgroupNamespace(cmds); err != nil {
			return err
		}
		if err := setupMounts(c, ws, rootfs); err != nil {
			return err
		}
		if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
	case modeHost:
		// Orphans of commands re-parent to us, so Stop can find them.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("subreaper: %w", err)
		}
		if err := os.Chdir("/"); err != nil {
			return fmt.Errorf("chdir: %w", err)
		}
	}
	dn, err := os.OpenFile("/dev/null", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	z.devNull = dn
	return setRlimits(c.Rlimits)
}

// newCgroupNamespace gives the forking thread, and so every command, a
// cgroup namespace rooted at the commands' cgroup (cmds, the task file of
// which the server sent): a command's /proc/self/cgroup then reads
// "0::/c<n>" (v2), never the host path of the sandbox's cgroup with the
// server's pid in it. The thread visits cmds for the unshare and goes
// back home (the migration checks use the namespace the task file was
// opened in, the server's). Should the way back be refused (kernels
// before 5.16 without the backport check the writer's namespace), it
// returns to its old namespace and home and unshares there instead:
// commands then see "/../cmds/c<n>", still nothing of the host.
// Without cgroups (cmds nil) the namespace is rooted where the init is.
func (z *zygote) newCgroupNamespace(cmds *os.File) error {
	if cmds == nil || z.home == nil {
		return wrap("cgroup namespace", unix.Unshare(unix.CLONE_NEWCGROUP))
	}
	old, err := os.Open("/proc/thread-self/ns/cgroup")
	if err != nil {
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	defer old.Close()
	if err := z.enterCgroup(cmds); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		z.leaveCgroup()
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	if z.goHome() == nil {
		return nil
	}
	if err := unix.Setns(int(old.Fd()), unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	if err := z.goHome(); err != nil {
		return fmt.Errorf("cgroup namespace: back to the init's cgroup: %w", err)
	}
	return wrap("cgroup namespace", unix.Unshare(unix.CLONE_NEWCGROUP))
}

// confine drops the init's privileges for good: the capability bounding
// set and the uid (when c says so), every capability of the forking
// thread, then Landlock and seccomp. It returns notes about what it could
// not do.
func confine(c *initConfig) ([]string, error) {
	var notes []string
	if c.Mode == modeRootNS || c.Uid >= 0 {
		// Bounding set first: dropping it needs CAP_SETPCAP, which the
		// uid switch takes away (on every thread: Go's Setresuid is
		// process wide).
		if err := dropBounding(); err != nil {
			return nil, err
		}
		if c.Uid >= 0 {
			if err := switchUser(c.Uid, c.Gid); err != nil {
				return nil, err
			}
		}
	}
	if c.Mode != modeHost || c.Seccomp || c.Landlock {
		if err := dropPrivileges(); err != nil {
			return nil, err
		}
		if n := dropOtherThreads(); n != "" {
			notes = append(notes, n)
		}
	}
	if c.Landlock {
		n, err := restrictLandlock(c)
		if err != nil {
			return nil, err
		}
		notes = append(notes, n...)
	}
	if c.Seccomp {
		if err := loadSeccomp(); err != nil {
			return nil, err
		}
	}
	return notes, nil
}

// switchUser drops the supplementary groups and switches every thread to
// uid and gid.
func switchUser(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	return nil
}

// setRlimits sets the init's rlimits, which every command inherits.
func setRlimits(rls []rlimit) error {
	for _, rl := range rls {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(rl.Resource, &cur); err == nil {
			// Never try to raise a hard limit (EPERM in a user namespace).
			rl.Max = min(rl.Max, cur.Max)
			rl.Cur = min(rl.Cur, rl.Max)
		}
		if err := syscall.Setrlimit(rl.Resource, &syscall.Rlimit{Cur: rl.Cur, Max: rl.Max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", rl.Resource, err)
		}
	}
	return nil
}

// serve handles requests until the server goes away. It runs on the
// locked main thread, the only one without privileges, so that commands
// are forked from it.
func (z *zygote) serve(buf, oob []byte) {
	for {
		var req request
		files, err := recvRaw(z.fd, buf, oob, &req)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, errBadMessage) {
				continue
			}
			// The server is gone (or stopped us). In a pid namespace
			// the kernel kills the rest when we exit.
			if z.cfg.Mode == modeHost {
				z.killAll()
			}
			os.Exit(0)
		}
		switch req.Op {
		case "exec":
			z.fork(req, files)
		case "kill":
			z.kill(req.ID)
		case "signal":
			z.signal(req)
		case "dial":
			z.dial(req)
		case "listen":
			z.listen(req)
		}
		closeFiles(files)
	}
}
