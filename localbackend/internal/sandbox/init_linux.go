package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

func initMain() int {
	sealInheritedFDs()
	// The kernel clears the parent-death signal on a "secureexec" (exec
	// with ambient caps); re-arm it before anything else.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	// Not dumpable: commands (same uid) cannot ptrace us or open
	// /proc/1/{mem,exe,environ}.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// PID 1 of a pid namespace only gets signals it has handlers for, and
	// the Go runtime installs handlers that would exit on SIGTERM & co.
	// Catch and drop them (not signal.Ignore: SIG_IGN would be inherited
	// by every command).
	sink := make(chan os.Signal, 16)
	go func() {
		for range sink {
		}
	}()
	signal.Notify(sink, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGTERM,
		syscall.SIGSTKFLT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGXCPU,
		syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGSYS, syscall.SIGPWR,
		syscall.SIGTRAP)
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
	notes, err := z.setup(file(z.cfg.WorkspaceFD), file(z.cfg.RootFSFD))
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

// setup builds the environment and drops every privilege of the forking
// thread. It returns notes about what it could not do.
func (z *zygote) setup(ws, rootfs *os.File) ([]string, error) {
	var notes []string
	c := &z.cfg
	switch c.Mode {
	case modeUserNS, modeRootNS:
		if err := setupMounts(c, ws, rootfs); err != nil {
			return nil, err
		}
		if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
			return nil, fmt.Errorf("sethostname: %w", err)
		}
		if err := loopbackUp(); err != nil {
			return nil, fmt.Errorf("loopback up: %w", err)
		}
	case modeHost:
		// Orphans of commands re-parent to us, so Stop can find them.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("subreaper: %w", err)
		}
		if err := os.Chdir("/"); err != nil {
			return nil, fmt.Errorf("chdir: %w", err)
		}
	}
	dn, err := os.OpenFile("/dev/null", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/null: %w", err)
	}
	z.devNull = dn
	if err := setRlimits(c.Rlimits); err != nil {
		return nil, err
	}
	if c.Mode == modeRootNS || c.Uid >= 0 {
		// Bounding set first: dropping it needs CAP_SETPCAP, which the
		// uid switch takes away (on every thread: Go's Setresuid is
		// process wide).
		if err := dropBounding(); err != nil {
			return nil, err
		}
		if c.Uid >= 0 {
			if err := syscall.Setgroups(nil); err != nil {
				return nil, fmt.Errorf("setgroups: %w", err)
			}
			if err := syscall.Setresgid(c.Gid, c.Gid, c.Gid); err != nil {
				return nil, fmt.Errorf("setresgid: %w", err)
			}
			if err := syscall.Setresuid(c.Uid, c.Uid, c.Uid); err != nil {
				return nil, fmt.Errorf("setresuid: %w", err)
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
		}
		closeFiles(files)
	}
}

// killAll kills every descendant (host mode: orphans are re-parented to
// us, the subreaper).
func (z *zygote) killAll() {
	for range 5 {
		pids := descendants(os.Getpid())
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
	}
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// fork starts one command. It runs on the locked main thread, the only one
// without privileges and the one whose cgroup the child inherits.
func (z *zygote) fork(r request, files []*os.File) {
	fail := func(code int, err error) {
		_ = sendRaw(z.fd, reply{Op: "failed", ID: r.ID, Code: code, Err: err.Error()})
	}
	if len(files) < 2 || len(r.Argv) == 0 {
		fail(0, errors.New("malformed exec request"))
		return
	}
	stdout, stderr := files[0], files[1]
	var task *os.File
	if r.Cgroup && len(files) > 2 {
		task = files[2]
	}
	if fi, err := os.Stat(r.Dir); err != nil || !fi.IsDir() {
		fail(codeNoWorkdir, fmt.Errorf("working directory %s: %w", r.Dir, errOrNotDir(err)))
		return
	}
	path, code, err := lookPath(r.Argv[0], r.Dir, envGet(r.Env, "PATH"))
	if err != nil {
		fail(code, err)
		return
	}
	attr := &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: []uintptr{z.devNull.Fd(), stdout.Fd(), stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	if task != nil {
		// Move this thread into the command's cgroups so the child is born
		// there, before it can run anything; then move back.
		if _, err := task.WriteString("0"); err != nil {
			fail(0, fmt.Errorf("enter command cgroup: %w", err))
			return
		}
		if z.memEnter != nil {
			if _, err := z.memEnter.WriteString("0"); err != nil {
				_, _ = z.home.WriteString("0")
				fail(0, fmt.Errorf("enter command memory cgroup: %w", err))
				return
			}
		}
	}
	z.mu.Lock()
	pid, err := syscall.ForkExec(path, r.Argv, attr)
	if err == nil {
		z.waiters[pid] = r.ID
		z.byID[r.ID] = pid
	}
	z.mu.Unlock()
	select {
	case z.forked <- struct{}{}:
	default:
	}
	if task != nil && z.home != nil {
		// Cannot fail in practice; if it did, the thread would just visit
		// the next command's cgroup from here (and the server's kill loop
		// spares the init's pid).
		_, _ = z.home.WriteString("0")
		if z.memHome != nil {
			_, _ = z.memHome.WriteString("0")
		}
	}
	if err != nil {
		// ENOENT: a vanished file or a missing #! interpreter. Anything
		// else (EACCES, ENOEXEC, and EAGAIN/ENOMEM when the sandbox is out
		// of processes or memory) is "cannot execute".
		code := 126
		if errors.Is(err, unix.ENOENT) {
			code = 127
		}
		fail(code, fmt.Errorf("%s: %w", r.Argv[0], err))
		return
	}
	if z.cfg.ProcRlimit > 0 {
		// Second line behind pids.max. (A tiny window: the command already
		// runs; the init itself cannot carry this limit, or a fork bomb
		// would stop it from creating threads.)
		lim := unix.Rlimit{Cur: z.cfg.ProcRlimit, Max: z.cfg.ProcRlimit}
		_ = unix.Prlimit(pid, unix.RLIMIT_NPROC, &lim, nil)
	}
}

func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return unix.ENOTDIR
}

// reapLoop reaps every child: commands (reported) and orphans (dropped).
// It sleeps in waitid(WNOWAIT) on its own thread and reaps under z.mu,
// which fork holds from the fork until the pid is registered.
func (z *zygote) reapLoop() {
	runtime.LockOSThread()
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: no children until the next fork
			<-z.forked
			continue
		}
		z.mu.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			id, ok := z.waiters[pid]
			if !ok {
				continue
			}
			delete(z.waiters, pid)
			delete(z.byID, id)
			_ = sendRaw(z.fd, reply{Op: "exited", ID: id, Pid: pid, Status: int(ws)})
		}
		z.mu.Unlock()
	}
}

// kill is the tree kill without cgroups: the command's session and every
// descendant still linked to it. Orphans of double forks are re-parented
// to us and escape it (Report.Notes says so).
func (z *zygote) kill(id uint64) {
	z.mu.Lock()
	pid, ok := z.byID[id]
	z.mu.Unlock()
	if !ok {
		return
	}
	for range 3 {
		pids := descendants(pid)
		_ = unix.Kill(-pid, unix.SIGKILL)
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// descendants lists the processes below pid (from /proc, racy by nature).
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 2 {
			pp, _ := strconv.Atoi(fields[1])
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q, n := parent[p], 0; q > 1 && n < 64; q, n = parent[q], n+1 {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func envGet(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath resolves argv[0] inside the sandbox like a shell does: 127 when
// nothing is found, 126 when found but not executable.
func lookPath(file, dir, pathEnv string) (string, int, error) {
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", 127, fmt.Errorf("%s: %w", file, err)
			}
			return "", 126, fmt.Errorf("%s: %w", file, err)
		}
		if fi.IsDir() || unix.Access(p, unix.X_OK) != nil {
			return "", 126, fmt.Errorf("%s: permission denied", file)
		}
		return p, 0, nil
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	var denied string
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if unix.Access(p, unix.X_OK) == nil {
			return p, 0, nil
		}
		if denied == "" {
			denied = p
		}
	}
	if denied != "" {
		return "", 126, fmt.Errorf("%s: permission denied", denied)
	}
	return "", 127, fmt.Errorf("%s: command not found", file)
}
