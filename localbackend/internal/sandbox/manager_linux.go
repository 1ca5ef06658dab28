package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Host uids of sandboxes when the server is root: uidBase + a slot derived
// from Spec.Key, so a restarted server maps a workspace to the same owner.
const (
	uidBase  = 200000
	uidSlots = 100000
	innerUID = 1000 // the sandbox user as seen inside (TierNamespaces)
)

// Defaults for the private /tmp.
const (
	defaultTmpBytes = 256 << 20
	minTmpInodes    = 1024
	maxTmpInodes    = 1 << 20
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

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	base, why := (*cgroupBase)(nil), "disabled by Options.NoCgroups"
	if !opts.NoCgroups {
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
	if m.mode != modeHost {
		m.report.Notes = append(m.report.Notes,
			"/proc/self/mountinfo inside shows the host path of the workspace: keep host paths opaque")
	}
	if m.root {
		m.report.Notes = append(m.report.Notes, fmt.Sprintf(
			"sandboxes run as host uids %d-%d chosen from Spec.Key; another server on this host using that range could collide", uidBase, uidBase+uidSlots-1))
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
	return m, nil
}

// buildIDFiles builds the sandbox's /etc/passwd and /etc/group: the
// host's, without the entries of uid/gid innerUID or named "sandbox", plus
// "sandbox" (innerUID, home /workspace). Root and the host's system users
// keep their names for tools like ls -l.
func (m *Manager) buildIDFiles() error {
	gen := func(host, entry string, idField int) (string, error) {
		data, err := os.ReadFile(host)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Split(l, ":")
			if strings.TrimSpace(l) == "" || (len(f) > idField && (f[idField] == strconv.Itoa(innerUID) || f[0] == "sandbox")) {
				continue
			}
			b.WriteString(l + "\n")
		}
		b.WriteString(entry + "\n")
		if b.Len() > 256<<10 {
			return "", errors.New("too large to pass to the init")
		}
		return b.String(), nil
	}
	u := strconv.Itoa(innerUID)
	passwd, err := gen("/etc/passwd", "sandbox:x:"+u+":"+u+":sandbox:/workspace:/bin/sh", 2)
	if err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	group, err := gen("/etc/group", "sandbox:x:"+u+":", 2)
	if err != nil {
		return fmt.Errorf("group: %w", err)
	}
	m.passwd, m.group = passwd, group
	return nil
}

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

// pickTier runs the probes.
func (m *Manager) pickTier(want Tier) (Tier, []string, error) {
	var notes []string
	tryUserNS := func() error { return m.probe(true) }
	tryRootNS := func() error {
		if !m.root {
			return errors.New("the server is not root")
		}
		return m.probe(false)
	}
	tryLandlock := func() error {
		if abi := landlockABI(); abi < 1 {
			return errors.New("landlock is not available")
		}
		return nil
	}
	landlockNotes := []string{
		"no namespaces: /workspace is the host directory (ExecSpec.Dir under /workspace or /tmp is rewritten; argv and env are not)",
		"no pid namespace: commands can see host processes in /proc",
		"no network namespace: Landlock denies TCP bind/connect only; UDP and other protocols are reachable",
		"a timed-out command's double-forked descendants are found by a /proc walk only when no cgroup is available",
	}
	switch want {
	case TierAuto, "":
		err := tryUserNS()
		if err == nil {
			return TierNamespaces, nil, nil
		}
		notes = append(notes, "user namespaces unusable: "+err.Error())
		if err := tryRootNS(); err == nil {
			return TierRootNamespaces, append(notes, "no user namespace: the init runs as host root until it switches to the sandbox uid; inside, the sandbox user has its host uid"), nil
		}
		if err := tryLandlock(); err == nil {
			return TierLandlock, append(notes, landlockNotes...), nil
		}
		return "", nil, fmt.Errorf("%w: no namespaces and no Landlock (TierNoneUnsafe must be asked for explicitly)", ErrUnavailable)
	case TierNamespaces:
		if err := tryUserNS(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, nil, nil
	case TierRootNamespaces:
		if err := tryRootNS(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, []string{"no user namespace: the init runs as host root until it switches to the sandbox uid; inside, the sandbox user has its host uid"}, nil
	case TierLandlock:
		if err := tryLandlock(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, want, err)
		}
		return want, landlockNotes, nil
	case TierNoneUnsafe:
		return want, []string{
			"NOT ISOLATED: commands run on the host with the server's view of the filesystem and network",
			"only a process group, a session and rlimits apply (and a per-sandbox uid and cgroup when the server is root)",
			"/workspace is the host directory (ExecSpec.Dir under /workspace or /tmp is rewritten; argv and env are not)",
		}, nil
	}
	return "", nil, fmt.Errorf("%w: unknown tier %q", ErrUnavailable, want)
}

// probe re-executes this binary in new namespaces where it must mount.
func (m *Manager) probe(userns bool) error {
	cmd := exec.Command("/proc/self/exe", probeArg)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	if userns {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.start(ctx, cmd); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("probe: mount in new namespaces failed: %w", err)
	}
	return nil
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

// allocUID picks the host uid of a sandbox.
func (m *Manager) allocUID(key string) (int, int) {
	if !m.root {
		return os.Getuid(), os.Getgid()
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	slot := int(h.Sum32() % uidSlots)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < uidSlots; i++ {
		uid := uidBase + (slot+i)%uidSlots
		if owner, used := m.uids[uid]; !used || owner == key {
			m.uids[uid] = key
			return uid, uid
		}
	}
	return uidBase, uidBase
}

func (m *Manager) releaseUID(uid int, key string) {
	m.mu.Lock()
	if m.uids[uid] == key {
		delete(m.uids, uid)
	}
	m.mu.Unlock()
}

// chownTree gives the workspace to the sandbox uid (when it is not already
// its owner: a full walk only after a change of uid).
func chownTree(dir string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
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
		_ = os.RemoveAll(m.stateDir)
	}
}
