package sandbox

// How it works on Linux.
//
// Start re-executes the server binary ("/proc/self/exe __nox_sandbox_init__")
// from one locked spawner thread (Pdeathsig is tied to the forking thread),
// with new user, mount, pid, net, ipc and uts namespaces (no user
// namespace in TierRootNamespaces, none at all in the host tiers; the
// init creates its cgroup namespace itself, rooted in the sandbox's
// cgroup, once the server has moved it there). The
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
//
// Start is Exec's first half: the request asks for a "started" reply,
// which the init sends under the reaper's lock (so "exited" cannot
// overtake it); a goroutine then tracks the command as Exec does. A stdin
// pipe's read end goes with the request, its write end stays non-blocking
// in the server's poller. A terminal is allocated by the init in the
// namespace tiers (/dev/ptmx of the sandbox's devpts), the command forked
// on its slave (Setsid, Setctty), and its master sent back with
// "started"; in the host tiers the server allocates it and sends the
// slave. Signals go through the init ("signal"), which sends them to the
// command's process group only while its pid is not reaped.
//
// Where each part lives:
//
//	manager_linux.go     Manager: New, Start, Close, the spawner thread
//	tier_linux.go        the probes that pick the tier
//	uids_linux.go        host uids of sandboxes, the generated /etc/passwd and /etc/group
//	uidrange_linux.go    the host-wide registry of uid ranges (one per state directory)
//	build_linux.go       Manager.build: host preparation, the init's config and files, spawn, setup
//	sandbox_linux.go     Sandbox: readiness, Stop
//	exec_linux.go        Sandbox.Exec: the request and the command's standard streams
//	track_linux.go       a started command: tracking (timeout, kill), result
//	command_linux.go     Sandbox.Start and Command: wait, signal, resize, kill
//	stdin_linux.go       a command's stdin: its pipe, writes, end-of-file
//	pty_linux.go         pseudo-terminals (for the init and the server)
//	output_linux.go      a command's output pipes and their forwarding
//	cmdcgroup_linux.go   per-command cgroups and their reuse
//	cgroup_linux.go      the Manager's cgroup hierarchy, killing and removing cgroups
//	cgroup_sandbox_linux.go  a sandbox's cgroups and their limits
//	proto_linux.go       the messages between the server and the init
//	init_linux.go        the init: config, setup, request loop
//	fork_linux.go        the init forks, reaps, signals and kills commands
//	dial_linux.go        DialPort: the init connects to a port of its loopback and sends the socket
//	listen_linux.go      Listen: the init binds a socket in its network namespace and sends it
//	stdio_linux.go       the init's side of a command's standard streams
//	mounts_linux.go      the init's root filesystem
//	privs_linux.go       capabilities, Landlock
//	seccomp_linux.go     the seccomp filter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"
)

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
	// stderr keeps what the init wrote to stderr; exitState says how it
	// ended ("signal: killed"), set before dead is closed.
	stderr    *headBuffer
	exitState string

	mu        sync.Mutex
	pending   map[uint64]chan reply
	seq       uint64
	stopping  bool          // Stop runs or ran, or the init died on its own
	stopAsked bool          // Stop was called
	stopped   chan struct{} // closed when the init is dead
	stopDone  chan struct{} // closed when Stop is done; stopErr is set
	stopErr   error
	cleanup   sync.WaitGroup
	free      []*cmdCgroup // empty command cgroups for reuse
	oomSeen   int64        // the cgroup's OOM kill count last looked at

	ready     chan struct{} // closed when the init's setup ended (see setupErr)
	readyOnce sync.Once
	setupErr  error // why the setup failed; read only after ready is closed
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

// Stop kills every process of the sandbox and removes its cgroups. The
// workspace stays. Stop is idempotent.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	s.stopAsked = true
	s.mu.Unlock()
	return s.stop()
}

// initExit describes how the init ended, for errors: ": <exit status>
// (<first line of its stderr>)". It waits up to a few seconds for the
// init to be reaped; "" when it is still running.
func (s *Sandbox) initExit() string {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.dead:
	case <-t.C:
		return ""
	}
	if sum := s.stderr.summary(); sum != "" {
		return ": " + s.exitState + " (" + sum + ")"
	}
	return ": " + s.exitState
}

// stop is Stop, also for an init that died on its own.
func (s *Sandbox) stop() error {
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
