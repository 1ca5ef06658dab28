// Package membackend is nox's reference test backend: a small, complete
// implementation of driver.Backend that keeps its state in memory and runs
// commands as plain host processes. It plays the role Go CDK's memblob plays
// for blob: it passes the whole conformance suite (served by package
// server), and the SDK, CLI and conformance tests use it instead of
// hand-written fakes.
//
// It gives no isolation at all: a sandbox is a pair of host directories
// standing in for /workspace and /tmp, and the paths /workspace and /tmp
// are rewritten to them in a command's argv, environment and working
// directory, and back in its output. Never run untrusted code with it;
// use localbackend for that.
package membackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/proctable"
)

// Name is the backend's name in GET /v1/info.
const Name = "nox-mem"

// Config configures a Backend. Zero fields take the documented defaults.
type Config struct {
	// Dir holds the sandboxes' directories; it must exist. Default: a new
	// temporary directory, removed by Close.
	Dir string
	// Limits are the advertised and enforced limits; zero fields default
	// to DefaultLimits' values.
	Limits driver.Limits
	// Extensions are the optional operations offered. Default: all that
	// the backend implements (sandboxes.get, sandboxes.list, exec.flags,
	// files.ops, exec.stdin, processes, ports, sandboxes.usage (storage
	// only), and files.watch on Linux). Leaving files.ops out serves a
	// backend without the files API (to test clients' tar fallbacks).
	Extensions []string
	// ExecQueueWait is how long a command waits for a free slot when
	// Limits.MaxConcurrentExecs run, before ErrBusy. Default 2s.
	ExecQueueWait time.Duration
	// Faults are deliberate deviations from the contract, for testing
	// judges of backends (the conformance suite's self-test). Zero: none.
	Faults Faults
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Faults are deliberate deviations from the contract.
type Faults struct {
	// UploadFollowsDotDot extracts archive entries without checking their
	// names, so "../x" writes outside dest.
	UploadFollowsDotDot bool
	// TimeoutKillsOnlyCommand makes a timeout kill the command but not the
	// processes it started.
	TimeoutKillsOnlyCommand bool
	// NoOutputCap returns all output whatever Limits.MaxOutputBytes says.
	NoOutputCap bool
}

// DefaultLimits returns the limits a zero Config gets.
func DefaultLimits() driver.Limits {
	return driver.Limits{
		DefaultTTL: 900 * time.Second, MaxTTL: 24 * time.Hour,
		DefaultTimeout: 30 * time.Second, MaxTimeout: time.Hour,
		MaxOutputBytes: 1 << 20, MaxUploadEntries: 100_000, MaxConcurrentExecs: 64,
		MaxListPageSize: 1000, MaxWatchesPerSandbox: 8, MaxWatchDirs: 8192, MaxWatchQueue: 4096,
		MaxProcessesPerSandbox: 16, MaxProcessRecords: 256, ProcessOutputBytes: 1 << 20,
		MaxProcessWait: time.Minute, MaxStdinBytes: 512 << 10,
		MaxPreviewTTL: 24 * time.Hour,
	}
}

// unenforced are the resource limits the backend records but does not
// enforce: all of them, since commands are plain host processes.
var unenforced = []string{"cpu", "memory", "pids", "ephemeralStorage"}

// Backend is an in-memory NoxRunner backend.
type Backend struct {
	cfg     Config
	ownsDir bool
	slots   chan struct{}

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	closed    bool
}

var _ driver.Backend = (*Backend)(nil)

// sandbox is one sandbox's state; guarded by Backend.mu.
type sandbox struct {
	id                  string
	dir, workspace, tmp string
	image               string
	created, lastActive time.Time
	ttl                 time.Duration
	limits              driver.ResourceLimits
	running             map[*process]bool
	toHost, fromHost    *strings.Replacer
	deleted             bool
	execs               int
	// fsMu serializes the files API's checks with their renames and
	// removals (If-Match is a compare-and-swap).
	fsMu sync.Mutex
	// watches is the number of open watches (guarded by Backend.mu).
	watches int
	// procs are the sandbox's processes (processes extension).
	procs *proctable.Table
	// conns are the open connections of DialPort, closed with the
	// sandbox (guarded by Backend.mu).
	conns map[*portConn]bool
}

func (s *sandbox) expiresAt() time.Time { return s.lastActive.Add(s.ttl) }

// New returns a Backend.
func New(cfg Config) (*Backend, error) {
	d := DefaultLimits()
	l := &cfg.Limits
	for _, p := range []struct{ v, def *time.Duration }{
		{&l.DefaultTTL, &d.DefaultTTL}, {&l.MaxTTL, &d.MaxTTL}, {&l.DefaultTimeout, &d.DefaultTimeout}, {&l.MaxTimeout, &d.MaxTimeout},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = d.MaxOutputBytes
	}
	if l.MaxUploadEntries == 0 {
		l.MaxUploadEntries = d.MaxUploadEntries
	}
	for _, p := range []struct{ v, def *int64 }{
		{&l.ProcessOutputBytes, &d.ProcessOutputBytes}, {&l.MaxStdinBytes, &d.MaxStdinBytes},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if l.MaxProcessWait == 0 {
		l.MaxProcessWait = d.MaxProcessWait
	}
	if l.MaxPreviewTTL == 0 {
		l.MaxPreviewTTL = d.MaxPreviewTTL
	}
	for _, p := range []struct{ v, def *int }{
		{&l.MaxConcurrentExecs, &d.MaxConcurrentExecs}, {&l.MaxListPageSize, &d.MaxListPageSize},
		{&l.MaxWatchesPerSandbox, &d.MaxWatchesPerSandbox}, {&l.MaxWatchDirs, &d.MaxWatchDirs}, {&l.MaxWatchQueue, &d.MaxWatchQueue},
		{&l.MaxProcessesPerSandbox, &d.MaxProcessesPerSandbox}, {&l.MaxProcessRecords, &d.MaxProcessRecords},
	} {
		if *p.v < 0 {
			return nil, errors.New("membackend: Limits must not be negative")
		}
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if cfg.Extensions == nil {
		cfg.Extensions = []string{api.ExtSandboxesGet, api.ExtSandboxesList, api.ExtExecFlags, api.ExtFilesOps,
			api.ExtExecStdin, api.ExtProcesses, api.ExtPorts, api.ExtSandboxesUsage}
		if _, ok := any((*Backend)(nil)).(driver.Watcher); ok {
			cfg.Extensions = append(cfg.Extensions, api.ExtFilesWatch)
		}
	}
	if cfg.ExecQueueWait == 0 {
		cfg.ExecQueueWait = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Backend{cfg: cfg, sandboxes: map[string]*sandbox{}, slots: make(chan struct{}, l.MaxConcurrentExecs)}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "nox-mem-")
		if err != nil {
			return nil, fmt.Errorf("membackend: %w", err)
		}
		b.cfg.Dir, b.ownsDir = dir, true
	}
	return b, nil
}

// Close kills every command and removes every sandbox's files.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	var dirs []string
	for id, s := range b.sandboxes {
		b.stopLocked(s)
		delete(b.sandboxes, id)
		dirs = append(dirs, s.dir)
	}
	b.mu.Unlock()
	var errs []error
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	if b.ownsDir {
		errs = append(errs, os.RemoveAll(b.cfg.Dir))
	}
	return errors.Join(errs...)
}

// Info describes the backend.
func (b *Backend) Info() driver.Info {
	return driver.Info{
		Name: Name, Version: "1", Extensions: slices.Clone(b.cfg.Extensions), Limits: b.cfg.Limits,
		Isolation: &driver.Isolation{Tier: "none", Isolated: false,
			Notes: []string{"membackend runs commands as plain host processes: a test double, not a sandbox"}},
	}
}

// Health reports whether the backend is open.
func (b *Backend) Health(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("backend is closed: %w", driver.ErrUnavailable)
	}
	return nil
}

// lookupLocked returns the live sandbox id, deleting it when expired.
func (b *Backend) lookupLocked(id string) (*sandbox, error) {
	if b.closed {
		return nil, fmt.Errorf("backend is closed: %w", driver.ErrUnavailable)
	}
	s := b.sandboxes[id]
	if s != nil && s.execs == 0 && b.cfg.Now().After(s.expiresAt()) {
		b.removeLocked(s)
		s = nil
	}
	if s == nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, driver.ErrNotFound)
	}
	return s, nil
}

// lookup returns the live sandbox id, counting the call as activity when
// active is set.
func (b *Backend) lookup(id string, active bool) (*sandbox, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.lookupLocked(id)
	if err == nil && active {
		s.lastActive = b.cfg.Now()
	}
	return s, err
}

func (b *Backend) removeLocked(s *sandbox) {
	b.stopLocked(s)
	s.deleted = true
	delete(b.sandboxes, s.id)
	go os.RemoveAll(s.dir)
}

func (b *Backend) stopLocked(s *sandbox) {
	for c := range s.conns {
		_ = c.Conn.Close()
	}
	clear(s.conns)
	for p := range s.running {
		p.killGroup()
	}
	// The table's Close waits for the runners, which take b.mu.
	go s.procs.Close(context.Background())
}

// Create creates or ensures sandbox id.
func (b *Backend) Create(_ context.Context, id string, req driver.CreateRequest) (driver.Sandbox, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.lookupLocked(id)
	if errors.Is(err, driver.ErrNotFound) {
		s, err = b.newSandboxLocked(id, req)
	}
	if err != nil {
		return driver.Sandbox{}, err
	}
	if req.TTL != 0 {
		s.ttl = req.TTL
	}
	s.lastActive = b.cfg.Now()
	return b.statusLocked(s), nil
}

func (b *Backend) newSandboxLocked(id string, req driver.CreateRequest) (*sandbox, error) {
	now := b.cfg.Now()
	dir, err := os.MkdirTemp(b.cfg.Dir, "sandbox-")
	if err != nil {
		return nil, fmt.Errorf("create sandbox %q: %w", id, err)
	}
	s := &sandbox{
		id: id, dir: dir, workspace: filepath.Join(dir, "workspace"), tmp: filepath.Join(dir, "tmp"),
		image: req.Image, created: now, lastActive: now, ttl: b.cfg.Limits.DefaultTTL, running: map[*process]bool{}, conns: map[*portConn]bool{},
		limits: driver.ResourceLimits{CPUMilli: req.CPUMilli, MemoryBytes: req.MemoryBytes, StorageBytes: req.StorageBytes,
			Unenforced: slices.Clone(unenforced)},
	}
	if s.image == "" {
		s.image = "default"
	}
	for _, d := range []string{s.workspace, s.tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("create sandbox %q: %w", id, err)
		}
	}
	s.procs = proctable.New(proctable.Config{
		MaxRunning: b.cfg.Limits.MaxProcessesPerSandbox, MaxRecords: b.cfg.Limits.MaxProcessRecords,
		OutputBytes: b.cfg.Limits.ProcessOutputBytes,
	})
	s.toHost = strings.NewReplacer(api.Workspace, s.workspace, "/tmp", s.tmp)
	s.fromHost = strings.NewReplacer(s.workspace, api.Workspace, s.tmp, "/tmp")
	b.sandboxes[id] = s
	return s, nil
}

func (b *Backend) statusLocked(s *sandbox) driver.Sandbox {
	lim := s.limits
	lim.Unenforced = slices.Clone(lim.Unenforced)
	return driver.Sandbox{
		ID: s.id, PodName: "mem-" + s.id, State: api.StateReady, Image: s.image,
		CreatedAt: s.created, LastActiveAt: s.lastActive, ExpiresAt: s.expiresAt(), TTL: s.ttl,
		Limits: &lim, RunningExecs: s.execs,
	}
}

// Get returns one sandbox's status.
func (b *Backend) Get(_ context.Context, id string) (driver.Sandbox, error) {
	b.mu.Lock()
	s, err := b.lookupLocked(id)
	if err != nil {
		b.mu.Unlock()
		return driver.Sandbox{}, err
	}
	st, dir := b.statusLocked(s), s.dir
	b.mu.Unlock()
	st.Usage = b.usage(dir)
	return st, nil
}

// List pages through the live sandboxes by id.
func (b *Backend) List(_ context.Context, after string, limit int) ([]driver.Sandbox, bool, error) {
	b.mu.Lock()
	var ids []string
	for id := range b.sandboxes {
		if id > after {
			if _, err := b.lookupLocked(id); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	more := len(ids) > limit
	ids = ids[:min(limit, len(ids))]
	page := make([]driver.Sandbox, 0, len(ids))
	dirs := make([]string, 0, len(ids))
	for _, id := range ids {
		page = append(page, b.statusLocked(b.sandboxes[id]))
		dirs = append(dirs, b.sandboxes[id].dir)
	}
	b.mu.Unlock()
	for i := range page {
		page[i].Usage = b.usage(dirs[i])
	}
	return page, more, nil
}

// Delete kills sandbox id's commands and removes its files.
func (b *Backend) Delete(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.lookupLocked(id)
	if err != nil {
		return err
	}
	b.removeLocked(s)
	return nil
}

// Touch refreshes sandbox id's expiry.
func (b *Backend) Touch(_ context.Context, id string) (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.lookupLocked(id)
	if err != nil {
		return time.Time{}, err
	}
	s.lastActive = b.cfg.Now()
	return s.expiresAt(), nil
}

// hostPath maps a sandbox path inside /workspace or /tmp to the host, for
// the files API (field names the request field in errors).
func (s *sandbox) hostPath(field, p string) (string, error) {
	c := path.Clean(p)
	for _, area := range []struct{ dir, host string }{{api.Workspace, s.workspace}, {"/tmp", s.tmp}} {
		if c == area.dir {
			return area.host, nil
		}
		if rest, ok := strings.CutPrefix(c, area.dir+"/"); ok {
			return filepath.Join(area.host, filepath.FromSlash(rest)), nil
		}
	}
	return "", fmt.Errorf("%s: %q is outside %s: %w", field, p, api.Workspace, driver.ErrInvalidArgument)
}
