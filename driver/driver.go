// Package driver defines the interface a NoxRunner backend implements.
//
// A backend (the local sandbox runtime, a Kubernetes cluster, an in-memory
// test double) implements Backend in plain Go terms: no HTTP, no JSON, no
// generated types. Package server turns any Backend into the complete
// NoxRunner HTTP API of api/openapi.yaml (request validation, defaults,
// auth, body limits, request ids, logs, error mapping, event streams and
// extension advertising), so that every backend behaves the same on the
// wire and none of them repeats that work.
//
// This is the split of the Go Cloud Development Kit's blob package: the
// portable layer (server) is written once over a small driver interface.
//
// # Errors
//
// Methods return errors for which errors.Is reports one of the category
// sentinels below (ErrNotFound, ErrInvalidArgument, ...); the server maps
// each category to its status code and answers {"error": msg} with the
// error's message minus the sentinel's own text. Messages must name the
// field or path they are about and must not reveal host paths. Any other
// error is answered as a 500 without details and logged.
//
// # Adding an operation
//
// A new operation in the contract is a new method here (or on an optional
// interface for an extension), implemented by every backend; the compiler
// finds the backends that lack it.
package driver

import (
	"context"
	"io"
	"time"
)

// Backend is a NoxRunner backend. Every method is safe for concurrent use.
// Session ids reaching a Backend already match api.SessionIDPattern, and
// requests have the contract's defaults applied and its ranges checked
// against the limits Info reports.
type Backend interface {
	// Info describes the backend: its identity, the extensions it
	// implements and its limits. The server calls it once, when it is
	// built; the result must not change afterwards.
	Info() Info

	// Health returns nil when the backend can serve requests.
	Health(ctx context.Context) error

	// Create creates sandbox id, or ensures it when it exists: an existing
	// sandbox keeps its image and limits, takes req.TTL when it is
	// non-zero and counts the call as activity.
	Create(ctx context.Context, id string, req CreateRequest) (Sandbox, error)

	// Get returns one sandbox's status without refreshing its expiry. It
	// is called only when Info().Extensions holds api.ExtSandboxesGet.
	Get(ctx context.Context, id string) (Sandbox, error)

	// List returns up to limit sandboxes ordered by session id, starting
	// after the id after ("" for the first page), and whether more follow.
	// It is called only when Info().Extensions holds api.ExtSandboxesList.
	List(ctx context.Context, after string, limit int) (page []Sandbox, more bool, err error)

	// Delete stops sandbox id, kills its processes and removes its files.
	Delete(ctx context.Context, id string) error

	// Touch sets the sandbox's last activity to now and returns its new
	// expiry.
	Touch(ctx context.Context, id string) (time.Time, error)

	// StartExec admits one command in sandbox id: it checks that the
	// sandbox exists, that the backend has room for another command and
	// that the working directory is usable. Errors found here are answered
	// as JSON errors, before any streamed output. On success the caller
	// must call either Wait or Abort on the returned Execution.
	StartExec(ctx context.Context, id string, req ExecRequest) (Execution, error)

	// Upload extracts a tar archive (gzip-compressed or plain) into the
	// directory dest of sandbox id, all or nothing.
	Upload(ctx context.Context, id, dest string, archive io.Reader) (UploadResult, error)

	// Download returns a gzip-compressed tar archive of the path src of
	// sandbox id, produced while it is read. A missing src is an
	// ErrNotFound naming the path.
	Download(ctx context.Context, id, src string) (io.ReadCloser, error)
}

// Execution is a command admitted by StartExec.
type Execution interface {
	// Wait runs the command to its end and returns how it ended. When out
	// is non-nil it receives the command's output as it is produced (up to
	// the backend's output cap), as valid UTF-8 split on character
	// boundaries; out must not block. A cancelled ctx kills the command.
	Wait(ctx context.Context, out func(Stream, string)) (ExecResult, error)

	// Abort releases a command that will never be waited for.
	Abort()
}

// Stream names an output stream of a command.
type Stream int

// The output streams.
const (
	Stdout Stream = iota + 1
	Stderr
)

// String returns "stdout" or "stderr", the names of the event types of an
// exec stream.
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "unknown"
}

// Info describes a backend.
type Info struct {
	// Name and Version identify the implementation, e.g. "nox-local".
	Name, Version string
	// Extensions lists the optional parts of the contract the backend
	// implements (api.ExtSandboxesGet, api.ExtSandboxesList,
	// api.ExtExecFlags). The server adds the ones it implements itself
	// (api.ExtInfo, api.ExtExecStream, api.ExtAuthBearer).
	Extensions []string
	// Isolation says how sandboxes are isolated; nil when the backend does
	// not say.
	Isolation *Isolation
	// Limits are the backend's defaults and maxima.
	Limits Limits
	// Images are the image names Create accepts ("" when any is).
	Images []string
}

// Isolation is the isolation a backend gives its sandboxes.
type Isolation struct {
	// Tier names the mechanism, e.g. "namespaces" or "none-unsafe".
	Tier string
	// Isolated is false when commands run without isolation; the server
	// then marks every response with the X-Nox-Isolation header.
	Isolated bool
	// Notes say what the tier lacks on this host.
	Notes []string
}

// Limits are a backend's defaults and maxima. The server rejects requests
// above a maximum with a 400 naming the field and fills in defaults, so a
// backend sees only requests within them. Zero fields are not advertised;
// a zero maximum is not checked by the server.
type Limits struct {
	// DefaultTTL and MaxTTL bound a sandbox's time to live.
	DefaultTTL, MaxTTL time.Duration
	// DefaultTimeout and MaxTimeout bound a command's run time.
	DefaultTimeout, MaxTimeout time.Duration
	// MaxOutputBytes caps each of stdout and stderr of one command.
	MaxOutputBytes int64
	// MaxUploadEntries caps the number of entries of one upload.
	MaxUploadEntries int64
	// MaxDownloadBytes caps the bytes of file contents of one download
	// archive, at their apparent size; MaxDownloadEntries caps its
	// entries. Zero: not advertised.
	MaxDownloadBytes, MaxDownloadEntries int64
	// MaxConcurrentExecs is how many commands run at once backend-wide;
	// more wait briefly, then get 503 with Retry-After.
	MaxConcurrentExecs int
	// MaxConcurrentExecsPerSandbox is how many of them run at once in one
	// sandbox (0: not advertised); a sandbox beyond it gets ErrBusy.
	MaxConcurrentExecsPerSandbox int
	// DefaultCPUMilli, MaxCPUMilli, DefaultMemoryBytes, MaxMemoryBytes,
	// DefaultStorageBytes and MaxStorageBytes bound the resource limits of
	// a sandbox (cpuLimit, memoryLimit, ephemeralStorageLimit).
	DefaultCPUMilli, MaxCPUMilli         int64
	DefaultMemoryBytes, MaxMemoryBytes   int64
	DefaultStorageBytes, MaxStorageBytes int64
	// MinCPUMilli and MinMemoryBytes are the smallest cpuLimit and
	// memoryLimit the backend can enforce and still run commands (0: no
	// minimum beyond "greater than zero"); smaller requests are 400.
	MinCPUMilli, MinMemoryBytes int64
	// HostPidsBudget bounds the sum of the process limits of the running
	// sandboxes; OpenFiles is the open-file limit of each process and
	// HostOpenFilesBudget the bound on running sandboxes times it. Beyond
	// a budget a create is ErrBusy. 0: not advertised.
	HostPidsBudget, OpenFiles, HostOpenFilesBudget int64
	// MaxListPageSize is the most entries of one page of a listing
	// (files.ops); the server lowers larger pageSize requests to it and
	// uses the smaller of it and 1000 as the default. 0: no cap beyond
	// the contract's.
	MaxListPageSize int
	// MaxWatchesPerSandbox is the most watches open at once on one
	// sandbox (files.watch); beyond it Watch returns ErrBusy.
	// MaxWatchDirs is the most directories one recursive watch covers;
	// MaxWatchQueue the events one watch holds for a slow client before
	// it reports an overflow. 0: not advertised.
	MaxWatchesPerSandbox, MaxWatchDirs, MaxWatchQueue int
	// MaxProcessesPerSandbox is the most processes (processes extension)
	// running at once in one sandbox; MaxProcessRecords the most records
	// one sandbox keeps; ProcessOutputBytes the output kept per process
	// for replay; MaxProcessWait the longest wait the server grants one
	// waitProcess request. 0: not advertised.
	MaxProcessesPerSandbox, MaxProcessRecords int
	ProcessOutputBytes                        int64
	MaxProcessWait                            time.Duration
	// MaxStdinBytes is the largest stdin of an exec request (exec.stdin);
	// 0: not advertised, and the server's JSON body limit bounds it.
	MaxStdinBytes int64
	// MaxPreviewTTL is the longest time a preview URL of the ports
	// extension works; 0: not advertised, and the server checks no bound.
	MaxPreviewTTL time.Duration
	// EgressModes are the egress modes the backend permits (api.Egress*;
	// network.egress); a policy in another mode is a 400 naming egress.
	// MaxEgressRules caps the entries of a policy's Allow and Deny
	// together; MaxEgressConnections the outbound connections one sandbox
	// holds open at once. Zero and empty: not advertised.
	EgressModes                          []string
	MaxEgressRules, MaxEgressConnections int
}

// CreateRequest is a validated create request.
type CreateRequest struct {
	// TTL is the requested time to live; zero when the request had none
	// (the backend's default for a new sandbox; unchanged for an existing
	// one).
	TTL time.Duration
	// Image is the image to run, or "" for the backend's default.
	Image string
	// CPUMilli, MemoryBytes and StorageBytes are the resource limits,
	// defaults applied.
	CPUMilli, MemoryBytes, StorageBytes int64
	// Network is the egress policy of a new sandbox (network.egress); nil
	// is mode none. An existing sandbox keeps its policy.
	Network *NetworkPolicy
}

// Sandbox is a sandbox's status.
type Sandbox struct {
	// ID is the session id.
	ID string
	// PodName names the sandbox's runtime object (v1's podName).
	PodName string
	// State is one of the api.State* values.
	State string
	// Image is the image it runs.
	Image string
	// CreatedAt, LastActiveAt and ExpiresAt are its lifecycle times.
	CreatedAt, LastActiveAt, ExpiresAt time.Time
	// TTL is its time to live after the last activity.
	TTL time.Duration
	// Limits are its resource limits; nil when not reported.
	Limits *ResourceLimits
	// RunningExecs is the number of commands running in it.
	RunningExecs int
	// Network is its egress policy (network.egress); nil when the backend
	// has no such extension.
	Network *NetworkPolicy
	// Usage is its resource use now (sandboxes.usage); nil when not
	// measured.
	Usage *Usage
}

// Usage is a sandbox's resource use when it was read. Negative fields are
// not measured.
type Usage struct {
	// CPUSeconds is the CPU time its processes used since its environment
	// started.
	CPUSeconds float64
	// MemoryBytes is the memory in use now; Pids the processes and threads
	// running now; StorageBytes what its files take in its storage.
	MemoryBytes, Pids, StorageBytes int64
}

// ResourceLimits are one sandbox's resource limits.
type ResourceLimits struct {
	CPUMilli, MemoryBytes, StorageBytes, Pids int64
	// Unenforced lists limits recorded but not enforced on this host.
	Unenforced []string
}

// ExecRequest is a validated command.
type ExecRequest struct {
	// Argv is the command: at least one element, a non-empty program name
	// and no NUL bytes.
	Argv []string
	// Workdir is an absolute, cleaned path in the sandbox.
	Workdir string
	// Env holds the request's variables (names non-empty without '=' or
	// NUL, values without NUL), to be added to the backend's base
	// environment.
	Env map[string]string
	// Timeout is the command's time limit.
	Timeout time.Duration
	// Stdin, when non-nil, is written to the command's standard input,
	// which is then closed (exec.stdin); nil gives an empty one.
	Stdin []byte
}

// ExecResult is how a command ended.
type ExecResult struct {
	// ExitCode is the exit status: 124 on timeout, 126 not executable,
	// 127 not found, 128+N when killed by signal N.
	ExitCode int
	// Stdout and Stderr are the captured output, up to the output cap.
	Stdout, Stderr string
	// StdoutTruncated and StderrTruncated report output beyond the cap.
	StdoutTruncated, StderrTruncated bool
	// TimedOut reports that the timeout killed the command; OOMKilled that
	// the memory limit did.
	TimedOut, OOMKilled bool
	// Duration is the command's run time.
	Duration time.Duration
}

// UploadResult is what an upload did.
type UploadResult struct {
	// Files is the number of regular files written; Bytes their size.
	Files, Bytes int64
}
