package localbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/egress"
	"github.com/noxrunner/nox/internal/proctable"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
)

// box is the in-memory state of one sandbox.
type box struct {
	startMu sync.Mutex // serialises building and stopping the environment

	// Guarded by store.mu.
	meta     meta
	dirty    bool // meta changed since it was last written
	env      environment
	starting bool
	deleting bool
	gone     chan struct{} // closed once a delete removed it (deleting is then true)
	creating chan struct{} // non-nil while ensure writes its files; closed when done
	busy     int           // operations in flight (execs, uploads, downloads); never reaped while > len(cuts)
	// cuts end the downloads, file reads and watches in flight (keyed by
	// them): a delete or expiry calls them. They do not keep a sandbox
	// past its TTL.
	cuts map[any]func()
	// watches counts the file watches open (Config.MaxWatchesPerSandbox).
	watches int
	// condMu serialises the check and the rename of conditional file
	// writes (If-Match, create-only) of the files API.
	condMu sync.Mutex
	execs  int // commands running

	execSlots chan struct{} // its share of the command slots (MaxConcurrentExecsPerSandbox)

	uploads      int64 // fallback: bytes staged by uploads in progress (see stageBudget)
	storageKills int   // times the storage monitor killed its processes
	overFloor    int64 // > 0: above its storage limit; the lowest usage seen since (see checkStorage)
	walkFailed   bool  // its last measurement failed (logged once)
	restricted   bool  // its environment was built over the limit: no writing file data
	// storageUsed is the monitor's last complete measurement of its
	// workspace, when storageKnown (sandboxes.usage).
	storageUsed  int64
	storageKnown bool

	// policy is its egress policy (nil: none, and always without the
	// network.egress extension); gw the gateway enforcing it while env
	// runs (nil with policy none). Changed under startMu too.
	policy *egress.Policy
	gw     *gateway

	procs  *proctable.Table // its processes (processes extension)
	procMu sync.Mutex       // serialises writes of its process records
}

// newBox returns the in-memory state of the sandbox m describes.
func (s *store) newBox(m meta) *box {
	b := &box{meta: m, gone: make(chan struct{}), cuts: map[any]func(){}, execSlots: make(chan struct{}, max(s.cfg.MaxConcurrentExecsPerSandbox, 1))}
	b.procs = s.newProcessTable(b)
	return b
}

// boxStatus is a snapshot of one sandbox for the API.
type boxStatus struct {
	meta         meta
	state        string // one of api.State*
	runningExecs int
	usage        *driver.Usage // sandboxes.usage: set by get and list
}

// store holds the sandboxes' state, persists their metadata and drives the
// runtime. It returns errors wrapping the package's sentinels.
type store struct {
	cfg     Config
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

	// The file watches open in the server (guarded by mu) and the
	// directories they watch (HostWatchesBudget, HostWatchDirsBudget).
	watchesOpen int64
	watchDirs   atomic.Int64

	// disks makes, mounts and unmounts the sandboxes' file systems; nil:
	// plain directories and the monitor.
	disks diskquota.Disks
	// egress is the setup of the sandboxes' egress gateways; nil: the
	// tier has no network namespaces, no network.egress extension.
	egress *egressSetup
	imgMu  sync.Mutex
	imaged map[string]bool // keys whose storage is a mounted image
	// The monitor's walks in progress, by key, and its tick count (its
	// goroutine only).
	usage       map[string]*usageWalk
	monitorTick int
	// reaped counts the sandboxes removed on expiry (GET /metrics).
	reaped atomic.Uint64

	stopReaper  context.CancelFunc
	reaperDone  chan struct{}
	monitorDone chan struct{} // closed when the storage monitor ended (at once when disabled)
}

// openStore loads every sandbox's metadata from the locked data directory
// and starts the reaper. The store owns lock from now on.
func openStore(cfg Config, rt runtime, lock *os.File, disks diskquota.Disks, eg *egressSetup) (*store, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &store{
		cfg: cfg, rt: rt, log: cfg.Logger, dataDir: dir, now: time.Now, lock: lock,
		boxes: map[string]*box{},
		disks: disks, imaged: map[string]bool{}, usage: map[string]*usageWalk{}, egress: eg,
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

// notFound is the error for an unknown sandbox id.
func notFound(id string) error {
	return fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
}

// lookupLocked returns the live box of id; s.mu must be held.
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

// deleted reports whether b is being (or was) deleted.
func (s *store) deleted(b *box) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.deleting
}

// touchLocked refreshes b's expiry.
func (s *store) touchLocked(b *box) {
	b.meta.LastActiveAt = s.now().UTC().Truncate(time.Millisecond)
	b.dirty = true
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
	s.liftRestriction(b)
	env, err := s.startEnv(ctx, b)
	if err != nil {
		s.release(b, exec)
		return nil, nil, err
	}
	return b, env, nil
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
		env, gw := b.takeEnvLocked()
		s.mu.Unlock()
		if env != nil {
			if err := env.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		gw.close()
		b.startMu.Unlock()
	}
	if err := s.rt.Close(); err != nil {
		errs = append(errs, err)
	}
	if s.disks != nil {
		if err := s.unmountAll(); err != nil {
			errs = append(errs, err)
		}
	}
	s.unlock()
	return errors.Join(errs...)
}

// addCut registers cut, called when b's sandbox is deleted or expires,
// under key; it returns false when that has begun already.
func (s *store) addCut(b *box, key any, cut func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.deleting {
		return false
	}
	b.cuts[key] = cut
	return true
}

// dropCut unregisters the cut of key.
func (s *store) dropCut(b *box, key any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(b.cuts, key)
}
