package localbackend

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// BackendName is the backend's name in GET /v1/info.
const BackendName = "nox-local"

// Backend is a running local backend: the store of sandboxes, the runtime
// and the HTTP handler serving them.
type Backend struct {
	cfg     Config
	lim     limits
	log     *slog.Logger
	report  sandbox.Report
	store   *store
	server  *Server
	handler http.Handler
	isClose atomic.Bool
}

// Info describes a Backend for a startup banner.
type Info struct {
	// Tier is the isolation tier in use ("namespaces", "none-unsafe", ...).
	Tier string
	// Isolated is false when commands run on the host without isolation.
	Isolated bool
	// Notes say what the tier lacks on this host.
	Notes []string
	// Unenforced lists resource limits recorded but not enforced here.
	Unenforced []string
	// DataDir is the absolute data directory.
	DataDir string
	// Images are the image names create accepts.
	Images []string
	// Version is the backend's version.
	Version string
	// AuthRequired reports whether a bearer token is required.
	AuthRequired bool
}

// MaybeRunInit must be called first thing in main (and in TestMain) of
// every binary that embeds the backend: when the process was started as a
// sandbox's init it runs it and never returns; otherwise it returns at once.
func MaybeRunInit() {
	maybeInitRuntime()
}

// New opens (creating if needed) and locks cfg.DataDir, starts the sandbox
// runtime with the requested isolation tier, loads the sandboxes of earlier
// runs (in state stopped) and starts the reaper. Zero fields of cfg take
// the defaults documented on Config.
func New(cfg Config) (*Backend, error) {
	cfg.applyDefaults()
	lim, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("localbackend: data dir: %w", err)
	}
	cfg.DataDir = dir
	return newBackend(cfg, lim, func() (runtime, error) {
		rt, err := newRuntime(cfg)
		if err != nil {
			return nil, err
		}
		if err := checkDataDirReachable(cfg.DataDir, rt.Report().Tier, os.Geteuid() == 0); err != nil {
			_ = rt.Close()
			return nil, err
		}
		return rt, nil
	})
}

// newBackend builds a Backend on the runtime newRT returns (tests pass a
// double). The data directory is locked before the runtime starts.
func newBackend(cfg Config, lim limits, newRT func() (runtime, error)) (*Backend, error) {
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("localbackend: %w", err)
	}
	rt, err := newRT()
	if err != nil {
		unlockFile(lock)
		return nil, fmt.Errorf("localbackend: %w", err)
	}
	b := &Backend{cfg: cfg, lim: lim, log: cfg.Logger, report: rt.Report()}
	if cfg.StorageCheckInterval > 0 {
		b.report.Notes, b.report.Unenforced = withStorageMonitoring(b.report.Notes, b.report.Unenforced, cfg.StorageCheckInterval)
	}
	b.server = &Server{b: b}
	h, err := b.buildHandler()
	if err == nil {
		b.handler = h
		b.store, err = openStore(cfg, lim, rt, lock)
	}
	if err != nil {
		_ = rt.Close()
		unlockFile(lock)
		return nil, fmt.Errorf("localbackend: %w", err)
	}
	return b, nil
}

// checkDataDirReachable fails when the tier runs commands under per-sandbox
// host uids that reach /workspace by its host path (landlock and
// none-unsafe, as root) and a parent of dataDir is not searchable by them:
// every exec would fail with "working directory does not exist". The
// directories under dataDir are the backend's own and made 0711.
func checkDataDirReachable(dataDir string, tier sandbox.Tier, root bool) error {
	if !root || (tier != sandbox.TierLandlock && tier != sandbox.TierNoneUnsafe) {
		return nil
	}
	dir, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("data dir %s: its parent %s (mode %04o) is not searchable by the sandboxes' uids, which reach /workspace by its host path with the %s tier: use a data dir whose parents are (e.g. /var/lib/nox) or run chmod o+x %s", dataDir, d, fi.Mode().Perm(), tier, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Handler returns the HTTP handler serving the API.
func (b *Backend) Handler() http.Handler { return b.handler }

// Server returns the implementation of the generated strict server
// interface, for embedding into another router.
func (b *Backend) Server() *Server { return b.server }

// Close stops the reaper and every sandbox environment and unlocks the
// data directory. Workspaces and metadata stay for the next run.
func (b *Backend) Close() error {
	if b.isClose.Swap(true) {
		return nil
	}
	if err := b.store.close(); err != nil {
		return fmt.Errorf("localbackend: close: %w", err)
	}
	return nil
}

func (b *Backend) closed() bool { return b.isClose.Load() }

// Info describes the backend for a startup banner.
func (b *Backend) Info() Info {
	return Info{
		Tier: string(b.report.Tier), Isolated: b.report.Isolated,
		Notes: slices.Clone(b.report.Notes), Unenforced: slices.Clone(b.report.Unenforced),
		DataDir: b.cfg.DataDir, Images: b.cfg.imageNames(), Version: b.cfg.Version,
		AuthRequired: b.cfg.Token != "",
	}
}

// apiInfo is the body of GET /v1/info.
func (b *Backend) apiInfo() noxapi.Info {
	ext := []string{api.ExtInfo, api.ExtSandboxesGet, api.ExtSandboxesList, api.ExtExecStream, api.ExtExecFlags}
	if b.cfg.Token != "" {
		ext = append(ext, api.ExtAuthBearer)
	}
	i32 := func(d time.Duration) *int32 { v := int32(d / time.Second); return &v }
	i64 := func(v int64) *int64 { return &v }
	conc := int32(b.cfg.MaxConcurrentExecs)
	notes := slices.Clone(b.report.Notes)
	return noxapi.Info{
		APIVersion: "v1",
		Backend:    noxapi.BackendIdentity{Name: BackendName, Version: b.cfg.Version},
		Extensions: ext,
		Isolation:  &noxapi.Isolation{Tier: string(b.report.Tier), Isolated: b.report.Isolated, Notes: notes},
		Limits: &noxapi.BackendLimits{
			DefaultTTLSeconds:      i32(b.cfg.DefaultTTL),
			MaxTTLSeconds:          i32(b.cfg.MaxTTL),
			DefaultTimeoutSeconds:  i32(b.cfg.DefaultExecTimeout),
			MaxTimeoutSeconds:      i32(b.cfg.MaxExecTimeout),
			MaxOutputBytes:         i64(b.cfg.MaxOutputBytes),
			MaxUploadBytes:         i64(b.cfg.MaxUploadBytes),
			MaxUploadEntries:       i64(b.cfg.MaxUploadEntries),
			MaxConcurrentExecs:     &conc,
			StreamHeartbeatSeconds: i32(max(b.cfg.StreamHeartbeat, time.Second)),
		},
		Images: b.cfg.imageNames(),
	}
}
