package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for the private /tmp.
const (
	defaultTmpBytes = 256 << 20
	minTmpInodes    = 1024
	maxTmpInodes    = 1 << 20
)

// defaultSetupTimeout bounds the init's setup when StartAsync's ctx has no
// deadline.
const defaultSetupTimeout = 60 * time.Second

// build starts the sandbox for spec: it prepares the host side (uid,
// workspace owner, tmp directory), derives the init's configuration, opens
// the files the init gets with it (detached mount trees, cgroup task
// files), and spawns the init. It returns once the init runs; the setup
// goes on in runSetup, bounded by watchdog. A failed build undoes its
// steps.
func (m *Manager) build(ctx context.Context, spec Spec, seq uint64) (_ *Sandbox, err error) {
	if err := os.MkdirAll(spec.Workspace, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	s := &Sandbox{
		m: m, spec: spec, mode: m.mode,
		dead: make(chan struct{}), stopped: make(chan struct{}), stopDone: make(chan struct{}), ready: make(chan struct{}),
		pending: map[uint64]chan reply{}, stderr: &headBuffer{max: 1024},
	}
	s.uid, s.gid = m.allocUID(spec.Key)
	var undo rollback
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	undo.add(func() { m.releaseUID(s.uid, spec.Key) })

	if err := s.prepareHost(&undo); err != nil {
		return nil, err
	}
	cfg := s.initConfig()
	files, err := s.initFiles(&cfg, seq, &undo)
	if err != nil {
		return nil, err
	}
	if err := s.spawnInit(ctx, &undo); err != nil {
		closeFiles(files)
		return nil, err
	}

	// The setup runs on: Start (or the first Exec) waits for it. A setup
	// that fails or outlives ctx's deadline stops the sandbox.
	timeout := defaultSetupTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	go s.runSetup(&cfg, files) // closes files
	go s.watchdog(timeout)
	return s, nil
}

// rollback undoes the steps of a failed build, last first.
type rollback []func()

// add registers the undo of a step that succeeded.
func (r *rollback) add(f func()) { *r = append(*r, f) }

// run undoes every registered step, last first.
func (r rollback) run() {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]()
	}
}

// prepareHost gives the workspace to the sandbox's uid (when the server is
// root) and, in host mode, creates the directory that stands in for /tmp.
func (s *Sandbox) prepareHost(undo *rollback) error {
	m := s.m
	if m.root {
		if err := chownTree(s.spec.Workspace, s.uid, s.gid); err != nil {
			return fmt.Errorf("chown workspace: %w", err)
		}
	}
	if m.mode != modeHost {
		return nil
	}
	s.tmpDir = filepath.Join(m.stateDir, s.spec.Key+".tmp")
	if s.spec.Tmp != "" {
		s.tmpDir = s.spec.Tmp
	}
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return fmt.Errorf("tmp dir: %w", err)
	}
	undo.add(func() { _ = os.RemoveAll(s.tmpDir) })
	if m.root {
		if err := os.Chown(s.tmpDir, s.uid, s.gid); err != nil {
			return fmt.Errorf("tmp dir: %w", err)
		}
	}
	return nil
}

// initConfig derives the init's "config" message from the sandbox's spec
// and the Manager's tier; the file indexes are -1 until initFiles sets
// them.
func (s *Sandbox) initConfig() initConfig {
	m, spec, lim := s.m, s.spec, s.spec.Limits
	tmpBytes := lim.TmpBytes
	if tmpBytes <= 0 {
		tmpBytes = defaultTmpBytes
		if lim.StorageBytes > 0 {
			tmpBytes = min(tmpBytes, lim.StorageBytes)
		}
	}
	openFiles := uint64(DefaultOpenFiles)
	if lim.OpenFiles > 0 {
		openFiles = uint64(lim.OpenFiles)
	}
	cfg := initConfig{
		Mode: m.mode, Workspace: spec.Workspace, Hostname: spec.Hostname,
		TmpBytes: tmpBytes, TmpInodes: min(max(tmpBytes/16384, minTmpInodes), maxTmpInodes),
		Uid: -1, Gid: -1,
		Seccomp: m.report.Tier != TierNoneUnsafe, Landlock: m.report.Tier == TierLandlock,
		HomeFD: -1, WorkspaceFD: -1, RootFSFD: -1, MemEnterFD: -1, MemHomeFD: -1, CmdsFD: -1, TmpFD: -1,
		Rlimits: []rlimit{{unix.RLIMIT_CORE, 0, 0}, {unix.RLIMIT_NOFILE, openFiles, openFiles}},
		TmpDir:  s.tmpDir,
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "sandbox"
	}
	if lim.StorageBytes > 0 {
		cfg.Rlimits = append(cfg.Rlimits, rlimit{unix.RLIMIT_FSIZE, uint64(lim.StorageBytes), uint64(lim.StorageBytes)})
	}
	if m.mode != modeUserNS && m.root {
		cfg.Uid, cfg.Gid = s.uid, s.gid
	}
	if lim.Pids > 0 && (m.mode == modeUserNS || m.root) {
		// RLIMIT_NPROC counts per (user namespace, uid): only meaningful
		// with a uid of the sandbox's own, else it counts the server's
		// processes too.
		cfg.ProcRlimit = uint64(lim.Pids)
	}
	if m.mode != modeHost {
		cfg.RootFS = spec.RootFS
		cfg.TmpHost = spec.Tmp
	}
	if spec.RootFS == "" {
		cfg.Passwd, cfg.Group = m.passwd, m.group
	}
	return cfg
}

// initFiles opens the files the init gets with its config and records
// their indexes in cfg: detached mount trees of the workspace and RootFS
// (a root server with namespaces), and the task files of the sandbox's
// cgroups, which it creates. On error it closes what it opened.
func (s *Sandbox) initFiles(cfg *initConfig, seq uint64, undo *rollback) (_ []*os.File, err error) {
	var files []*os.File
	defer func() {
		if err != nil {
			closeFiles(files)
		}
	}()
	add := func(f *os.File, err error) (int, error) {
		if err != nil {
			return -1, err
		}
		files = append(files, f)
		return len(files) - 1, nil
	}
	m, spec := s.m, s.spec
	if m.mode != modeHost && m.root {
		if cfg.WorkspaceFD, err = add(detachedTree(spec.Workspace, false)); err != nil {
			return nil, err
		}
		if spec.RootFS != "" {
			if cfg.RootFSFD, err = add(detachedTree(spec.RootFS, true)); err != nil {
				return nil, err
			}
		}
		if spec.Tmp != "" {
			if cfg.TmpFD, err = add(detachedTree(spec.Tmp, false)); err != nil {
				return nil, err
			}
		}
	}
	if m.cg == nil {
		return files, nil
	}
	s.cg, err = m.cg.newSandbox("s-"+spec.Key+"-"+strconv.FormatUint(seq, 10), spec.Limits)
	if err != nil {
		return nil, err
	}
	undo.add(func() { s.cg.remove(context.Background()) })
	if cfg.HomeFD, err = add(s.cg.openTasks(s.cg.initDir)); err != nil {
		return nil, err
	}
	if m.mode != modeHost {
		if cfg.CmdsFD, err = add(s.cg.openTasks(s.cg.cmds)); err != nil {
			return nil, err
		}
	}
	if s.cg.memCmds != "" && !s.cg.v2 {
		if cfg.MemEnterFD, err = add(s.cg.openTasks(s.cg.memCmds)); err != nil {
			return nil, err
		}
		if cfg.MemHomeFD, err = add(s.cg.openTasks(s.cg.dirs["memory"])); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// spawnInit creates the control socket and starts the init on the
// spawner thread, with the socket's other end as fd 3. A goroutine reaps
// the init once its pidfd says it exited, closes s.dead and the socket.
func (s *Sandbox) spawnInit(ctx context.Context, undo *rollback) error {
	conn, initEnd, err := socketpair()
	if err != nil {
		return err
	}
	s.conn = conn
	undo.add(func() { conn.Close() })
	cmd := s.initCommand(initEnd)
	pidfd := -1
	cmd.SysProcAttr.PidFD = &pidfd
	err = s.m.start(ctx, cmd)
	initEnd.Close()
	if err != nil {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return fmt.Errorf("start sandbox init: %w", err)
	}
	s.cmd = cmd
	undo.add(func() {
		_ = cmd.Process.Kill()
		<-s.dead
	})
	exited := pidfdExited(pidfd)
	go func() {
		<-exited // in the poller: no thread parked per sandbox
		_ = cmd.Wait()
		s.exitState = cmd.ProcessState.String()
		close(s.dead)
		conn.Close()
		// An init that died on its own (a crash, or killed from inside
		// in the host tiers) leaves its commands' processes, cgroups
		// and uid behind: clean up now, so that the next Start builds
		// a fresh sandbox at once.
		s.mu.Lock()
		asked := s.stopping
		s.mu.Unlock()
		if !asked {
			_ = s.stop()
		}
	}()
	return nil
}

// pidfdExited returns a channel closed once the process of pidfd (owned
// and closed here) has exited, so that the Wait that follows returns at
// once. A goroutine waits for the pidfd to become readable in the
// runtime's poller: blocking in waitid, as os.Process.Wait does, would
// hold an OS thread per sandbox for its whole life, and Go never gives
// idle threads back. pidfd < 0 (kernels before 5.3): closed at once, and
// the Wait blocks as before.
func pidfdExited(pidfd int) <-chan struct{} {
	done := make(chan struct{})
	if pidfd < 0 {
		close(done)
		return done
	}
	f, rc, err := pollableFD(pidfd, "pidfd")
	if err != nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		defer f.Close()
		_ = rc.Read(func(fd uintptr) bool {
			// Readable once the process exited; poll says so without
			// reaping it (cmd.Wait does).
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 0)
			return n != 0 || (err != nil && err != unix.EINTR)
		})
	}()
	return done
}

// pollableFD makes fd non-blocking and hands it to the runtime's poller
// as a file (which owns it from then on, also on error).
func pollableFD(fd int, name string) (*os.File, syscall.RawConn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// initCommand is the command that re-executes this binary as the
// sandbox's init, in the namespaces of the Manager's mode.
func (s *Sandbox) initCommand(initEnd *os.File) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", initArg)
	cmd.Args[0] = "nox-sandbox-init"
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stderr = s.stderr
	cmd.ExtraFiles = []*os.File{initEnd} // fd 3
	cmd.WaitDelay = time.Second
	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	// No CLONE_NEWCGROUP: its root would be the server's cgroup, and
	// commands would see the path from there (with the server's pid);
	// the init creates its cgroup namespace in the sandbox's cgroup
	// (newCgroupNamespace).
	const nsFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	switch s.mode {
	case modeUserNS:
		sys.Cloneflags = nsFlags | syscall.CLONE_NEWUSER
		sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: innerUID, HostID: s.uid, Size: 1}}
		sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: innerUID, HostID: s.gid, Size: 1}}
		// The clone child is still uid 0 when we are root: become the
		// mapped user, keeping only what the setup needs (dropped later).
		sys.Credential = &syscall.Credential{Uid: innerUID, Gid: innerUID, NoSetGroups: true}
		sys.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP, unix.CAP_NET_ADMIN}
	case modeRootNS:
		sys.Cloneflags = nsFlags
	}
	cmd.SysProcAttr = sys
	return cmd
}

// runSetup runs in its own goroutine for the life of the init: it hands
// the init its configuration and files (closing them), records the
// setup's outcome, stops the sandbox when the setup failed, and otherwise
// dispatches the init's replies until it exits.
func (s *Sandbox) runSetup(cfg *initConfig, files []*os.File) {
	buf, oob := make([]byte, 64<<10), make([]byte, 512)
	err := s.configure(cfg, files, buf, oob)
	if err != nil {
		s.mu.Lock()
		if s.stopping {
			err = fmt.Errorf("%w during its setup", ErrStopped)
		}
		s.mu.Unlock()
	}
	if !s.finishSetup(err) {
		err = s.setupErr // the watchdog gave up first
	}
	if err != nil {
		_ = s.Stop()
		return
	}
	s.readLoop(buf, oob)
}

// configure moves the init into the sandbox's cgroups (before it runs
// anything of ours), sends it the config with files (closed here), and
// waits for its "ready". It then keeps a first command cgroup ready.
func (s *Sandbox) configure(cfg *initConfig, files []*os.File, buf, oob []byte) error {
	var err error
	if s.cg != nil {
		err = s.cg.addProc(s.cmd.Process.Pid)
	}
	if err == nil {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		err = sendMsg(s.conn, request{Op: "config", Config: cfg}, fds...)
	}
	closeFiles(files)
	if err != nil {
		return err
	}
	var r reply
	fs, err := recvMsg(s.conn, buf, oob, &r)
	closeFiles(fs)
	if err != nil {
		return fmt.Errorf("sandbox init died during setup: %w%s", err, s.initExit())
	}
	if r.Op != "ready" {
		return fmt.Errorf("sandbox setup: %s", r.Err)
	}
	s.notes = r.Notes
	if s.cg != nil {
		// The first command's cgroup, off its critical path.
		if cc, err := s.takeCgroup(0); err == nil {
			s.mu.Lock()
			s.free = append(s.free, cc)
			s.mu.Unlock()
		}
	}
	return nil
}

// watchdog fails the setup, and kills the init, when the setup has not
// ended within timeout.
func (s *Sandbox) watchdog(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
		if s.finishSetup(fmt.Errorf("sandbox setup did not finish within %v", timeout.Round(time.Millisecond))) {
			_ = s.cmd.Process.Kill()
		}
	}
}

// headBuffer keeps the first max bytes the init wrote to stderr (nothing
// unless the Go runtime crashed), for a one-line summary in errors.
type headBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.max - len(h.b); n > 0 {
		h.b = append(h.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// maxSummary bounds the summary of the init's stderr.
const maxSummary = 160

// summary is the first non-empty line the init wrote (a Go crash's
// "fatal error: ..." or "SIGSEGV: ..."), at most maxSummary bytes; a
// runtime stack trace is kilobytes, and would end up in every error and
// log line about the sandbox.
func (h *headBuffer) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range strings.Split(string(h.b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > maxSummary {
				l = strings.ToValidUTF8(l[:maxSummary], "") + "..."
			}
			return l
		}
	}
	return ""
}
