package sandbox

// How it works on Linux.
//
// Start re-executes the server binary ("/proc/self/exe __nox_sandbox_init__")
// from one locked spawner thread (Pdeathsig is tied to the forking thread),
// with new user, mount, pid, net, ipc, uts and cgroup namespaces (no user
// namespace in TierRootNamespaces, none at all in the host tiers). The
// child, the sandbox's init, lives as long as the sandbox: PID 1 of its
// namespaces. StartAsync returns here; the rest of the setup runs in a
// goroutine that Exec and Start wait for. The server moves it into the
// sandbox's cgroups and sends its
// configuration over a SOCK_SEQPACKET socketpair (fd 3), with detached
// mount trees of the workspace and RootFS and the init's own cgroup task
// file as SCM_RIGHTS. The init builds the root (tmpfs, read-only binds,
// /workspace, /tmp, /proc, /dev), pivots into it, brings lo up, drops every
// capability, sets no_new_privs, loads the seccomp deny-list and answers
// "ready".
//
// Exec sends one "exec" packet with the stdout/stderr pipe write ends and
// the task file of a per-command pids cgroup (reused when empty). The
// init's locked main thread, which reads the socket with blocking
// syscalls, writes "0" to that task file (moving only itself), forks and
// execs the command (syscall.ForkExec, Setsid), and moves back; the child
// is born in the command's cgroup. A reaper thread waits in waitid and
// sends "exited" with the wait status; orphans are reaped silently.
// Timeouts and cancellation SIGKILL everything in the command's cgroup
// (again every 20 ms until the exit report), so background processes of
// earlier commands survive. Stop kills the init, and the kernel the rest of
// the pid namespace.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// outputGrace is how long Exec waits, after the command exited, for
// background processes that still hold its stdout/stderr. After that their
// output is drained and dropped.
const outputGrace = 200 * time.Millisecond

// killReportTimeout bounds the wait for the exit report of a killed
// command (it comes within milliseconds unless the init is broken).
const killReportTimeout = 10 * time.Second

// Sandbox is one running environment: a long-lived init (PID 1 of the
// sandbox's namespaces) that forks commands on request.
type Sandbox struct {
	m      *Manager
	spec   Spec
	uid    int
	gid    int
	mode   initMode
	tmpDir string // host mode: the stand-in for /tmp

	cmd   *exec.Cmd
	conn  *net.UnixConn
	cg    *sandboxCgroup
	dead  chan struct{} // closed when the init has exited
	notes []string
	tail  *tailBuffer

	mu       sync.Mutex
	pending  map[uint64]chan reply
	seq      uint64
	stopping bool
	stopped  chan struct{} // closed when the init is dead
	stopDone chan struct{} // closed when Stop is done; stopErr is set
	stopErr  error
	cleanup  sync.WaitGroup
	free     []*cmdCgroup // empty command cgroups for reuse
	oomSeen  int64        // the cgroup's OOM kill count last looked at

	ready     chan struct{} // closed when the init's setup ended (see setupErr)
	readyOnce sync.Once
	setupErr  error // why the setup failed; read only after ready is closed
}

func (m *Manager) build(ctx context.Context, spec Spec, seq uint64) (_ *Sandbox, err error) {
	if err := os.MkdirAll(spec.Workspace, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	s := &Sandbox{
		m: m, spec: spec, mode: m.mode,
		dead: make(chan struct{}), stopped: make(chan struct{}), stopDone: make(chan struct{}), ready: make(chan struct{}),
		pending: map[uint64]chan reply{}, tail: &tailBuffer{max: 4096},
	}
	s.uid, s.gid = m.allocUID(spec.Key)
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	cleanups = append(cleanups, func() { m.releaseUID(s.uid, spec.Key) })
	if m.root {
		if err := chownTree(spec.Workspace, s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("chown workspace: %w", err)
		}
	}
	lim := spec.Limits
	tmpBytes := lim.TmpBytes
	if tmpBytes <= 0 {
		tmpBytes = defaultTmpBytes
		if lim.StorageBytes > 0 {
			tmpBytes = min(tmpBytes, lim.StorageBytes)
		}
	}
	cfg := initConfig{
		Mode: m.mode, Workspace: spec.Workspace, Hostname: spec.Hostname,
		TmpBytes: tmpBytes, TmpInodes: min(max(tmpBytes/16384, minTmpInodes), maxTmpInodes),
		Uid: -1, Gid: -1,
		Seccomp: m.report.Tier != TierNoneUnsafe, Landlock: m.report.Tier == TierLandlock,
		HomeFD: -1, WorkspaceFD: -1, RootFSFD: -1, MemEnterFD: -1, MemHomeFD: -1,
		Rlimits: []rlimit{{unix.RLIMIT_CORE, 0, 0}, {unix.RLIMIT_NOFILE, 65536, 65536}},
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
	if m.mode == modeHost {
		s.tmpDir = filepath.Join(m.stateDir, spec.Key+".tmp")
		if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
			return nil, fmt.Errorf("tmp dir: %w", err)
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(s.tmpDir) })
		if m.root {
			if err := os.Chown(s.tmpDir, s.uid, s.gid); err != nil {
				return nil, fmt.Errorf("tmp dir: %w", err)
			}
		}
		cfg.TmpDir = s.tmpDir
	}

	var files []*os.File
	defer func() { closeFiles(files) }()
	addFile := func(f *os.File) int {
		files = append(files, f)
		return len(files) - 1
	}
	if m.mode != modeHost {
		cfg.RootFS = spec.RootFS
		if m.root {
			ws, err := detachedTree(spec.Workspace, false)
			if err != nil {
				return nil, err
			}
			cfg.WorkspaceFD = addFile(ws)
			if spec.RootFS != "" {
				rf, err := detachedTree(spec.RootFS, true)
				if err != nil {
					return nil, err
				}
				cfg.RootFSFD = addFile(rf)
			}
		}
	}
	if spec.RootFS == "" {
		cfg.Passwd, cfg.Group = m.passwd, m.group
	}
	if m.cg != nil {
		s.cg, err = m.cg.newSandbox("s-"+spec.Key+"-"+strconv.FormatUint(seq, 10), lim)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { s.cg.remove(context.Background()) })
		home, err := s.cg.openTasks(s.cg.initDir)
		if err != nil {
			return nil, err
		}
		cfg.HomeFD = addFile(home)
		if s.cg.memCmds != "" && !s.cg.v2 {
			enter, err := s.cg.openTasks(s.cg.memCmds)
			if err != nil {
				return nil, err
			}
			cfg.MemEnterFD = addFile(enter)
			memHome, err := s.cg.openTasks(s.cg.dirs["memory"])
			if err != nil {
				return nil, err
			}
			cfg.MemHomeFD = addFile(memHome)
		}
	}

	conn, initEnd, err := socketpair()
	if err != nil {
		return nil, err
	}
	s.conn = conn
	cleanups = append(cleanups, func() { conn.Close() })
	cmd := exec.Command("/proc/self/exe", initArg)
	cmd.Args[0] = "nox-sandbox-init"
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stderr = s.tail
	cmd.ExtraFiles = []*os.File{initEnd} // fd 3
	cmd.WaitDelay = time.Second
	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	const nsFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
	switch m.mode {
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
	err = m.start(ctx, cmd)
	initEnd.Close()
	if err != nil {
		return nil, fmt.Errorf("start sandbox init: %w", err)
	}
	s.cmd = cmd
	cleanups = append(cleanups, func() {
		_ = cmd.Process.Kill()
		<-s.dead
	})
	go func() {
		_ = cmd.Wait()
		close(s.dead)
		conn.Close()
	}()

	// The setup runs on: Start (or the first Exec) waits for it. A setup
	// that fails or outlives ctx's deadline stops the sandbox.
	setupTimeout := 60 * time.Second
	if d, ok := ctx.Deadline(); ok {
		setupTimeout = time.Until(d)
	}
	cfgFiles := files
	files = nil // the setup goroutine closes them
	go func() {
		var r reply
		buf, oob := make([]byte, 64<<10), make([]byte, 512)
		var err error
		if s.cg != nil {
			// Before the init gets its config it runs nothing of ours.
			err = s.cg.addProc(cmd.Process.Pid)
		}
		if err == nil {
			fds := make([]int, len(cfgFiles))
			for i, f := range cfgFiles {
				fds[i] = int(f.Fd())
			}
			err = sendMsg(conn, request{Op: "config", Config: &cfg}, fds...)
		}
		closeFiles(cfgFiles)
		if err == nil {
			var fs []*os.File
			fs, err = recvMsg(conn, buf, oob, &r)
			closeFiles(fs)
			if err != nil {
				err = fmt.Errorf("sandbox init died during setup: %w%s", err, s.tail.suffix())
			}
		}
		switch {
		case err != nil:
		case r.Op != "ready":
			err = fmt.Errorf("sandbox setup: %s", r.Err)
		default:
			s.notes = r.Notes
			if s.cg != nil {
				// The first command's cgroup, off its critical path.
				if cc, err := s.takeCgroup(0); err == nil {
					s.mu.Lock()
					s.free = append(s.free, cc)
					s.mu.Unlock()
				}
			}
		}
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
	}()
	go func() {
		t := time.NewTimer(setupTimeout)
		defer t.Stop()
		select {
		case <-s.ready:
		case <-t.C:
			if s.finishSetup(fmt.Errorf("sandbox setup did not finish within %v", setupTimeout.Round(time.Millisecond))) {
				_ = s.cmd.Process.Kill()
			}
		}
	}()
	return s, nil
}

// finishSetup records the outcome of the init's setup once; it reports
// whether this call decided it.
func (s *Sandbox) finishSetup(err error) bool {
	first := false
	s.readyOnce.Do(func() {
		first = true
		s.setupErr = err
		close(s.ready)
	})
	return first
}

// WaitReady waits until the sandbox's setup ended and returns its error,
// or ctx's.
func (s *Sandbox) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return s.setupErr
	case <-ctx.Done():
		return fmt.Errorf("wait for sandbox setup: %w", ctx.Err())
	}
}

// Ready reports whether the setup ended successfully: false while pending.
func (s *Sandbox) Ready() bool {
	select {
	case <-s.ready:
		return s.setupErr == nil
	default:
		return false
	}
}

// readLoop dispatches the init's replies to the waiting Exec calls.
func (s *Sandbox) readLoop(buf, oob []byte) {
	defer func() {
		s.mu.Lock()
		for id, ch := range s.pending {
			close(ch)
			delete(s.pending, id)
		}
		s.mu.Unlock()
	}()
	for {
		var r reply
		fs, err := recvMsg(s.conn, buf, oob, &r)
		closeFiles(fs)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, unix.ECONNRESET) {
				return
			}
			continue
		}
		s.mu.Lock()
		ch := s.pending[r.ID]
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// HostOwner returns the host uid and gid that the sandbox's processes run
// as and that own its workspace: files put into the workspace from outside
// should be chowned to them.
func (s *Sandbox) HostOwner() (uid, gid int) { return s.uid, s.gid }

// Notes lists what this sandbox's init could not do (one sentence each);
// host-wide limitations are in Manager.Report.
// Empty while the setup is pending.
func (s *Sandbox) Notes() []string {
	if !s.Ready() {
		return nil
	}
	return append([]string(nil), s.notes...)
}

// Alive reports whether the sandbox's init still runs.
func (s *Sandbox) Alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

// Exec runs one command and waits for it. The error reports infrastructure
// failures (and ErrNoWorkdir, ctx cancellation) only, never exit codes.
func (s *Sandbox) Exec(ctx context.Context, e ExecSpec) (ExecResult, error) {
	dir, err := execDir(e)
	if err != nil {
		return ExecResult{}, err
	}
	if s.mode == modeHost {
		dir = hostPath(dir, s.spec.Workspace, s.tmpDir)
	}
	stdout, stderr := e.Stdout, e.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	select {
	case <-s.ready:
		if s.setupErr != nil {
			return ExecResult{}, fmt.Errorf("%w: %w", ErrSetup, s.setupErr)
		}
	case <-ctx.Done():
		return ExecResult{}, fmt.Errorf("wait for sandbox setup: %w", context.Cause(ctx))
	}
	if !s.Alive() {
		return ExecResult{}, ErrStopped
	}

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ExecResult{}, ErrStopped
	}
	s.seq++
	id := s.seq
	ch := make(chan reply, 2)
	s.pending[id] = ch
	s.cleanup.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()

	var cc *cmdCgroup
	if s.cg != nil {
		var err error
		if cc, err = s.takeCgroup(id); err != nil {
			s.cleanup.Done()
			return ExecResult{}, err
		}
	}
	defer s.releaseCgroup(cc)

	outR, outW, err := outputPipe()
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	errR, errW, err := outputPipe()
	if err != nil {
		outR.Close()
		unix.Close(outW)
		return ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	send := []int{outW, errW}
	if cc != nil {
		send = append(send, cc.taskFD)
	}
	outSink := &detachableWriter{w: stdout}
	errSink := &detachableWriter{w: stderr}

	start := time.Now()
	err = sendMsg(s.conn, request{Op: "exec", ID: id, Argv: e.Argv, Env: e.Env, Dir: dir, Cgroup: cc != nil}, send...)
	unix.Close(outW)
	unix.Close(errW)
	// The drains start once the init has the request, which they need
	// not wait for (the pipes buffer the output meanwhile).
	outDone, errDone := drain(outR, outSink), drain(errR, errSink)
	if err != nil {
		outSink.detach()
		errSink.detach()
		return ExecResult{}, err
	}
	finishOutput := func(grace time.Duration) {
		t := time.NewTimer(grace)
		defer t.Stop()
		for _, d := range []<-chan struct{}{outDone, errDone} {
			select {
			case <-d:
			case <-t.C:
				// Background processes hold the pipes: stop forwarding.
				outSink.detach()
				errSink.detach()
				return
			}
		}
	}

	var timeout <-chan time.Time
	if e.Timeout > 0 {
		t := time.NewTimer(e.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var res ExecResult
	var timedOut bool
	var cancelled error
	// kill kills the command's tree. It runs again every rekill tick until
	// the exit report arrives: the request may still be queued in the
	// init when the timeout fires, and the command start after a kill.
	var rekill <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	var killedAt time.Time
	kill := func() {
		if ticker == nil {
			ticker = time.NewTicker(20 * time.Millisecond)
			rekill = ticker.C
			killedAt = time.Now()
		}
		if cc != nil {
			kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = killCgroup(kctx, cc.dir, s.cmd.Process.Pid)
			cancel()
		} else {
			_ = sendMsg(s.conn, request{Op: "kill", ID: id})
		}
	}
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				outSink.detach()
				errSink.detach()
				return ExecResult{}, fmt.Errorf("exec: sandbox init exited%s", s.tail.suffix())
			}
			switch r.Op {
			case "failed":
				finishOutput(outputGrace)
				switch r.Code {
				case codeNoWorkdir:
					return ExecResult{}, fmt.Errorf("%w: %s", ErrNoWorkdir, e.Dir)
				case 0:
					return ExecResult{}, fmt.Errorf("exec: %s", r.Err)
				}
				_, _ = fmt.Fprintf(errSink, "nox: %s\n", r.Err)
				errSink.detach()
				outSink.detach()
				return ExecResult{ExitCode: r.Code, Duration: time.Since(start)}, nil
			case "exited":
				res.Duration = time.Since(start)
				ws := syscall.WaitStatus(r.Status)
				switch {
				case ws.Signaled():
					res.ExitCode = 128 + int(ws.Signal())
				default:
					res.ExitCode = ws.ExitStatus()
				}
				if s.cg != nil && res.ExitCode == 137 {
					// Killed by SIGKILL (or a shell saw that): was it the
					// OOM killer? (With concurrent commands the kill may
					// belong to another command of this sandbox.)
					n := s.cg.oomKills()
					s.mu.Lock()
					res.OOMKilled = n > s.oomSeen
					s.oomSeen = n
					s.mu.Unlock()
				}
			}
		case <-timeout:
			timedOut = true
			timeout = nil
			kill()
			continue
		case <-rekill:
			if time.Since(killedAt) > killReportTimeout {
				outSink.detach()
				errSink.detach()
				return ExecResult{}, fmt.Errorf("exec: no exit report %v after killing the command", killReportTimeout)
			}
			kill()
			continue
		case <-ctx.Done():
			cancelled = context.Cause(ctx)
			kill()
			ctx = context.Background() // wait for the exit report now
			continue
		}
		break
	}
	if timedOut || cancelled != nil {
		finishOutput(10 * time.Millisecond)
	} else {
		finishOutput(outputGrace)
	}
	outSink.detach()
	errSink.detach()
	if cancelled != nil && !timedOut {
		return res, fmt.Errorf("exec: %w", cancelled)
	}
	if timedOut {
		res.TimedOut, res.ExitCode, res.OOMKilled = true, 124, false
	}
	return res, nil
}

// cmdCgroup is the cgroup of one command; empty ones are reused.
type cmdCgroup struct {
	dir    string
	task   *os.File // its task file, opened by us, written to by the init
	taskFD int      // task's descriptor, sent with every exec request
	// count is pids.current (v1) or cgroup.events (v2), re-read to see
	// whether the cgroup is empty; nil: read cgroup.procs instead.
	count *os.File
	v2    bool
}

// close closes the cgroup's files (not the cgroup).
func (cc *cmdCgroup) close() {
	cc.task.Close()
	if cc.count != nil {
		cc.count.Close()
	}
}

// empty reports whether no process is left in the cgroup. A process
// counts until it is reaped.
func (cc *cmdCgroup) empty() bool {
	if cc.count != nil {
		var b [256]byte
		if n, _ := cc.count.ReadAt(b[:], 0); n > 0 {
			s := string(b[:n])
			if cc.v2 {
				return strings.Contains(s, "populated 0")
			}
			return strings.TrimSpace(s) == "0"
		}
	}
	pids, err := readPids(cc.dir)
	return err == nil && len(pids) == 0
}

// maxFreeCgroups bounds the empty command cgroups kept for reuse.
const maxFreeCgroups = 8

func (s *Sandbox) takeCgroup(id uint64) (*cmdCgroup, error) {
	s.mu.Lock()
	if n := len(s.free); n > 0 {
		cc := s.free[n-1]
		s.free = s.free[:n-1]
		s.mu.Unlock()
		return cc, nil
	}
	s.mu.Unlock()
	d, f, err := s.cg.newCommand(id)
	if err != nil {
		return nil, err
	}
	cc := &cmdCgroup{dir: d, task: f, taskFD: int(f.Fd()), v2: s.cg.v2}
	name := "pids.current"
	if cc.v2 {
		name = "cgroup.events"
	}
	// Not through os.Open: the poller would be woken by cgroup.events
	// at every start and end of a command, for nothing.
	if fd, err := unix.Open(filepath.Join(d, name), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		cc.count = os.NewFile(uintptr(fd), name)
	}
	return cc, nil
}

// releaseCgroup keeps a command's cgroup for reuse, or removes it, once
// its processes are gone. An empty cgroup (the command left nothing
// behind) is released at once, without a goroutine; else background
// processes keep it until they exit or the sandbox stops.
func (s *Sandbox) releaseCgroup(cc *cmdCgroup) {
	if cc == nil {
		s.cleanup.Done()
		return
	}
	if cc.empty() {
		s.recycleCgroup(cc)
		s.cleanup.Done()
		return
	}
	go func() {
		defer s.cleanup.Done()
		for {
			select {
			case <-s.stopped:
				cc.close()
				return // Stop removes the whole tree
			case <-time.After(time.Second):
			}
			if cc.empty() {
				s.recycleCgroup(cc)
				return
			}
		}
	}()
}

// recycleCgroup keeps an empty command cgroup for reuse, or removes it.
// Nothing can enter an empty command cgroup but the init's forking
// thread, on our request: reuse is safe.
func (s *Sandbox) recycleCgroup(cc *cmdCgroup) {
	s.mu.Lock()
	if !s.stopping && len(s.free) < maxFreeCgroups {
		s.free = append(s.free, cc)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	cc.close()
	_ = unix.Rmdir(cc.dir)
}

// Stop kills every process of the sandbox and removes its cgroups. The
// workspace stays. Stop is idempotent.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.stopDone
		return s.stopErr
	}
	s.stopping = true
	s.mu.Unlock()

	var errs []error
	if s.mode == modeHost {
		// Closing the channel makes the init kill its descendants (it is
		// their subreaper) before it exits.
		_ = s.conn.CloseWrite()
		select {
		case <-s.dead:
		case <-time.After(2 * time.Second):
		}
	}
	_ = s.cmd.Process.Kill() // PID 1: the kernel kills the whole namespace
	<-s.dead
	close(s.stopped)
	s.cleanup.Wait()
	s.mu.Lock()
	for _, cc := range s.free {
		cc.close()
	}
	s.free = nil
	s.mu.Unlock()
	if s.cg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.cg.remove(ctx)
		cancel()
		for _, d := range s.cg.dirs {
			if _, err := os.Stat(d); err == nil {
				errs = append(errs, fmt.Errorf("stop: cgroup %s remains", d))
			}
		}
	}
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
	s.m.mu.Lock()
	if s.m.sandboxes[s.spec.Key] == s {
		delete(s.m.sandboxes, s.spec.Key)
	}
	s.m.mu.Unlock()
	s.m.releaseUID(s.uid, s.spec.Key)
	s.stopErr = errors.Join(errs...)
	close(s.stopDone)
	return s.stopErr
}

// outputPipe returns a pipe for one output stream of a command: the read
// end non-blocking in the server's poller, the write end a bare blocking
// descriptor that is only passed to the init (as an *os.File it would be
// registered with the poller, and made blocking again to be sent).
func outputPipe() (*os.File, int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, -1, err
	}
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, -1, err
	}
	return os.NewFile(uintptr(p[0]), "|0"), p[1], nil
}

// drainBufs holds the copy buffers of drain: two per Exec would
// otherwise allocate 128 KiB per command.
var drainBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// drain copies r to w until EOF and closes r.
func drain(r *os.File, w io.Writer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		buf := drainBufs.Get().(*[]byte)
		defer drainBufs.Put(buf)
		// Hide *os.File's WriteTo, which would ignore buf and allocate.
		_, _ = io.CopyBuffer(w, struct{ io.Reader }{r}, *buf)
	}()
	return done
}

// detachableWriter forwards to w until detached, then discards: Exec's
// writers are never used after Exec returns.
type detachableWriter struct {
	mu       sync.Mutex
	w        io.Writer
	detached bool
}

func (d *detachableWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.detached {
		return len(p), nil
	}
	if _, err := d.w.Write(p); err != nil {
		d.detached = true // a failing writer gets no more output
	}
	return len(p), nil
}

func (d *detachableWriter) detach() {
	d.mu.Lock()
	d.detached = true
	d.mu.Unlock()
}

// tailBuffer keeps the last max bytes the init wrote to stderr (Go runtime
// crashes), for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) == 0 {
		return ""
	}
	return ": " + strings.TrimSpace(string(t.b))
}
