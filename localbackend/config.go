package localbackend

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
	"github.com/noxrunner/nox/server"
)

// DefaultImage is the name of the image that runs on the host's system
// directories (read-only); it is always available unless Config.Images
// defines it otherwise.
const DefaultImage = "default"

// Isolation tiers accepted by Config.Isolation: the sandbox runtime's
// tiers, defined there once.
const (
	IsolationAuto           = string(sandbox.TierAuto)
	IsolationNamespaces     = string(sandbox.TierNamespaces)
	IsolationRootNamespaces = string(sandbox.TierRootNamespaces)
	IsolationLandlock       = string(sandbox.TierLandlock)
	IsolationNoneUnsafe     = string(sandbox.TierNoneUnsafe)
)

// IsolationTiers returns the values Config.Isolation accepts, auto first,
// then the tiers strongest first.
func IsolationTiers() []string {
	return []string{IsolationAuto, IsolationNamespaces, IsolationRootNamespaces, IsolationLandlock, IsolationNoneUnsafe}
}

// Config configures a Backend. Start from DefaultConfig; New fills zero
// durations and sizes with the defaults below, so a zero Config works too.
// Every limit is enforced by the server and advertised in GET /v1/info.
type Config struct {
	// DataDir holds workspaces, metadata and the runtime's state.
	// Default: $XDG_DATA_HOME/nox, else ~/.local/share/nox. With the
	// landlock and none-unsafe tiers a root server runs commands under a
	// per-sandbox uid that reaches /workspace by its host path, so every
	// parent of DataDir must be searchable by others (not /root, 0700).
	DataDir string
	// Isolation is the isolation tier: auto (default), namespaces,
	// root-namespaces, landlock or none-unsafe. auto never picks none-unsafe.
	Isolation string
	// Images maps image names accepted by create to root filesystem
	// directories. An empty directory means the host's system directories.
	// Default: {"default": ""}.
	Images map[string]string
	// DefaultImageName is the image of a create without "image". Default:
	// "default" when it is in Images, else the first name in sorted order.
	DefaultImageName string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every /v1/ request. /healthz never needs it.
	Token string
	// Logger receives access logs and errors. Default: slog.Default().
	Logger *slog.Logger
	// Version is reported in GET /v1/info. Default: "dev".
	Version string

	// DefaultTTL is the TTL of a create without ttlSeconds. Default: 15m.
	DefaultTTL time.Duration
	// MaxTTL is the largest ttlSeconds accepted. Default: 24h.
	MaxTTL time.Duration
	// DefaultExecTimeout is the timeout of an exec without timeoutSeconds. Default: 30s.
	DefaultExecTimeout time.Duration
	// MaxExecTimeout is the largest timeoutSeconds accepted. Default: 1h.
	MaxExecTimeout time.Duration
	// MaxOutputBytes caps stdout and stderr of one command, each. Default: 1 MiB.
	MaxOutputBytes int64
	// MaxUploadBytes is the largest upload request body (413 above). Default: 1 GiB.
	MaxUploadBytes int64
	// MaxUploadEntries is the largest number of entries in one upload
	// archive (413 above). Default: 100000.
	MaxUploadEntries int64
	// MaxJSONBodyBytes is the largest JSON request body (400 above). Default: 1 MiB.
	MaxJSONBodyBytes int64
	// MaxConcurrentExecs bounds the commands running at once in the whole
	// server. Default: 64.
	MaxConcurrentExecs int
	// ExecQueueWait is how long an exec waits for a free slot before the
	// server answers 503 with Retry-After. Default: 2s.
	ExecQueueWait time.Duration

	// DefaultCPU, DefaultMemory and DefaultStorage are the limits (as
	// Kubernetes quantities) of a create that does not set them.
	// Defaults: "1", "1Gi", "2Gi".
	DefaultCPU, DefaultMemory, DefaultStorage string
	// MaxCPU, MaxMemory and MaxStorage are the largest limits a create may
	// ask for (400 above). Defaults: "4", "8Gi", "20Gi".
	MaxCPU, MaxMemory, MaxStorage string
	// Pids is the process limit of every sandbox. Default: 1024.
	Pids int64

	// StreamHeartbeat is the longest silence on an exec stream before a
	// heartbeat comment is sent. Default: 5s.
	StreamHeartbeat time.Duration
	// ReaperInterval is how often expired sandboxes are looked for. Default: 1s.
	ReaperInterval time.Duration
	// StartTimeout bounds building one sandbox's environment. Default: 60s.
	StartTimeout time.Duration
	// StorageCheckInterval is how often the workspace of every running
	// sandbox without an image of its own (see StorageEnforcement) is
	// measured against its ephemeral storage limit; above it every
	// process of the sandbox is killed. Usage can overshoot the
	// limit by what the sandbox writes in one interval. Default: 1s;
	// negative disables the monitor (ephemeralStorage is then reported
	// unenforced for commands and checked on uploads only).
	StorageCheckInterval time.Duration
	// StorageEnforcement chooses how ephemeralStorage is enforced:
	// "auto" (default) gives every new sandbox with a storage limit an
	// ext4 file system of its own, in a sparse image file on a loop
	// device, holding its /workspace, /tmp and uploads in progress, so
	// the kernel refuses writes beyond the limit (bytes and inodes) at no
	// cost while idle; it needs a root server, /dev/loop-control and
	// mkfs.ext4, and falls back to monitoring (StorageCheckInterval)
	// otherwise. "monitor" always monitors. GET /v1/info says which
	// mechanism is in use.
	StorageEnforcement string

	// newDisks returns the per-sandbox file systems to use, or nil for
	// monitoring; New sets it to probeDisks, tests to a double.
	newDisks func(Config) diskquota.Disks
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	var c Config
	c.applyDefaults()
	return c
}

// DefaultDataDir returns $XDG_DATA_HOME/nox, or ~/.local/share/nox, or
// nox-data in the working directory when no home directory is known.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "nox")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "nox")
	}
	return "nox-data"
}

func (c *Config) applyDefaults() {
	setDefault(&c.DataDir, DefaultDataDir())
	setDefault(&c.Isolation, IsolationAuto)
	if len(c.Images) == 0 {
		c.Images = map[string]string{DefaultImage: ""}
	}
	if c.DefaultImageName == "" {
		if _, ok := c.Images[DefaultImage]; ok {
			c.DefaultImageName = DefaultImage
		} else {
			c.DefaultImageName = c.imageNames()[0]
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDefault(&c.Version, "dev")
	setDefault(&c.DefaultTTL, 15*time.Minute)
	setDefault(&c.MaxTTL, 24*time.Hour)
	setDefault(&c.DefaultExecTimeout, 30*time.Second)
	setDefault(&c.MaxExecTimeout, time.Hour)
	setDefault(&c.MaxOutputBytes, 1<<20)
	setDefault(&c.MaxUploadBytes, server.DefaultMaxUploadBytes)
	setDefault(&c.MaxUploadEntries, 100000)
	setDefault(&c.MaxJSONBodyBytes, server.DefaultMaxJSONBodyBytes)
	setDefault(&c.MaxConcurrentExecs, 64)
	setDefault(&c.ExecQueueWait, 2*time.Second)
	setDefault(&c.DefaultCPU, "1")
	setDefault(&c.DefaultMemory, "1Gi")
	setDefault(&c.DefaultStorage, "2Gi")
	setDefault(&c.MaxCPU, "4")
	setDefault(&c.MaxMemory, "8Gi")
	setDefault(&c.MaxStorage, "20Gi")
	setDefault(&c.Pids, 1024)
	setDefault(&c.StreamHeartbeat, server.DefaultStreamHeartbeat)
	setDefault(&c.ReaperInterval, time.Second)
	setDefault(&c.StartTimeout, 60*time.Second)
	setDefault(&c.StorageCheckInterval, time.Second)
	setDefault(&c.StorageEnforcement, StorageEnforcementAuto)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func (c *Config) imageNames() []string {
	names := make([]string, 0, len(c.Images))
	for n := range c.Images {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// limits is the parsed form of the configured resource limits.
type limits struct {
	defCPU, maxCPU         int64 // milli-CPUs
	defMemory, maxMemory   int64 // bytes
	defStorage, maxStorage int64 // bytes
}

// validate checks a defaulted Config and parses its quantities.
func (c *Config) validate() (limits, error) {
	var l limits
	var errs []error
	if !slices.Contains(IsolationTiers(), c.Isolation) {
		errs = append(errs, fmt.Errorf("field Isolation: unknown tier %q", c.Isolation))
	}
	if c.StorageEnforcement != StorageEnforcementAuto && c.StorageEnforcement != StorageEnforcementMonitor {
		errs = append(errs, fmt.Errorf("field StorageEnforcement: %q is neither %q nor %q", c.StorageEnforcement, StorageEnforcementAuto, StorageEnforcementMonitor))
	}
	if _, ok := c.Images[c.DefaultImageName]; !ok {
		errs = append(errs, fmt.Errorf("field DefaultImageName: %q is not in Images", c.DefaultImageName))
	}
	for name, dir := range c.Images {
		if name == "" {
			errs = append(errs, errors.New("field Images: empty image name"))
		}
		if dir == "" {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("field Images: image %q: %q is not an absolute path to a directory", name, dir))
		}
	}
	parse := func(field, s string, f func(string) (int64, error), dst *int64) {
		v, err := f(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", field, err))
		}
		*dst = v
	}
	parse("DefaultCPU", c.DefaultCPU, quantity.ParseCPUMilli, &l.defCPU)
	parse("MaxCPU", c.MaxCPU, quantity.ParseCPUMilli, &l.maxCPU)
	parse("DefaultMemory", c.DefaultMemory, quantity.ParseBytes, &l.defMemory)
	parse("MaxMemory", c.MaxMemory, quantity.ParseBytes, &l.maxMemory)
	parse("DefaultStorage", c.DefaultStorage, quantity.ParseBytes, &l.defStorage)
	parse("MaxStorage", c.MaxStorage, quantity.ParseBytes, &l.maxStorage)
	if l.defCPU > l.maxCPU || l.defMemory > l.maxMemory || l.defStorage > l.maxStorage {
		errs = append(errs, errors.New("a default resource limit exceeds its maximum"))
	}
	if c.DefaultTTL > c.MaxTTL || c.DefaultTTL < time.Second {
		errs = append(errs, errors.New("field DefaultTTL: must be between 1s and MaxTTL"))
	}
	if c.DefaultExecTimeout > c.MaxExecTimeout || c.DefaultExecTimeout < time.Second {
		errs = append(errs, errors.New("field DefaultExecTimeout: must be between 1s and MaxExecTimeout"))
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"MaxOutputBytes", c.MaxOutputBytes}, {"MaxUploadBytes", c.MaxUploadBytes}, {"MaxUploadEntries", c.MaxUploadEntries}, {"MaxJSONBodyBytes", c.MaxJSONBodyBytes}, {"MaxConcurrentExecs", int64(c.MaxConcurrentExecs)}, {"Pids", c.Pids}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("field %s: must not be negative", v.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return l, fmt.Errorf("localbackend: invalid config: %w", err)
	}
	return l, nil
}
