package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// fakeRuntime is the test double of the sandbox runtime: commands run as
// host processes (no isolation) with /workspace rewritten to the sandbox's
// workspace directory. argv ["__oom"] simulates an out-of-memory kill,
// ["__fail"] an infrastructure failure after some output.
type fakeRuntime struct {
	starts     atomic.Int32
	startDelay time.Duration
	report     *sandbox.Report // nil: an isolated "fake" tier
	owner      *fileOwnerIDs   // non-nil: environments own files as this host user
	mu         sync.Mutex
	envs       []*fakeEnv
}

func (f *fakeRuntime) Report() sandbox.Report {
	if f.report != nil {
		return *f.report
	}
	return sandbox.Report{Tier: "fake", Isolated: true, Notes: []string{"test double"}, Unenforced: []string{"cpu", "memory", "pids", "ephemeralStorage"}}
}

func (f *fakeRuntime) Start(ctx context.Context, spec sandbox.Spec) (environment, error) {
	f.starts.Add(1)
	if f.startDelay > 0 {
		time.Sleep(f.startDelay)
	}
	e := &fakeEnv{spec: spec, procs: map[int]*os.Process{}}
	e.alive.Store(true)
	f.mu.Lock()
	f.envs = append(f.envs, e)
	f.mu.Unlock()
	if f.owner != nil {
		return ownedFakeEnv{e, *f.owner}, nil
	}
	return e, nil
}

// ownedFakeEnv is a fakeEnv whose files belong to a given host user.
type ownedFakeEnv struct {
	*fakeEnv
	owner fileOwnerIDs
}

func (e ownedFakeEnv) HostOwner() (uid, gid int) { return e.owner.uid, e.owner.gid }

func (f *fakeRuntime) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.envs {
		_ = e.Stop()
	}
	return nil
}

type fakeEnv struct {
	spec  sandbox.Spec
	alive atomic.Bool
	mu    sync.Mutex
	procs map[int]*os.Process
	// Listen's double (guarded by mu): listenErr, when set, is its error;
	// proxies are the loopback addresses of the "tcp" sockets it made.
	listenErr error
	proxies   []string
}

// Listen binds a socket on a free port of the host's loopback in place
// of addr in a network namespace of the sandbox's own.
func (e *fakeEnv) Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listenErr != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, e.listenErr)
	}
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer pc.Close()
		return pc.(*net.UDPConn).File()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	e.proxies = append(e.proxies, l.Addr().String())
	return l.(*net.TCPListener).File()
}

func (e *fakeEnv) Alive() bool { return e.alive.Load() }

func (e *fakeEnv) Stop() error {
	e.alive.Store(false)
	e.mu.Lock()
	defer e.mu.Unlock()
	for pid := range e.procs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	return nil
}

func (e *fakeEnv) hostPath(p string) string {
	if p == workspaceDir || strings.HasPrefix(p, workspaceDir+"/") {
		return filepath.Join(e.spec.Workspace, strings.TrimPrefix(p, workspaceDir))
	}
	return p
}

func (e *fakeEnv) Exec(ctx context.Context, x sandbox.ExecSpec) (sandbox.ExecResult, error) {
	if !e.Alive() {
		return sandbox.ExecResult{}, errors.New("environment stopped")
	}
	start := time.Now()
	if x.Argv[0] == "__fail" {
		_, _ = x.Stdout.Write([]byte("partial\n"))
		return sandbox.ExecResult{}, errors.New("simulated runtime failure")
	}
	if x.Argv[0] == "__oom" {
		return sandbox.ExecResult{ExitCode: 137, OOMKilled: true, Duration: time.Since(start)}, nil
	}
	prog := x.Argv[0]
	if !strings.Contains(prog, "/") {
		prog = ""
		for _, kv := range x.Env {
			if dirs, ok := strings.CutPrefix(kv, "PATH="); ok {
				for _, d := range filepath.SplitList(dirs) {
					if fi, err := os.Stat(filepath.Join(d, x.Argv[0])); err == nil && fi.Mode().IsRegular() {
						prog = filepath.Join(d, x.Argv[0])
						break
					}
				}
			}
		}
		if prog == "" {
			_, _ = x.Stderr.Write([]byte(x.Argv[0] + ": command not found\n"))
			return sandbox.ExecResult{ExitCode: 127, Duration: time.Since(start)}, nil
		}
	} else {
		prog = e.hostPath(prog)
	}
	cmd := exec.Command(prog, x.Argv[1:]...)
	cmd.Args[0] = x.Argv[0]
	cmd.Env = x.Env
	cmd.Dir = e.hostPath(x.Dir)
	cmd.Stdout, cmd.Stderr = x.Stdout, x.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return sandbox.ExecResult{ExitCode: code, Duration: time.Since(start)}, nil
	}
	pid := cmd.Process.Pid
	e.mu.Lock()
	e.procs[pid] = cmd.Process
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.procs, pid)
		e.mu.Unlock()
	}()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	timer := time.NewTimer(x.Timeout)
	defer timer.Stop()
	var timedOut bool
	var err error
	select {
	case err = <-waitErr:
	case <-timer.C:
		timedOut = true
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		err = <-waitErr
	case <-ctx.Done():
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-waitErr
		return sandbox.ExecResult{}, ctx.Err()
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // background leftovers of this command
	res := sandbox.ExecResult{Duration: time.Since(start), TimedOut: timedOut}
	var ee *exec.ExitError
	switch {
	case timedOut:
		res.ExitCode = 124
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
		} else {
			res.ExitCode = ee.ExitCode()
		}
	default:
		return res, err
	}
	return res, nil
}
