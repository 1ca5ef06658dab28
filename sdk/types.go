package sdk

import (
	"io"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
)

// Extension names a backend may advertise in Info.Extensions.
const (
	// ExtInfo is GET /v1/info itself (Info).
	ExtInfo = api.ExtInfo
	// ExtSandboxesGet is GET /v1/sandboxes/{sessionId} (Get).
	ExtSandboxesGet = api.ExtSandboxesGet
	// ExtSandboxesList is GET /v1/sandboxes (List).
	ExtSandboxesList = api.ExtSandboxesList
	// ExtExecStream is POST /v1/sandboxes/{sessionId}/exec/stream (ExecStream).
	ExtExecStream = api.ExtExecStream
	// ExtExecFlags is the optional flags of ExecResult (TimedOut, StdoutTruncated,
	// StderrTruncated, OOMKilled).
	ExtExecFlags = api.ExtExecFlags
	// ExtAuthBearer means the backend requires a bearer token (WithToken).
	ExtAuthBearer = api.ExtAuthBearer
	// ExtUploadChunked means the backend reads upload bodies sent without a
	// Content-Length (Transfer-Encoding: chunked); see UploadArchive.
	ExtUploadChunked = api.ExtUploadChunked
	// ExtExecStdin is ExecRequest.Stdin.
	ExtExecStdin = api.ExtExecStdin
	// ExtProcesses is Start, Processes, Process and the methods of
	// *Process but Attach.
	ExtProcesses = api.ExtProcesses
	// ExtProcessesTerminal is Terminal and Process.Attach.
	ExtProcessesTerminal = api.ExtProcessesTerminal
	// ExtPorts is Sandbox.Dial, Preview, PortURL and PortClient: a port
	// listening inside the sandbox, reached through the backend.
	ExtPorts = api.ExtPorts
)

// The contract's defaults. The SDK leaves a zero field out of its request,
// so the backend applies its own default, which it advertises in
// Info.Limits (a NoxRunner backend without GET /v1/info applies these).
const (
	// DefaultTTL is the TTL of a sandbox created without one
	// (CreateOptions.TTL zero).
	DefaultTTL = 900 * time.Second
	// DefaultWorkdir is the working directory of commands, and the
	// directory of uploads and downloads, when none is given.
	DefaultWorkdir = api.Workspace
	// DefaultExecTimeout is the timeout of a command run without one
	// (ExecRequest.Timeout zero).
	DefaultExecTimeout = 30 * time.Second
	// DefaultHeartbeat is the heartbeat interval assumed for an exec stream
	// when the backend does not advertise one.
	DefaultHeartbeat = 15 * time.Second
)

// Info describes a backend: its API version, identity, extensions and limits.
type Info struct {
	// APIVersion is the API version served, "v1".
	APIVersion string
	// Backend names the implementation and its version.
	Backend BackendIdentity
	// Extensions lists the extensions the backend implements (Ext...).
	Extensions []string
	// Isolation describes how sandboxes are isolated; nil when not told.
	Isolation *Isolation
	// Limits holds the server-wide limits; zero fields were not advertised.
	Limits Limits
	// Images lists the image names create accepts, when advertised.
	Images []string
	// PlainV1 is true for a backend without GET /v1/info; Supports and
	// ExecStream treat it as implementing no extension. Only Capabilities
	// returns such an Info (Info answers an error matching ErrNotFound).
	PlainV1 bool
}

// Supports reports whether the backend advertises the extension ext.
func (i *Info) Supports(ext string) bool {
	return i != nil && slices.Contains(i.Extensions, ext)
}

// BackendIdentity names a backend implementation.
type BackendIdentity struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Isolation describes how a backend isolates sandboxes.
type Isolation struct {
	// Tier is the mechanism, e.g. "namespaces", "landlock", "none-unsafe".
	Tier string `json:"tier"`
	// Isolated is false when commands run on the host without isolation.
	Isolated bool `json:"isolated"`
	// Notes lists what the tier does not provide on this host.
	Notes []string `json:"notes,omitempty"`
}

// Limits holds the server-wide limits a backend advertises. A zero field was
// not advertised.
type Limits struct {
	DefaultTTL       time.Duration
	MaxTTL           time.Duration
	DefaultTimeout   time.Duration
	MaxTimeout       time.Duration
	MaxOutputBytes   int64
	MaxUploadBytes   int64
	MaxUploadEntries int64
	// MaxDownloadBytes is the most bytes of file contents (at their
	// apparent size) of one download; MaxDownloadEntries its most entries.
	MaxDownloadBytes   int64
	MaxDownloadEntries int64
	// MaxListPageSize is the most entries of one ReadDir page (extension
	// files.ops).
	MaxListPageSize int
	// MaxWatchesPerSandbox is the most Watch streams open at once on one
	// sandbox, MaxWatchDirs the most directories one recursive watch
	// covers and MaxWatchQueue the events one watch holds for a slow
	// client before it reports EventOverflow (extension files.watch).
	MaxWatchesPerSandbox, MaxWatchDirs, MaxWatchQueue int
	MaxConcurrentExecs                                int
	// MaxConcurrentExecsPerSandbox is how many of them run at once in one
	// sandbox.
	MaxConcurrentExecsPerSandbox int
	// MaxProcessesPerSandbox is the most processes (Start) running at once
	// in one sandbox, MaxProcessRecords the most process records one
	// sandbox keeps, ProcessOutputBytes the output kept per process for
	// replay and MaxProcessWait the longest wait of one request of
	// Process.Wait, which asks again until the process ends (extension
	// processes).
	MaxProcessesPerSandbox, MaxProcessRecords int
	ProcessOutputBytes                        int64
	MaxProcessWait                            time.Duration
	// MaxStdinBytes is the largest ExecRequest.Stdin (extension
	// exec.stdin).
	MaxStdinBytes int64
	// MaxPreviewTTL is the longest ttl of Sandbox.Preview (extension
	// ports).
	MaxPreviewTTL time.Duration
	// EgressModes are the egress modes the backend permits,
	// MaxEgressRules the most entries of a policy's Allow and Deny
	// together, and MaxEgressConnections the most outbound connections
	// one sandbox holds open at once (extension network.egress).
	EgressModes                          []EgressMode
	MaxEgressRules, MaxEgressConnections int
	// StreamHeartbeat is the longest gap between events or heartbeats of an
	// exec stream.
	StreamHeartbeat time.Duration
	// StallTimeout is how long the backend waits on a client that reads
	// nothing of a response (or sends nothing of an upload).
	StallTimeout time.Duration
	// MinCPU and MinMemory are the smallest CPU and Memory limits a create
	// may ask for, as quantities.
	MinCPU, MinMemory string
	// HostPidsBudget bounds the sum of the process limits of the running
	// sandboxes; OpenFiles is the open-file limit of each of their
	// processes and HostOpenFilesBudget the bound on running sandboxes
	// times it.
	HostPidsBudget, OpenFiles, HostOpenFilesBudget int64
}

// CreateOptions are the optional parameters of Create. A zero field is not
// sent: the backend's default applies.
type CreateOptions struct {
	// TTL is the inactivity time after which the sandbox expires, in whole
	// seconds (rounded up); given for an existing sandbox, it replaces its
	// TTL. Zero (or negative) leaves it to the backend: a new sandbox gets
	// its default, Info.Limits.DefaultTTL (DefaultTTL by the contract); the
	// nox local backend leaves an existing sandbox's TTL as it is.
	TTL time.Duration
	// Image is the environment image; empty means the backend's default.
	Image string
	// CPU, Memory and Storage are limits as Kubernetes quantities ("500m",
	// "1Gi", "2Gi"); empty means the backend's default.
	CPU     string
	Memory  string
	Storage string
	// Network is the egress policy of a new sandbox (extension
	// ExtNetworkEgress); an existing sandbox keeps its policy (see
	// Sandbox.SetNetwork). Nil is the backend's default, mode EgressNone.
	// A mode other than EgressNone on a backend without the extension
	// fails with ErrUnsupported before any request.
	Network *NetworkPolicy
}

// CreateResult is the answer of Create.
type CreateResult struct {
	// PodName is the backend's name for the environment, stable across
	// creates of one session id.
	PodName string
	// ExpiresAt is when the sandbox expires unless used again; zero when
	// the backend did not say (or said it in a form listed in Unparsed).
	ExpiresAt time.Time
	// Unparsed holds the members of the answer the SDK could not read (a
	// timestamp in no form it knows, or a body that is not JSON, under
	// ""), by member name, with their JSON text; the matching fields are
	// zero. It is nil when everything was read.
	Unparsed map[string]string
}

// TouchResult is the answer of Touch.
type TouchResult struct {
	// ExpiresAt is the new expiry; zero when the backend (a plain v1 one)
	// did not say.
	ExpiresAt time.Time
	// Message is the backend's message, if any.
	Message string
	// Unparsed holds the members of the answer the SDK could not read (a
	// timestamp in no form it knows, or a body that is not JSON, under
	// ""), by member name, with their JSON text; the matching fields are
	// zero. It is nil when everything was read.
	Unparsed map[string]string
}

// ExecRequest is a command to run in a sandbox. A zero optional field is
// not sent: the backend's default applies.
type ExecRequest struct {
	// Cmd is the argv; it is never interpreted by a shell (see Shell). An
	// empty Cmd fails with ErrInvalidArgument before any request is made.
	Cmd []string
	// Workdir is the working directory. Empty leaves it to the backend,
	// whose default is DefaultWorkdir by the contract.
	Workdir string
	// Env is set on top of the backend's clean default environment.
	Env map[string]string
	// Timeout kills the command after this long (exit code 124), in whole
	// seconds (rounded up). Zero (or negative) leaves it to the backend,
	// whose default is Info.Limits.DefaultTimeout (DefaultExecTimeout by
	// the contract).
	Timeout time.Duration
	// Stdin, when not nil, is read to its end before the request is sent
	// and becomes the command's standard input, which is closed after it
	// (extension ExtExecStdin). It may hold at most
	// Info.Limits.MaxStdinBytes (DefaultMaxStdinBytes when not
	// advertised); more fails with ErrTooLarge before any request. Bytes
	// on a backend without ExtExecStdin fail with ErrUnsupported rather
	// than being dropped; an empty Stdin is sent as no stdin at all, so it
	// works everywhere. To feed a command as it runs, use Start with
	// StartOptions.Stdin.
	Stdin io.Reader
}

// ExecResult is the outcome of a command. A non-zero ExitCode is not an
// error of the call.
type ExecResult struct {
	// ExitCode is the command's exit code: 124 timeout, 126 not executable,
	// 127 not found, 128+N killed by signal N.
	ExitCode int
	// Stdout and Stderr are the output as UTF-8, capped by the backend.
	Stdout string
	Stderr string
	// Duration is the wall-clock run time.
	Duration time.Duration
	// TimedOut, StdoutTruncated, StderrTruncated and OOMKilled are the flags
	// of extension exec.flags; false when the backend does not send them,
	// except TimedOut: an answer without the timedOut member from a
	// backend not known to advertise exec.flags (the Client's cached Info
	// does not list it, or was never fetched) has TimedOut derived from
	// the exit code, true for 124, the code the contract gives a timeout.
	// Client.Supports(ctx, ExtExecFlags) tells whether the flags are
	// reported.
	TimedOut        bool
	StdoutTruncated bool
	StderrTruncated bool
	OOMKilled       bool
}

// ShellOptions are the optional parameters of Shell. The zero value runs
// the script with DefaultShell and the backend's defaults.
type ShellOptions struct {
	// Shell is one of Shells; empty means DefaultShell.
	Shell string
	// Workdir, Env, Timeout and Stdin are as in ExecRequest: zero values
	// are not sent, so the backend's defaults apply.
	Workdir string
	Env     map[string]string
	Timeout time.Duration
	Stdin   io.Reader
}

// UploadResult is the answer of an upload. The counts are zero when the
// backend (a plain v1 one) does not report them.
type UploadResult struct {
	// Files is the number of archive entries extracted.
	Files int64
	// Bytes is the number of bytes of file content written.
	Bytes int64
	// Message is the backend's message, if any.
	Message string
}

// SandboxState is the state of a sandbox.
type SandboxState string

// The states of a sandbox.
const (
	// StatePending means the sandbox is being created.
	StatePending SandboxState = "pending"
	// StateReady means commands run at once.
	StateReady SandboxState = "ready"
	// StateStopped means no process runs (after a backend restart, say); the
	// environment is rebuilt on next use.
	StateStopped SandboxState = "stopped"
	// StateTerminating means the sandbox is being deleted.
	StateTerminating SandboxState = "terminating"
)

// SandboxStatus describes one sandbox (extensions sandboxes.get and
// sandboxes.list).
type SandboxStatus struct {
	SessionID    string
	PodName      string
	State        SandboxState
	Image        string
	CreatedAt    time.Time
	LastActiveAt time.Time
	ExpiresAt    time.Time
	TTL          time.Duration
	Limits       ResourceLimits
	// RunningExecs is the number of commands running now.
	RunningExecs int
	// Network is the sandbox's egress policy (extension
	// ExtNetworkEgress); nil when the backend does not report one.
	Network *NetworkPolicy
	// Usage is the sandbox's resource use when it was read (extension
	// ExtSandboxesUsage); nil when the backend does not report it.
	Usage *Usage
	// Unparsed holds the members of the answer the SDK could not read (a
	// timestamp in no form it knows), by member name, with their JSON
	// text; the matching fields are zero. It is nil when everything was
	// read. The JSON form leaves it out.
	Unparsed map[string]string
}

// ResourceLimits are the limits of one sandbox, as Kubernetes quantities.
// Empty or zero fields were not reported; the JSON form leaves them out
// (the fields are declared in its member order).
type ResourceLimits struct {
	CPU              string `json:"cpu,omitempty"`
	EphemeralStorage string `json:"ephemeralStorage,omitempty"`
	Memory           string `json:"memory,omitempty"`
	PIDs             int    `json:"pids,omitempty"`
	// Unenforced names the limits recorded but not enforced on this host.
	Unenforced []string `json:"unenforced,omitempty"`
}

// ListOptions are the optional parameters of List.
type ListOptions struct {
	// PageSize is the number of sandboxes fetched per request; zero means
	// the backend's default.
	PageSize int
	// PageToken starts the listing at a page of an earlier listing.
	PageToken string
}

// WaitOptions are the optional parameters of WaitReady.
type WaitOptions struct {
	// Timeout bounds the wait; zero means 60 seconds. The context may end
	// it sooner.
	Timeout time.Duration
	// Interval is the first delay between polls; zero means 250ms. It
	// doubles up to MaxInterval (zero means 5 seconds).
	Interval    time.Duration
	MaxInterval time.Duration
}

// StreamOptions are the optional parameters of ExecStream.
type StreamOptions struct {
	// Stdout and Stderr receive the output as it arrives.
	Stdout io.Writer
	Stderr io.Writer
	// OnStdout and OnStderr are called with each piece of output, after the
	// writers. The slice must not be kept after the call returns.
	OnStdout func([]byte)
	OnStderr func([]byte)
	// IdleTimeout fails the stream when nothing (not even a heartbeat)
	// arrives for this long. Zero means three times the backend's advertised
	// heartbeat interval (DefaultHeartbeat when not advertised).
	IdleTimeout time.Duration
}
