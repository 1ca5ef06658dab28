package sandbox

// The init's side of a command: fork it (in its cgroup), reap it and
// report its exit, kill its tree when there are no cgroups.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fork starts one command. It runs on the locked main thread, the only one
// without privileges and the one whose cgroup the child inherits: it
// visits the command's cgroup for the fork (enterCgroup, leaveCgroup).
func (z *zygote) fork(r request, files []*os.File) {
	n := stdioFiles(r)
	if len(files) < n || len(r.Argv) == 0 {
		z.fail(r.ID, 0, errors.New("malformed exec request"))
		return
	}
	var task *os.File
	if r.Cgroup && len(files) > n {
		task = files[n]
	}
	path, code, err := resolveCommand(r)
	if err != nil {
		z.fail(r.ID, code, err)
		return
	}
	st, err := z.stdio(r, files[:n])
	if err != nil {
		z.fail(r.ID, 0, err)
		return
	}
	defer st.close()
	attr := &syscall.ProcAttr{
		Dir:   r.Dir,
		Env:   r.Env,
		Files: st.fds[:],
		// A terminal becomes the controlling one of the new session
		// (Ctty is the child's fd 0).
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: st.tty},
	}
	if task != nil {
		if err := z.enterCgroup(task); err != nil {
			z.fail(r.ID, 0, err)
			return
		}
	}
	pid, err := z.forkExec(r, path, attr, st.master)
	if task != nil {
		z.leaveCgroup()
	}
	if err != nil {
		// ENOENT: a vanished file or a missing #! interpreter. Anything
		// else (EACCES, ENOEXEC, and EAGAIN/ENOMEM when the sandbox is out
		// of processes or memory) is "cannot execute".
		code := 126
		if errors.Is(err, unix.ENOENT) {
			code = 127
		}
		z.fail(r.ID, code, fmt.Errorf("%s: %w", r.Argv[0], err))
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

// fail reports that exec request id did not start a command: code is
// 126, 127, codeNoWorkdir, or 0 for an infrastructure failure.
func (z *zygote) fail(id uint64, code int, err error) {
	_ = sendRaw(z.fd, reply{Op: "failed", ID: id, Code: code, Err: err.Error()})
}

// resolveCommand checks the request's working directory and finds its
// executable, with the exit code (or codeNoWorkdir) of a failure.
func resolveCommand(r request) (string, int, error) {
	if fi, err := os.Stat(r.Dir); err != nil || !fi.IsDir() {
		return "", codeNoWorkdir, fmt.Errorf("working directory %s: %w", r.Dir, errOrNotDir(err))
	}
	return lookPath(r.Argv[0], r.Dir, envGet(r.Env, "PATH"))
}

// errOrNotDir is err, or ENOTDIR for a path that exists.
func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return unix.ENOTDIR
}

// enterCgroup moves this thread into the command's cgroups (task is the
// pids cgroup's task file; v1 memory too) so the child is born there,
// before it can run anything.
func (z *zygote) enterCgroup(task *os.File) error {
	if _, err := task.WriteString("0"); err != nil {
		return fmt.Errorf("enter command cgroup: %w", err)
	}
	if z.memEnter != nil {
		if _, err := z.memEnter.WriteString("0"); err != nil {
			_, _ = z.home.WriteString("0")
			return fmt.Errorf("enter command memory cgroup: %w", err)
		}
	}
	return nil
}

// leaveCgroup moves this thread back into the init's own cgroups. It
// cannot fail in practice; if it did, the thread would just visit the next
// command's cgroup from here (and the server's kill loop spares the
// init's pid).
func (z *zygote) leaveCgroup() { _ = z.goHome() }

// goHome is leaveCgroup with its error.
func (z *zygote) goHome() error {
	if z.home == nil {
		return nil
	}
	if _, err := z.home.WriteString("0"); err != nil {
		return err
	}
	if z.memHome != nil {
		if _, err := z.memHome.WriteString("0"); err != nil {
			return err
		}
	}
	return nil
}

// forkExec forks and execs the command of exec request r and registers
// its pid for the reaper under z.mu, which the reaper holds while it
// reaps; then it wakes the reaper in case it had no children. When r asks
// for it (or the init allocated a terminal, whose master it must hand
// over), it answers "started" under z.mu too, so that the reaper's
// "exited" cannot overtake it.
func (z *zygote) forkExec(r request, path string, attr *syscall.ProcAttr, master int) (int, error) {
	z.mu.Lock()
	pid, err := syscall.ForkExec(path, r.Argv, attr)
	if err == nil {
		z.waiters[pid] = r.ID
		z.byID[r.ID] = pid
		if r.Notify || master >= 0 {
			z.started(r.ID, pid, master)
		}
	}
	z.mu.Unlock()
	select {
	case z.forked <- struct{}{}:
	default:
	}
	return pid, err
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

// signal sends the signal of a "signal" request to the process group of
// its target command (a new session: the group's id is the command's
// pid), and answers "signalled". Only while the command is registered:
// it is not reaped then, so its pid, and the group's id, cannot have been
// reused. A command that ended is no error.
func (z *zygote) signal(r request) {
	var err error
	z.mu.Lock()
	if pid, ok := z.byID[r.Target]; ok {
		err = unix.Kill(-pid, unix.Signal(r.Signal))
	}
	z.mu.Unlock()
	rep := reply{Op: opSignalled, ID: r.ID}
	if err != nil && err != unix.ESRCH {
		rep.Err = err.Error()
	}
	_ = sendRaw(z.fd, rep)
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

// envGet returns the value of k in env (the last one wins), or "".
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
