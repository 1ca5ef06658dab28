package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Manager starts and tracks the sandboxes of one server.
type Manager struct {
	opts     Options
	report   Report
	mode     initMode
	root     bool
	cg       *cgroupBase
	stateDir string
	ownState bool // stateDir was created by New and is removed by Close
	// uids is the range of host uids registered for stateDir (root), and
	// registry where.
	uidRange uidRange
	registry *uidRegistry
	// Contents of the generated /etc/passwd and /etc/group naming
	// innerUID "sandbox" (TierNamespaces on the host's system
	// directories); "" when none.
	passwd, group string

	spawn chan spawnReq
	quit  chan struct{}

	mu        sync.Mutex
	closed    bool
	sandboxes map[string]*Sandbox // by Key
	starting  map[string]chan struct{}
	uids      map[int]string
	seq       uint64
}

// spawnReq asks the spawner thread to start a process.
type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// New probes the host and picks the isolation tier.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		opts:      opts,
		root:      os.Geteuid() == 0,
		sandboxes: map[string]*Sandbox{},
		starting:  map[string]chan struct{}{},
		uids:      map[int]string{},
		spawn:     make(chan spawnReq),
		quit:      make(chan struct{}),
	}
	if opts.Tier == "" {
		opts.Tier = TierAuto
	}
	if err := m.initStateDir(); err != nil {
		return nil, err
	}
	if m.root {
		if err := m.registerUIDs(opts.UIDRegistry); err != nil {
			if m.ownState {
				_ = os.RemoveAll(m.stateDir)
			}
			return nil, err
		}
	}
	go m.spawner()
	tier, notes, err := m.pickTier(opts.Tier)
	if err != nil {
		m.shutdown()
		return nil, err
	}
	m.report = Report{Tier: tier, Isolated: tier != TierNoneUnsafe, Notes: notes}
	switch tier {
	case TierNamespaces:
		m.mode = modeUserNS
		if err := m.buildIDFiles(); err != nil {
			m.report.Notes = append(m.report.Notes, "uid 1000 inside keeps the host's name for it: "+err.Error())
		}
	case TierRootNamespaces:
		m.mode = modeRootNS
	default:
		m.mode = modeHost
	}
	m.initCgroups(opts.NoCgroups)
	m.reportHost()
	return m, nil
}

// initCgroups creates the Manager's cgroups (unless disabled) and reports
// the limits they cannot enforce.
func (m *Manager) initCgroups(disabled bool) {
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	base, why := (*cgroupBase)(nil), "disabled by Options.NoCgroups"
	if !disabled {
		base, why = newCgroupBase("m" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix[:]))
	}
	m.cg = base
	switch {
	case base == nil:
		m.report.Notes = append(m.report.Notes, "no cgroups ("+why+"): no cpu, memory or pids limits, and a timed-out command's double-forked descendants survive until Stop")
		m.report.Unenforced = []string{"cpu", "memory", "pids"}
	case base.v2:
		m.report.Cgroup = "v2"
	default:
		m.report.Cgroup = "v1"
		for _, l := range []string{"cpu", "memory", "pids"} {
			if !base.has(l) {
				m.report.Unenforced = append(m.report.Unenforced, l)
			}
		}
	}
}

// reportHost adds what every tier lacks on this host to the report: the
// host paths in mountinfo, the shared uids, the storage quota, the owner
// of the server binary.
func (m *Manager) reportHost() {
	if m.mode != modeHost {
		m.report.Notes = append(m.report.Notes,
			"/proc/self/mountinfo inside shows the host path of the workspace: keep host paths opaque")
	}
	if m.root {
		m.report.Notes = append(m.report.Notes, fmt.Sprintf(
			"sandboxes run as host uids %d-%d, a range registered for this server's data directory that no other server of this host uses (if they share the uid registry)", m.uidRange.First, m.uidRange.First+m.uidRange.Count-1))
	} else {
		m.report.Notes = append(m.report.Notes,
			"the server is not root: every sandbox runs as the server's host uid (inside a user namespace), so they share its per-uid kernel limits")
	}
	m.report.Unenforced = append(m.report.Unenforced, "ephemeralStorage")
	m.report.Notes = append(m.report.Notes,
		"ephemeralStorage: only the private /tmp is size-limited (and RLIMIT_FSIZE caps single files); the workspace has no quota")
	if fi, err := os.Stat("/proc/self/exe"); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || fi.Mode().Perm()&0o022 != 0) && m.root {
			m.report.Notes = append(m.report.Notes, "the server binary is not root-owned and read-only: a sandbox uid might be able to modify the init binary")
		}
	}
}

// initStateDir creates (or adopts) the directory of per-sandbox host
// state.
func (m *Manager) initStateDir() error {
	if m.opts.StateDir == "" {
		d, err := os.MkdirTemp("", "nox-sandbox-")
		if err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
		m.stateDir, m.ownState = d, true
	} else {
		m.stateDir = m.opts.StateDir
		if err := os.MkdirAll(m.stateDir, 0o700); err != nil {
			return fmt.Errorf("create state dir: %w", err)
		}
	}
	// Host-mode sandboxes reach their tmp directory below it.
	return wrap("state dir", os.Chmod(m.stateDir, 0o711))
}

// spawner starts every init from one locked OS thread that lives as long as
// the Manager: the parent-death signal fires when the *thread* that forked
// a child exits (golang/go#27505), so it must not be an arbitrary one.
func (m *Manager) spawner() {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	for {
		select {
		case r := <-m.spawn:
			r.done <- r.cmd.Start()
		case <-m.quit:
			return
		}
	}
}

// start starts cmd on the spawner thread.
func (m *Manager) start(ctx context.Context, cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	select {
	case m.spawn <- r:
	case <-m.quit:
		return errors.New("sandbox manager closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

// Report says what the chosen tier provides.
func (m *Manager) Report() Report {
	r := m.report
	r.Notes = append([]string(nil), r.Notes...)
	r.Unenforced = append([]string(nil), r.Unenforced...)
	return r
}

// Start builds the sandbox's environment, or returns the running one for
// spec.Key, and waits until it is ready.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	s, err := m.StartAsync(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := s.WaitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StartAsync is Start that returns as soon as the sandbox's init runs,
// while it sets up the environment (mounts, pivot_root, seccomp): Exec
// waits for the setup, WaitReady reports its outcome, and a failed setup
// stops the sandbox. ctx's deadline (60s without one) bounds the setup.
func (m *Manager) StartAsync(ctx context.Context, spec Spec) (*Sandbox, error) {
	if spec.Key == "" || strings.ContainsAny(spec.Key, "/\x00") || spec.Key == "." || spec.Key == ".." {
		return nil, fmt.Errorf("sandbox key %q is not a file name", spec.Key)
	}
	if !filepath.IsAbs(spec.Workspace) {
		return nil, fmt.Errorf("workspace %q is not an absolute path", spec.Workspace)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errors.New("sandbox manager closed")
		}
		if s := m.sandboxes[spec.Key]; s != nil && s.Alive() {
			m.mu.Unlock()
			return s, nil
		}
		wait, busy := m.starting[spec.Key]
		if !busy {
			done := make(chan struct{})
			m.starting[spec.Key] = done
			old := m.sandboxes[spec.Key]
			m.seq++
			seq := m.seq
			m.mu.Unlock()
			if old != nil {
				_ = old.Stop() // dead: clean up what is left
			}
			s, err := m.build(ctx, spec, seq)
			m.mu.Lock()
			delete(m.starting, spec.Key)
			closed := m.closed
			if err == nil && !closed {
				m.sandboxes[spec.Key] = s
			}
			close(done)
			m.mu.Unlock()
			if err == nil && closed {
				_ = s.Stop() // Close ran meanwhile
				return nil, errors.New("sandbox manager closed")
			}
			return s, err
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops every sandbox and removes the Manager's cgroups.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*Sandbox
	for _, s := range m.sandboxes {
		all = append(all, s)
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.Stop())
	}
	m.shutdown()
	return errors.Join(errs...)
}

// shutdown ends the spawner thread and removes the Manager's cgroups and
// its own state directory.
func (m *Manager) shutdown() {
	select {
	case <-m.quit:
	default:
		close(m.quit)
	}
	if m.cg != nil {
		m.cg.remove()
	}
	if m.ownState {
		if m.registry != nil {
			_ = m.registry.release(m.stateDir)
		}
		_ = os.RemoveAll(m.stateDir)
	}
}
