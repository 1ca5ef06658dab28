package localbackend

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
	"github.com/noxrunner/nox/server"
)

// BackendName is the backend's name in GET /v1/info.
const BackendName = "nox-local"

// IsolationHeader is set to "none-unsafe" on every response when commands
// run without isolation (tier none-unsafe).
const IsolationHeader = server.IsolationHeader

// Backend is a running local backend: the store of sandboxes on the
// sandbox runtime, and the HTTP handler serving them.
type Backend struct {
	cfg     Config
	lim     limits
	report  sandbox.Report
	store   *store
	handler http.Handler
	// egress is the setup of the egress gateways; nil without the
	// network.egress extension (tiers sharing the host's network).
	egress  *egressSetup
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
	// EgressModes are the egress modes sandboxes' policies may use
	// (extension network.egress); nil when the tier shares the host's
	// network and the extension is not offered.
	EgressModes []string
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
	cfg.newDisks = probeDisks
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
	var disks diskquota.Disks
	if cfg.newDisks != nil {
		disks = cfg.newDisks(cfg)
	}
	b := &Backend{cfg: cfg, lim: lim, report: rt.Report()}
	b.report.Notes, b.report.Unenforced = withStorageEnforcement(b.report.Notes, b.report.Unenforced, disks, cfg.StorageCheckInterval)
	b.report.Notes = append(b.report.Notes, watchBudgetNote(cfg))
	if hasNetworkNamespace(b.report.Tier) {
		b.egress = newEgressSetup(cfg, hostAddrs())
	}
	b.handler, err = server.New(b.Driver(), server.Options{
		Token: cfg.Token, MaxUploadBytes: cfg.MaxUploadBytes, MaxJSONBodyBytes: cfg.MaxJSONBodyBytes,
		StreamHeartbeat: cfg.StreamHeartbeat, Logger: cfg.Logger, StallTimeout: cfg.StallTimeout,
		PortDomain: cfg.PortDomain,
	})
	if err == nil {
		b.store, err = openStore(cfg, rt, lock, disks, b.egress)
	}
	if err != nil {
		_ = rt.Close()
		unlockFile(lock)
		return nil, fmt.Errorf("localbackend: %w", err)
	}
	return b, nil
}

// Handler returns the HTTP handler serving the API: the server layer
// (package server) over Driver, with the Config's Token, MaxUploadBytes,
// MaxJSONBodyBytes, StreamHeartbeat, StallTimeout and Logger.
func (b *Backend) Handler() http.Handler { return b.handler }

// Driver returns the backend as a driver.Backend, for serving it with
// options of one's own (server.New) or embedding it in another program.
// In the isolation tiers that give sandboxes a network namespace of their
// own it is also a driver.Network.
func (b *Backend) Driver() driver.Backend {
	if b.egress != nil {
		return networkBackend{driverBackend{b}}
	}
	return driverBackend{b}
}

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
	i := Info{
		Tier: string(b.report.Tier), Isolated: b.report.Isolated,
		Notes: slices.Clone(b.report.Notes), Unenforced: slices.Clone(b.report.Unenforced),
		DataDir: b.cfg.DataDir, Images: b.cfg.imageNames(), Version: b.cfg.Version,
		AuthRequired: b.cfg.Token != "",
	}
	if b.egress != nil {
		i.EgressModes = slices.Clone(b.cfg.EgressModes)
	}
	return i
}
