package localbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
	"github.com/noxrunner/nox/server"
)

// DefaultImage is the name of the image that runs on the host's system
// directories (read-only); it is always available unless Config.Images
// defines it otherwise.
const DefaultImage = "default"

// DefaultMaxDownloadBytes is the default of Config.MaxDownloadBytes: 1 GiB,
// the default upload limit, and the SDK's default extraction cap.
const DefaultMaxDownloadBytes = 1 << 30

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
	// UIDRegistry is the host-wide file in which a root server registers
	// its data directory, like /etc/subuid, and gets a range of 65536
	// host uids for its sandboxes that no other server of the host uses
	// (the range is in the isolation notes of GET /v1/info). Every server
	// of a host must use the same file. Unused when the server is not
	// root. Default: /var/lib/nox/uid-ranges.
	UIDRegistry string
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
	// MaxDownloadBytes is the most bytes of file contents one download
	// archive may hold, counted at the files' apparent sizes (a sparse
	// file counts in full: that is what the client receives). A larger
	// src is answered 413 before anything is sent; a tree that grows past
	// it while being archived is cut off there. Default: 1 GiB.
	MaxDownloadBytes int64
	// MaxDownloadEntries is the largest number of entries (files,
	// directories, links) in one download archive (413 above); it also
	// bounds the cost of measuring src. Default: 100000.
	MaxDownloadEntries int64
	// MaxJSONBodyBytes is the largest JSON request body (400 above). Default: 1 MiB.
	MaxJSONBodyBytes int64
	// MaxConcurrentExecs bounds the commands running at once in the whole
	// server. Default: 64.
	MaxConcurrentExecs int
	// MaxConcurrentExecsPerSandbox bounds the commands (plain and
	// streamed) running at once in one sandbox, so that one tenant cannot
	// take every slot of MaxConcurrentExecs; more wait ExecQueueWait, then
	// get 503 with Retry-After, without holding a server-wide slot.
	// Default: a quarter of MaxConcurrentExecs, at least 4 (16 of 64);
	// values above MaxConcurrentExecs are lowered to it.
	MaxConcurrentExecsPerSandbox int
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
	// MinCPU and MinMemory are the smallest limits a create may ask for
	// (400 below). MinCPU may not be below 10m: the kernel's smallest CPU
	// quota is 1ms per 100ms period, and a smaller one would make every
	// start of the sandbox fail. MinMemory may not be below 1Mi: with less
	// the sandbox's own helper processes are killed (measured on cgroup v1
	// and v2: 4KiB kills the init, 64KiB every command, 1MiB a shell that
	// lists a directory tree, 4MiB python3). Defaults: "10m", "16Mi" (twice
	// what python3 -c 'print(1)' needs).
	MinCPU, MinMemory string
	// Pids is the process limit of every sandbox. Default: 1024.
	Pids int64
	// OpenFiles is the open-file limit (RLIMIT_NOFILE) of every process
	// of a sandbox. The kernel enforces it per process; a sandbox's total
	// is further bounded by its memory limit where the kernel charges
	// open files to the memory cgroup (cgroup v2). Default: 65536.
	OpenFiles int64
	// HostPidsBudget bounds the sum of the Pids limits of the sandboxes
	// whose environments run at once: a create (or a stopped sandbox's
	// restart) beyond it is answered 503 with Retry-After, so that the
	// sandboxes together cannot exhaust the host's process table.
	// Default: half of the smaller of kernel.pid_max and
	// kernel.threads-max (16384 sandbox processes, 16 default sandboxes,
	// with pid_max 32768); negative disables it.
	HostPidsBudget int64
	// HostOpenFilesBudget bounds, likewise, the number of running
	// sandboxes times OpenFiles, which a sandbox with one process per
	// open-file limit can reach. Default: half of fs.file-max (none
	// when the kernel's is unlimited); negative disables it.
	HostOpenFilesBudget int64

	// StreamHeartbeat is the longest silence on an exec stream before a
	// heartbeat comment is sent. Default: 5s.
	StreamHeartbeat time.Duration
	// StallTimeout is the longest a client may leave a response unread or
	// an upload unsent before its connection is cut (each write or read
	// gets this long; progress resets it), so that a stalled client
	// cannot hold a sandbox's transfer, and the sandbox, open. Default:
	// 30s; negative disables it. Must exceed StreamHeartbeat.
	StallTimeout time.Duration
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

	// MaxListPageSize is the most entries of one page of a files API
	// listing (listDir); larger pageSize requests are lowered to it. It
	// bounds the work and memory of one listing. Default: 1000.
	MaxListPageSize int
	// MaxWatchesPerSandbox bounds the file watches (watchPath) open at
	// once on one sandbox; more are answered 503. Each holds an inotify
	// instance, of which a host user has fs.inotify.max_user_instances
	// (128 by default). Default: 8.
	MaxWatchesPerSandbox int
	// MaxProcessesPerSandbox bounds the processes of the processes
	// extension running at once in one sandbox; more are answered 503.
	// They do not take command slots (MaxConcurrentExecs): they are
	// long-lived by design; the sandbox's pids limit bounds what they
	// start. Default: 16.
	MaxProcessesPerSandbox int
	// MaxProcessRecords bounds the process records one sandbox keeps; the
	// oldest ended ones are forgotten first. Default: 256.
	MaxProcessRecords int
	// ProcessOutputBytes is the output kept per process for replay;
	// older output is dropped. Default: 1 MiB.
	ProcessOutputBytes int64
	// MaxProcessWait is the longest one waitProcess request waits.
	// Default: 1 minute.
	MaxProcessWait time.Duration
	// MaxStdinBytes bounds the stdin of one exec request (exec.stdin).
	// Default: half of MaxJSONBodyBytes (base64 grows it by a third).
	MaxStdinBytes int64
	// MaxPreviewTTL is the longest lifetime of a preview URL (ports
	// extension). Default: 24 hours.
	MaxPreviewTTL time.Duration
	// PortDomain turns on host-based routing of the ports extension:
	// {port}-{sessionId}.{PortDomain} reaches that port at "/" (see
	// server.Options.PortDomain). Empty: path-based routing only.
	PortDomain string
	// MaxWatchDirs bounds the directories one recursive watch covers
	// (one inotify watch each); a tree that grows past it ends the watch
	// with an error naming the limit. Default: 8192.
	MaxWatchDirs int
	// HostWatchesBudget bounds the file watches open at once in the whole
	// server: each holds an inotify instance, and the server's host user
	// has fs.inotify.max_user_instances of them, shared with its other
	// processes. More are answered 503. Default: half of that limit;
	// negative disables it.
	HostWatchesBudget int64
	// HostWatchDirsBudget bounds the directories all file watches of the
	// server cover together (inotify watches, of which the user has
	// fs.inotify.max_user_watches); a watch that would pass it is
	// refused with 503, or ends with an error when its tree grows.
	// Default: half of that limit; negative disables it.
	HostWatchDirsBudget int64
	// MaxWatchQueue is how many events one watch holds for a slow client;
	// beyond it events are dropped and an overflow event is sent.
	// Default: 4096.
	MaxWatchQueue int
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

	// EgressModes are the egress modes (api.EgressNone, api.EgressAllowlist,
	// api.EgressOpen) a sandbox's policy may use (extension network.egress,
	// offered in the isolation tiers that give sandboxes a network
	// namespace of their own). It must contain none, the mode of a sandbox
	// created without a policy. Default: all three.
	EgressModes []string
	// MaxEgressRules caps the entries of a policy's allow and deny lists
	// together. Default: 64.
	MaxEgressRules int
	// MaxEgressConnections caps the outbound connections one sandbox
	// holds open at once through its egress gateway; more are refused.
	// Default: 256.
	MaxEgressConnections int
	// EgressOpen are address ranges that policies may reach although they
	// are otherwise never reachable (loopback, private, link-local,
	// metadata, shared ranges and the host's own addresses): an address
	// in one of them is reachable when a policy allows it. Default: none.
	EgressOpen []netip.Prefix
	// EgressPermit, when set, bounds what policies may allow: every allow
	// entry must fall within one of these entries (a name under a "*."
	// wildcard or equal to a name, a prefix inside a prefix), and mode
	// open is refused. Default: no bound.
	EgressPermit []string
	// EgressNetns is the path of a network namespace (/run/netns/NAME,
	// /proc/PID/ns/net) from which the egress gateways' upstream
	// connections and name lookups leave. Default: the server's own.
	EgressNetns string
	// EgressResolver is the DNS server (IP:PORT) the egress gateways
	// resolve names with. Default: the system's resolver (with
	// EgressNetns: the servers of the host's /etc/resolv.conf, reached
	// from that namespace).
	EgressResolver string
	// EgressDial, when set, makes the egress gateways' upstream
	// connections and DNS queries instead of EgressNetns (for programs
	// that embed the backend, and tests).
	EgressDial func(ctx context.Context, network, address string) (net.Conn, error)

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
	setDefault(&c.UIDRegistry, sandbox.DefaultUIDRegistry)
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
	setDefault(&c.MaxDownloadBytes, DefaultMaxDownloadBytes)
	setDefault(&c.MaxDownloadEntries, 100000)
	setDefault(&c.MaxJSONBodyBytes, server.DefaultMaxJSONBodyBytes)
	setDefault(&c.MaxConcurrentExecs, 64)
	setDefault(&c.MaxConcurrentExecsPerSandbox, min(max(c.MaxConcurrentExecs/4, 4), c.MaxConcurrentExecs))
	c.MaxConcurrentExecsPerSandbox = min(c.MaxConcurrentExecsPerSandbox, c.MaxConcurrentExecs)
	setDefault(&c.ExecQueueWait, 2*time.Second)
	setDefault(&c.DefaultCPU, "1")
	setDefault(&c.DefaultMemory, "1Gi")
	setDefault(&c.DefaultStorage, "2Gi")
	setDefault(&c.MaxCPU, "4")
	setDefault(&c.MaxMemory, "8Gi")
	setDefault(&c.MaxStorage, "20Gi")
	setDefault(&c.MinCPU, "10m")
	setDefault(&c.MinMemory, "16Mi")
	setDefault(&c.Pids, 1024)
	setDefault(&c.OpenFiles, sandbox.DefaultOpenFiles)
	if c.HostPidsBudget == 0 || c.HostOpenFilesBudget == 0 {
		host := readHostLimits(procSys)
		setDefault(&c.HostPidsBudget, host.pidsBudget())
		setDefault(&c.HostOpenFilesBudget, host.openFilesBudget())
	}
	setDefault(&c.StreamHeartbeat, server.DefaultStreamHeartbeat)
	setDefault(&c.StallTimeout, server.DefaultStallTimeout)
	setDefault(&c.ReaperInterval, time.Second)
	setDefault(&c.StartTimeout, 60*time.Second)
	setDefault(&c.StorageCheckInterval, time.Second)
	setDefault(&c.MaxListPageSize, 1000)
	setDefault(&c.MaxWatchesPerSandbox, 8)
	setDefault(&c.MaxWatchDirs, 8192)
	setDefault(&c.MaxWatchQueue, 4096)
	setDefault(&c.MaxProcessesPerSandbox, 16)
	setDefault(&c.MaxProcessRecords, 256)
	setDefault(&c.ProcessOutputBytes, 1<<20)
	setDefault(&c.MaxProcessWait, time.Minute)
	setDefault(&c.MaxStdinBytes, c.MaxJSONBodyBytes/2)
	setDefault(&c.MaxPreviewTTL, 24*time.Hour)
	if c.HostWatchesBudget == 0 || c.HostWatchDirsBudget == 0 {
		host := readHostLimits(procSys)
		setDefault(&c.HostWatchesBudget, half(host.inotifyInstances))
		setDefault(&c.HostWatchDirsBudget, half(host.inotifyWatches))
	}
	setDefault(&c.StorageEnforcement, StorageEnforcementAuto)
	if len(c.EgressModes) == 0 {
		c.EgressModes = []string{api.EgressNone, api.EgressAllowlist, api.EgressOpen}
	}
	setDefault(&c.MaxEgressRules, 64)
	setDefault(&c.MaxEgressConnections, 256)
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

// The floors of Config.MinCPU and Config.MinMemory (see there).
const (
	floorCPUMilli    = 10
	floorMemoryBytes = 1 << 20
)

// limits is the parsed form of the configured resource limits.
type limits struct {
	minCPU, minMemory      int64 // milli-CPUs, bytes
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
	if !filepath.IsAbs(c.UIDRegistry) {
		errs = append(errs, fmt.Errorf("field UIDRegistry: %q is not an absolute path", c.UIDRegistry))
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
	parse("MinCPU", c.MinCPU, quantity.ParseCPUMilli, &l.minCPU)
	parse("MinMemory", c.MinMemory, quantity.ParseBytes, &l.minMemory)
	if l.defCPU > l.maxCPU || l.defMemory > l.maxMemory || l.defStorage > l.maxStorage {
		errs = append(errs, errors.New("a default resource limit exceeds its maximum"))
	}
	if l.minCPU < floorCPUMilli {
		errs = append(errs, fmt.Errorf("field MinCPU: %q is below %s, the kernel's smallest CPU quota", c.MinCPU, quantity.FormatCPUMilli(floorCPUMilli)))
	}
	if l.minMemory < floorMemoryBytes {
		errs = append(errs, fmt.Errorf("field MinMemory: %q is below %s, too little for the sandbox's own processes", c.MinMemory, quantity.FormatBytes(floorMemoryBytes)))
	}
	if l.minCPU > l.defCPU || l.minMemory > l.defMemory {
		errs = append(errs, errors.New("a default resource limit is below its minimum"))
	}
	if c.DefaultTTL > c.MaxTTL || c.DefaultTTL < time.Second {
		errs = append(errs, errors.New("field DefaultTTL: must be between 1s and MaxTTL"))
	}
	if c.HostPidsBudget > 0 && c.Pids > c.HostPidsBudget {
		errs = append(errs, fmt.Errorf("field Pids: %d exceeds HostPidsBudget %d: no sandbox could start", c.Pids, c.HostPidsBudget))
	}
	if c.HostOpenFilesBudget > 0 && c.OpenFiles > c.HostOpenFilesBudget {
		errs = append(errs, fmt.Errorf("field OpenFiles: %d exceeds HostOpenFilesBudget %d: no sandbox could start", c.OpenFiles, c.HostOpenFilesBudget))
	}
	if c.StallTimeout > 0 && c.StallTimeout <= c.StreamHeartbeat {
		errs = append(errs, fmt.Errorf("field StallTimeout: %s must exceed StreamHeartbeat %s (an idle exec stream writes only heartbeats)", c.StallTimeout, c.StreamHeartbeat))
	}
	if c.MaxPreviewTTL < 0 {
		errs = append(errs, errors.New("field MaxPreviewTTL: must not be negative"))
	}
	if c.DefaultExecTimeout > c.MaxExecTimeout || c.DefaultExecTimeout < time.Second {
		errs = append(errs, errors.New("field DefaultExecTimeout: must be between 1s and MaxExecTimeout"))
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"MaxOutputBytes", c.MaxOutputBytes}, {"MaxUploadBytes", c.MaxUploadBytes}, {"MaxUploadEntries", c.MaxUploadEntries}, {"MaxDownloadBytes", c.MaxDownloadBytes}, {"MaxDownloadEntries", c.MaxDownloadEntries}, {"MaxJSONBodyBytes", c.MaxJSONBodyBytes}, {"MaxConcurrentExecs", int64(c.MaxConcurrentExecs)}, {"MaxConcurrentExecsPerSandbox", int64(c.MaxConcurrentExecsPerSandbox)}, {"Pids", c.Pids}, {"OpenFiles", c.OpenFiles}, {"MaxListPageSize", int64(c.MaxListPageSize)}, {"MaxWatchesPerSandbox", int64(c.MaxWatchesPerSandbox)}, {"MaxWatchDirs", int64(c.MaxWatchDirs)}, {"MaxWatchQueue", int64(c.MaxWatchQueue)}, {"MaxProcessesPerSandbox", int64(c.MaxProcessesPerSandbox)}, {"MaxProcessRecords", int64(c.MaxProcessRecords)}, {"ProcessOutputBytes", c.ProcessOutputBytes}, {"MaxStdinBytes", c.MaxStdinBytes}, {"MaxEgressRules", int64(c.MaxEgressRules)}, {"MaxEgressConnections", int64(c.MaxEgressConnections)}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("field %s: must not be negative", v.name))
		}
	}
	errs = append(errs, c.validateEgress()...)
	if err := errors.Join(errs...); err != nil {
		return l, fmt.Errorf("localbackend: invalid config: %w", err)
	}
	return l, nil
}
