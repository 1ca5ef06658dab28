package localbackend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// sessionIDPattern is the contract's pattern of a session id (1..128 chars).
var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// validateSessionID returns an ErrInvalid error unless id is a valid session id.
func validateSessionID(id string) error {
	if !sessionIDPattern.MatchString(id) {
		return fmt.Errorf("sessionId: must be 1 to 128 characters from [A-Za-z0-9._-] starting with a letter or digit: %w", ErrInvalid)
	}
	return nil
}

// sandboxKey is the opaque host-side name of a session id's state.
func sandboxKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// meta is the persisted metadata of one sandbox (meta/<key>.json).
type meta struct {
	SessionID    string    `json:"sessionId"`
	Key          string    `json:"key"`
	PodName      string    `json:"podName"`
	Image        string    `json:"image"`
	TTLSeconds   int32     `json:"ttlSeconds"`
	CreatedAt    time.Time `json:"createdAt"`
	LastActiveAt time.Time `json:"lastActiveAt"`
	CPUMilli     int64     `json:"cpuMilli"`
	MemoryBytes  int64     `json:"memoryBytes"`
	StorageBytes int64     `json:"storageBytes"`
	Pids         int64     `json:"pids"`
}

func (m *meta) expiresAt() time.Time {
	return m.LastActiveAt.Add(time.Duration(m.TTLSeconds) * time.Second)
}

// box is the in-memory state of one sandbox.
type box struct {
	startMu sync.Mutex // serialises building and stopping the environment

	// Guarded by store.mu.
	meta     meta
	dirty    bool // meta changed since it was last written
	env      environment
	starting bool
	deleting bool
	creating chan struct{} // non-nil while ensure writes its files; closed when done
	busy     int           // operations in flight (execs, uploads, downloads); never reaped while > 0
	execs    int           // commands running

	storageKills int   // times the storage monitor killed its processes
	overFloor    int64 // > 0: above its storage limit; the lowest usage seen since (see checkStorage)
}

// boxStatus is a snapshot of one sandbox for the API.
type boxStatus struct {
	meta         meta
	state        string // pending, ready, stopped, terminating
	runningExecs int
}

// createParams is a validated create request.
type createParams struct {
	ttlSeconds   int32 // 0: keep (existing) or default (new)
	image        string
	cpuMilli     int64
	memoryBytes  int64
	storageBytes int64
}

// store holds the sandboxes' state, persists their metadata and drives the
// runtime. It returns errors wrapping the package's sentinels.
type store struct {
	cfg     Config
	lim     limits
	rt      runtime
	log     *slog.Logger
	dataDir string
	lock    *os.File
	now     func() time.Time

	metaMu sync.Mutex // serialises metadata file writes and removals
	// metaDirty: a metadata file was renamed into meta/ since the
	// directory was last fsynced (done by flush, off the request path).
	metaDirty atomic.Bool

	mu     sync.Mutex
	boxes  map[string]*box
	closed bool

	execSlots chan struct{}

	stopReaper  context.CancelFunc
	reaperDone  chan struct{}
	monitorDone chan struct{} // closed when the storage monitor ended (at once when disabled)
}

func (s *store) metaPath(key string) string {
	return filepath.Join(s.dataDir, "meta", key+".json")
}

// boxDir is the host directory holding a sandbox's workspace and upload staging area.
func (s *store) boxDir(key string) string { return filepath.Join(s.dataDir, "sandboxes", key) }

// makeBoxDirs creates a sandbox's directory (0711) and workspace (0700;
// the runtime gives it to the sandbox's uid).
func (s *store) makeBoxDirs(key string) error {
	if err := os.MkdirAll(s.boxDir(key), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(s.workspacePath(key), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func (s *store) workspacePath(key string) string {
	return filepath.Join(s.boxDir(key), "workspace")
}

// lockDataDir creates the data directory and takes its exclusive lock, so
// that two servers never share it. Directories leading to workspaces are
// searchable but not listable (0711): tiers without a mount namespace reach
// the workspace by its host path under the sandbox's uid.
func lockDataDir(dir string) (*os.File, error) {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o711}, {filepath.Join(dir, "meta"), 0o700}, {filepath.Join(dir, "sandboxes"), 0o711}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another nox server: %w", dir, ErrDataDirLocked)
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	return lock, nil
}

func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// openStore loads every sandbox's metadata from the locked data directory
// and starts the reaper. The store owns lock from now on.
func openStore(cfg Config, lim limits, rt runtime, lock *os.File) (*store, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &store{
		cfg: cfg, lim: lim, rt: rt, log: cfg.Logger, dataDir: dir, now: time.Now, lock: lock,
		boxes:     map[string]*box{},
		execSlots: make(chan struct{}, max(cfg.MaxConcurrentExecs, 1)),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.reap()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopReaper = cancel
	s.reaperDone = make(chan struct{})
	go s.reaper(ctx)
	s.monitorDone = make(chan struct{})
	if cfg.StorageCheckInterval > 0 {
		go s.storageMonitor(ctx)
	} else {
		close(s.monitorDone)
	}
	return s, nil
}

func (s *store) unlock() {
	if s.lock != nil {
		unlockFile(s.lock)
		s.lock = nil
	}
}

// load reads every metadata file; sandboxes start in state stopped.
// Unreadable files are logged and skipped (their workspaces are kept);
// sandbox directories without a metadata file (a crash during delete) are
// removed.
func (s *store) load() error {
	ents, err := os.ReadDir(filepath.Join(s.dataDir, "meta"))
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			if strings.HasPrefix(name, ".tmp-") {
				_ = os.Remove(filepath.Join(s.dataDir, "meta", name))
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dataDir, "meta", name))
		var m meta
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err == nil && (validateSessionID(m.SessionID) != nil || m.Key != sandboxKey(m.SessionID) || name != m.Key+".json") {
			err = errors.New("inconsistent metadata")
		}
		if err != nil {
			s.log.Warn("skipping sandbox metadata", "file", name, "err", err)
			continue
		}
		if err := s.makeBoxDirs(m.Key); err != nil {
			return fmt.Errorf("load %s: %w", m.SessionID, err)
		}
		// Staging areas of uploads a crash interrupted.
		_ = os.RemoveAll(filepath.Join(s.boxDir(m.Key), "upload"))
		s.boxes[m.SessionID] = &box{meta: m}
	}
	// Remove sandbox directories left without metadata.
	dirs, err := os.ReadDir(filepath.Join(s.dataDir, "sandboxes"))
	if err != nil {
		return fmt.Errorf("load sandboxes: %w", err)
	}
	// A key with a metadata file, even an unreadable one, keeps its directory.
	known := map[string]bool{}
	for _, e := range ents {
		if k, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			known[k] = true
		}
	}
	for _, d := range dirs {
		if !known[d.Name()] {
			s.log.Info("removing orphaned sandbox directory", "key", d.Name())
			_ = os.RemoveAll(filepath.Join(s.dataDir, "sandboxes", d.Name()))
		}
	}
	return nil
}

// writeMeta persists m atomically: temp file, fsync, rename (the
// directory is fsynced by the next flush). It does nothing when the
// sandbox was deleted meanwhile.
func (s *store) writeMeta(m meta) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	b, ok := s.boxes[m.SessionID]
	gone := !ok || b.deleting || b.meta.Key != m.Key
	s.mu.Unlock()
	if gone {
		return nil
	}
	return s.writeMetaFile(m)
}

// writeMetaFile writes m's file; the caller makes sure nobody else writes it.
func (s *store) writeMetaFile(m meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.metaPath(m.Key), data); err != nil {
		return err
	}
	s.metaDirty.Store(true)
	return nil
}

// syncMetaDir makes the renames into meta/ durable.
func (s *store) syncMetaDir() {
	if !s.metaDirty.Swap(false) {
		return
	}
	if d, err := os.Open(filepath.Join(s.dataDir, "meta")); err == nil {
		if err := d.Sync(); err != nil {
			s.metaDirty.Store(true)
		}
		d.Close()
	}
}

// writeFileAtomic writes name through a fsynced temporary file and a
// rename. The directory is not fsynced: see store.syncMetaDir.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func notFound(id string) error {
	return fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
}

// lookup returns the live box of id, under s.mu.
func (s *store) lookupLocked(id string) (*box, error) {
	if s.closed {
		return nil, fmt.Errorf("backend is closed: %w", ErrUnavailable)
	}
	b, ok := s.boxes[id]
	if !ok || b.creating != nil {
		return nil, notFound(id)
	}
	if b.deleting {
		return nil, fmt.Errorf("sandbox %q is being deleted: %w", id, ErrNotFound)
	}
	return b, nil
}

// touchLocked refreshes b's expiry.
func (s *store) touchLocked(b *box) {
	b.meta.LastActiveAt = s.now().UTC().Truncate(time.Millisecond)
	b.dirty = true
}

// ensure creates the sandbox id or refreshes an existing one, then builds
// its environment. Concurrent ensures of one id yield one sandbox. An
// existing sandbox keeps its image and limits; a given ttlSeconds replaces
// its TTL.
func (s *store) ensure(ctx context.Context, id string, p createParams) (meta, error) {
	s.mu.Lock()
	var b *box
	for {
		if s.closed {
			s.mu.Unlock()
			return meta{}, fmt.Errorf("backend is closed: %w", ErrUnavailable)
		}
		var ok bool
		b, ok = s.boxes[id]
		if ok && b.creating != nil {
			// A concurrent ensure is writing its files: wait, then look again.
			ch := b.creating
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return meta{}, ctx.Err()
			}
			s.mu.Lock()
			continue
		}
		break
	}
	if b != nil && b.deleting {
		s.mu.Unlock()
		return meta{}, fmt.Errorf("sandbox %q is being deleted; retry: %w", id, ErrUnavailable)
	}
	if b == nil {
		now := s.now().UTC().Truncate(time.Millisecond)
		ttl := p.ttlSeconds
		if ttl == 0 {
			ttl = int32(s.cfg.DefaultTTL / time.Second)
		}
		m := meta{
			SessionID: id, Key: sandboxKey(id), PodName: "sandbox-" + id, Image: p.image,
			TTLSeconds: ttl, CreatedAt: now, LastActiveAt: now,
			CPUMilli: p.cpuMilli, MemoryBytes: p.memoryBytes, StorageBytes: p.storageBytes, Pids: s.cfg.Pids,
		}
		// Reserve the id, then create the workspace and the metadata
		// without holding s.mu: until creating is closed the sandbox is
		// invisible (lookupLocked, get and list skip it) and concurrent
		// ensures of id wait.
		b = &box{meta: m, creating: make(chan struct{})}
		s.boxes[id] = b
		s.mu.Unlock()
		err := s.makeBoxDirs(m.Key)
		if err == nil {
			// No metaMu: nobody else writes the metadata of a sandbox
			// that is still being created.
			err = s.writeMetaFile(m)
		}
		s.mu.Lock()
		close(b.creating)
		b.creating = nil
		if err != nil {
			delete(s.boxes, id)
			s.mu.Unlock()
			_ = os.Remove(s.metaPath(m.Key))
			_ = os.RemoveAll(s.boxDir(m.Key))
			return meta{}, fmt.Errorf("create sandbox %q: %w", id, err)
		}
	} else {
		if p.ttlSeconds != 0 {
			b.meta.TTLSeconds = p.ttlSeconds
		}
		s.touchLocked(b)
	}
	b.busy++
	s.mu.Unlock()
	defer s.release(b, false)
	if _, err := s.startEnv(ctx, b); err != nil {
		return meta{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.meta, nil
}

// release ends an operation begun with busy++ and counts as activity.
func (s *store) release(b *box, exec bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.busy--
	if exec {
		b.execs--
	}
	if !b.deleting {
		s.touchLocked(b)
	}
}

// startEnv returns b's running environment, building it when needed.
func (s *store) startEnv(ctx context.Context, b *box) (environment, error) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	s.mu.Lock()
	env, m, deleting := b.env, b.meta, b.deleting
	s.mu.Unlock()
	if deleting {
		return nil, fmt.Errorf("sandbox %q is being deleted: %w", m.SessionID, ErrNotFound)
	}
	if env != nil && env.Alive() {
		return env, nil
	}
	if env != nil {
		_ = env.Stop()
	}
	rootfs, ok := s.cfg.Images[m.Image]
	if !ok {
		return nil, fmt.Errorf("sandbox %q: its image %q is no longer configured; delete and recreate it: %w", m.SessionID, m.Image, ErrUnavailable)
	}
	s.mu.Lock()
	b.starting = true
	b.env = nil
	s.mu.Unlock()
	// Building is not cancelled by the client going away: a concurrent
	// ensure may be waiting for the same environment.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartTimeout)
	defer cancel()
	env, err := s.rt.Start(sctx, sandbox.Spec{
		Key:       m.Key,
		Workspace: s.workspacePath(m.Key),
		RootFS:    rootfs,
		Hostname:  "sandbox",
		Limits: sandbox.Limits{
			CPUMilli: m.CPUMilli, MemoryBytes: m.MemoryBytes, Pids: m.Pids, StorageBytes: m.StorageBytes,
		},
	})
	s.mu.Lock()
	b.starting = false
	if err == nil {
		b.env = env
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start sandbox %q: %w", m.SessionID, err)
	}
	if n, ok := env.(interface {
		WaitReady(context.Context) error
		Notes() []string
	}); ok {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
			defer cancel()
			if err := n.WaitReady(ctx); err != nil {
				if !errors.Is(err, sandbox.ErrStopped) {
					s.log.Error("sandbox setup failed", "sessionId", m.SessionID, "err", err)
				}
			} else if notes := n.Notes(); len(notes) > 0 {
				s.log.Warn("sandbox started with restrictions", "sessionId", m.SessionID, "notes", notes)
			}
		}()
	}
	return env, nil
}

// envReady reports false while env's setup runs in the background.
func envReady(env environment) bool {
	r, ok := env.(interface{ Ready() bool })
	return !ok || r.Ready()
}

// acquire begins an operation on sandbox id: it refreshes its expiry and
// keeps the reaper away until release. With exec, it also counts a running
// command and returns the (re)built environment.
func (s *store) acquire(ctx context.Context, id string, exec bool) (*box, environment, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	b.busy++
	if exec {
		b.execs++
	}
	s.touchLocked(b)
	s.mu.Unlock()
	if !exec {
		return b, nil, nil
	}
	env, err := s.startEnv(ctx, b)
	if err != nil {
		s.release(b, exec)
		return nil, nil, err
	}
	return b, env, nil
}

// execSlot waits up to ExecQueueWait for one of the server's command slots.
func (s *store) execSlot(ctx context.Context) (func(), error) {
	release := func() { <-s.execSlots }
	select {
	case s.execSlots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.cfg.ExecQueueWait)
	defer t.Stop()
	select {
	case s.execSlots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, fmt.Errorf("too many concurrent commands (limit %d); retry later: %w", cap(s.execSlots), ErrBusy)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// touch refreshes id's expiry.
func (s *store) touch(id string) (meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookupLocked(id)
	if err != nil {
		return meta{}, err
	}
	s.touchLocked(b)
	return b.meta, nil
}

func (s *store) statusLocked(b *box) (boxStatus, environment) {
	st := boxStatus{meta: b.meta, runningExecs: b.execs}
	switch {
	case b.deleting:
		st.state = "terminating"
	case b.starting:
		st.state = "pending"
	case b.env != nil && !envReady(b.env):
		st.state = "pending" // its setup runs (the runtime's StartAsync)
	case b.env != nil:
		st.state = "ready"
	default:
		st.state = "stopped"
	}
	return st, b.env
}

// get returns id's status without refreshing its expiry.
func (s *store) get(id string) (boxStatus, error) {
	s.mu.Lock()
	b, ok := s.boxes[id]
	if !ok || s.closed || b.creating != nil {
		s.mu.Unlock()
		return boxStatus{}, notFound(id)
	}
	st, env := s.statusLocked(b)
	s.mu.Unlock()
	if st.state == "ready" && !env.Alive() {
		st.state = "stopped"
	}
	return st, nil
}

// list returns up to n sandboxes with ids greater than after, ordered by
// id, and whether more follow.
func (s *store) list(after string, n int) ([]boxStatus, bool) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.boxes))
	for id, b := range s.boxes {
		if id > after && b.creating == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	more := len(ids) > n
	if more {
		ids = ids[:n]
	}
	out := make([]boxStatus, 0, len(ids))
	envs := make([]environment, 0, len(ids))
	for _, id := range ids {
		st, env := s.statusLocked(s.boxes[id])
		out = append(out, st)
		envs = append(envs, env)
	}
	s.mu.Unlock()
	for i := range out {
		if out[i].state == "ready" && !envs[i].Alive() {
			out[i].state = "stopped"
		}
	}
	return out, more
}

// remove deletes sandbox id: it stops its environment (killing every
// command) and removes its workspace and metadata.
func (s *store) remove(id string) error {
	_, err := s.removeIf(id, nil)
	return err
}

// removeIf is remove when cond, checked under s.mu, holds (nil: always).
func (s *store) removeIf(id string, cond func(*box) bool) (bool, error) {
	s.mu.Lock()
	b, err := s.lookupLocked(id)
	if err != nil {
		s.mu.Unlock()
		return false, err
	}
	if cond != nil && !cond(b) {
		s.mu.Unlock()
		return false, nil
	}
	b.deleting = true
	key := b.meta.Key
	s.mu.Unlock()

	b.startMu.Lock()
	s.mu.Lock()
	env := b.env
	b.env = nil
	s.mu.Unlock()
	var errs []error
	if env != nil {
		if err := env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop: %w", err))
		}
	}
	b.startMu.Unlock()

	s.metaMu.Lock()
	if err := os.Remove(s.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	s.metaMu.Unlock()
	if err := os.RemoveAll(s.boxDir(key)); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	if s.boxes[id] == b {
		delete(s.boxes, id)
	}
	s.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("delete sandbox %q: %w", id, err)
	}
	return true, nil
}

// reaper deletes expired sandboxes and flushes changed metadata every
// ReaperInterval until ctx is cancelled.
func (s *store) reaper(ctx context.Context) {
	defer close(s.reaperDone)
	t := time.NewTicker(s.cfg.ReaperInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reap()
			s.flush()
		}
	}
}

// reap deletes every expired sandbox that has no operation in flight.
func (s *store) reap() {
	expired := func(b *box) bool {
		return !b.deleting && b.creating == nil && b.busy == 0 && !s.now().Before(b.meta.expiresAt())
	}
	var ids []string
	s.mu.Lock()
	for id, b := range s.boxes {
		if expired(b) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		// Checked again under the lock: it may have been used meanwhile.
		removed, err := s.removeIf(id, expired)
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("reaping sandbox", "sessionId", id, "err", err)
		} else if removed {
			s.log.Info("sandbox expired and removed", "sessionId", id)
		}
	}
}

// flush writes the metadata of sandboxes whose expiry changed, so that a
// restart (even after kill -9) loses at most one ReaperInterval of activity.
func (s *store) flush() {
	s.mu.Lock()
	var dirty []meta
	for _, b := range s.boxes {
		if b.dirty && !b.deleting {
			b.dirty = false
			dirty = append(dirty, b.meta)
		}
	}
	s.mu.Unlock()
	for _, m := range dirty {
		if err := s.writeMeta(m); err != nil {
			s.log.Error("writing sandbox metadata", "sessionId", m.SessionID, "err", err)
		}
	}
	s.syncMetaDir()
}

// close stops the reaper and every environment and releases the data dir.
// Workspaces and metadata stay.
func (s *store) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopReaper()
	<-s.reaperDone
	<-s.monitorDone
	s.flush()
	var errs []error
	s.mu.Lock()
	boxes := make([]*box, 0, len(s.boxes))
	for _, b := range s.boxes {
		boxes = append(boxes, b)
	}
	s.mu.Unlock()
	for _, b := range boxes {
		b.startMu.Lock()
		s.mu.Lock()
		env := b.env
		b.env = nil
		s.mu.Unlock()
		if env != nil {
			if err := env.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		b.startMu.Unlock()
	}
	if err := s.rt.Close(); err != nil {
		errs = append(errs, err)
	}
	s.unlock()
	return errors.Join(errs...)
}
