// Package sandbox runs argv commands inside long-lived, isolated per-session
// environments on one Linux host: the runtime under localbackend.
//
// A Manager probes once what the host allows and picks an isolation tier.
// Start builds a sandbox's environment (namespaces, mounts, cgroup) once; Exec
// then runs commands inside it with low latency. Processes a command leaves in
// the background survive until Stop. Every binary that embeds the runtime must
// call MaybeInit first thing in main (and in TestMain), because the runtime
// re-executes the current binary as the sandbox's init.
package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Tier is an isolation mechanism.
type Tier string

// The isolation tiers, strongest first.
const (
	// TierAuto picks the strongest tier the host allows.
	TierAuto Tier = "auto"
	// TierNamespaces: user, mount, pid, net, ipc, uts (and cgroup) namespaces,
	// pivot_root onto a read-only root, seccomp, no capabilities. Commands
	// run as uid/gid 1000, named "sandbox" (home /workspace) by generated
	// /etc/passwd and /etc/group when the root is the host's system dirs.
	TierNamespaces Tier = "namespaces"
	// TierRootNamespaces: the same namespaces without a user namespace,
	// available when the server runs as root on a host without user namespaces.
	TierRootNamespaces Tier = "root-namespaces"
	// TierLandlock: Landlock + seccomp + rlimits, no namespaces; /workspace is
	// a host path rewritten for the command.
	TierLandlock Tier = "landlock"
	// TierNoneUnsafe: commands run on the host with only a process group and
	// rlimits. Used only when the operator asks for it explicitly.
	TierNoneUnsafe Tier = "none-unsafe"
)

// ErrUnavailable reports that the requested tier cannot work on this host.
var ErrUnavailable = errors.New("isolation tier unavailable on this host")

// Options configure a Manager.
type Options struct {
	// Tier to use; TierAuto probes. TierNoneUnsafe must be asked for
	// explicitly: auto never picks it and New fails instead.
	Tier Tier
	// StateDir is a private directory the runtime may use for per-sandbox
	// scratch state (mount points, sockets). Created if missing.
	StateDir string
	// NoCgroups disables cgroups even where they are available: the limits
	// are then reported in Report.Unenforced, and a timed-out command's
	// descendants that left its process tree (double fork) survive until
	// Stop. For hosts where cgroups misbehave, and for tests.
	NoCgroups bool
	// UIDRegistry is the host-wide file in which a root server registers
	// StateDir and gets a range of host uids for its sandboxes that no
	// other server of the host uses (see DefaultUIDRegistry, which an
	// empty value means). Every server of a host must use the same file.
	// Unused when the server is not root (sandboxes then run as its uid).
	UIDRegistry string
}

// DefaultUIDRegistry is the host-wide registry of uid ranges used when
// Options.UIDRegistry is empty.
const DefaultUIDRegistry = "/var/lib/nox/uid-ranges"

// Report says honestly what the chosen tier provides on this host.
type Report struct {
	Tier     Tier
	Isolated bool     // false only for TierNoneUnsafe
	Notes    []string // what this tier lacks here, one sentence each
	// Unenforced lists limit names ("cpu", "memory", "pids",
	// "ephemeralStorage") that cannot be enforced on this host.
	Unenforced []string
	// Cgroup describes the cgroup setup: "v2", "v1", or "" when none.
	Cgroup string
}

// Limits of one sandbox; zero means unlimited.
type Limits struct {
	CPUMilli     int64 // 1000 = one CPU
	MemoryBytes  int64
	Pids         int64
	StorageBytes int64 // workspace (+ /tmp) quota
	TmpBytes     int64 // size of the private /tmp; 0 = runtime default
	OpenFiles    int64 // RLIMIT_NOFILE of every process; 0 = DefaultOpenFiles
}

// DefaultOpenFiles is the open-file limit (RLIMIT_NOFILE) of every process
// of a sandbox whose Limits.OpenFiles is zero.
const DefaultOpenFiles = 65536

// Spec describes the environment of one sandbox.
type Spec struct {
	// Key is an opaque, filesystem-safe name for host-side state (never the
	// raw session id).
	Key string
	// Workspace is the host directory mounted read-write at /workspace.
	Workspace string
	// Tmp, when set, is a host directory mounted read-write at /tmp
	// instead of a private tmpfs (Limits.TmpBytes is then ignored): the
	// caller puts it on the file system of the workspace, so that both
	// share one storage quota. Its contents survive Stop; the caller
	// empties it when it wants a fresh /tmp.
	Tmp string
	// RootFS is a root filesystem directory to use read-only as /; empty
	// means the host's system directories (/usr, /bin, /lib*, /etc, ...).
	RootFS string
	// Hostname inside the sandbox.
	Hostname string
	Limits   Limits
}

// ExecSpec is one command.
type ExecSpec struct {
	Argv    []string
	Dir     string   // absolute path inside the sandbox; must exist
	Env     []string // complete environment, KEY=VALUE
	Timeout time.Duration
	Stdout  io.Writer // receives output as it is produced; must not block long
	Stderr  io.Writer
	// OpenStdin gives the command a pipe as standard input, written with
	// Command.WriteStdin and closed with Command.CloseStdin; otherwise its
	// standard input is empty (/dev/null). Ignored with TTY, whose
	// terminal is always writable.
	OpenStdin bool
	// TTY, when non-nil, runs the command on a new pseudo-terminal of the
	// sandbox of this size (allocated inside the sandbox, so that tty(1)
	// names it there): its standard input, output and error, and its
	// controlling terminal, in a new session. The terminal's output goes
	// to Stdout; Stderr is unused.
	TTY *WinSize
}

// WinSize is a terminal's window size.
type WinSize struct {
	Rows, Cols uint16
}

// ErrNoStdin reports a write to the standard input of a command that has
// none (started without OpenStdin or TTY), or whose standard input was
// closed.
var ErrNoStdin = errors.New("the command has no open standard input")

// ErrNoTTY reports a resize of a command that has no terminal.
var ErrNoTTY = errors.New("the command has no terminal")

// ExecResult is how a command ended.
type ExecResult struct {
	ExitCode int // 124 timeout, 126 not executable, 127 not found, 128+N signal
	// Signal is the signal that ended the command (its exit code is then
	// 128+Signal, or 124 on timeout), or 0 when it exited: it tells a
	// command killed by SIGTERM from one that exited with 143.
	Signal    syscall.Signal
	TimedOut  bool
	OOMKilled bool
	Duration  time.Duration
}

// The runtime's entry points, implemented per platform:
//
//	func MaybeInit()                                      // top of main/TestMain: runs the sandbox init when re-executed as one; otherwise returns at once
//	func New(opts Options) (*Manager, error)              // probes the host (a probe that really mounts inside a user namespace) and picks the tier
//	func (m *Manager) Report() Report
//	func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) // builds the environment once; fast when already running
//	func (m *Manager) StartAsync(ctx context.Context, spec Spec) (*Sandbox, error) // Start that returns once the init runs; Exec waits for its setup
//	func (s *Sandbox) WaitReady(ctx context.Context) error  // waits for the setup started by StartAsync
//	func (s *Sandbox) Ready() bool                         // the setup ended successfully
//	func (m *Manager) Close() error                       // stops every sandbox it started
//	func (s *Sandbox) Exec(ctx context.Context, e ExecSpec) (ExecResult, error) // error only for infrastructure failures, never for exit codes
//	func (s *Sandbox) Start(ctx context.Context, e ExecSpec) (*Command, error) // Exec's first half: starts the command and returns; ctx bounds only the start
//	func (c *Command) Wait(ctx context.Context) (ExecResult, error) // Exec's second half: e.Timeout, the first call's ctx ending or Kill kill the tree (the command is tracked, and ends, without a Wait too)
//	func (c *Command) WriteStdin(ctx context.Context, p []byte) (int, error) // blocks while the pipe is full, until ctx ends; ErrNoStdin
//	func (c *Command) CloseStdin() error                  // end-of-file: closes the pipe; on a terminal types Ctrl-D (VEOF)
//	func (c *Command) Signal(sig syscall.Signal) error    // to the command's process group; nil once it ended
//	func (c *Command) Resize(size WinSize) error          // the terminal's window size (SIGWINCH); ErrNoTTY
//	func (c *Command) Kill()                              // kills the command's tree (as its timeout does); Wait then returns 128+9; returns at once
//	func (s *Sandbox) Alive() bool                        // the environment's processes are running
//	func (s *Sandbox) Stop() error                        // kills every process, removes the cgroup; leaves the workspace alone
//	func (s *Sandbox) HostOwner() (uid, gid int)          // host owner of the sandbox's processes and workspace files
//	func (s *Sandbox) Notes() []string                    // what this sandbox's init could not do
//	func (s *Sandbox) DialPort(ctx context.Context, port int) (net.Conn, error) // a TCP connection to 127.0.0.1:port of the sandbox's network namespace; ErrPortRefused, ErrNoNetwork
//	func (s *Sandbox) Listen(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) // a socket bound (and, for "tcp", listening) at addr in the sandbox's network namespace; ErrNoNetwork, ErrAddrInUse

// ErrNoWorkdir reports that ExecSpec.Dir does not exist inside the sandbox
// (or is not an absolute path).
var ErrNoWorkdir = errors.New("working directory does not exist in the sandbox")

// ErrSetup reports that the sandbox's environment could not be set up
// (Exec after StartAsync); the sandbox is stopped.
var ErrSetup = errors.New("sandbox setup failed")

// ErrStopped reports an Exec on a sandbox that is stopped or whose init
// died; Start builds a fresh one.
var ErrStopped = errors.New("sandbox is not running")

// ErrPortRefused reports a DialPort to a port of the sandbox's loopback on
// which nothing listens (the connection was refused, or not accepted in
// time).
var ErrPortRefused = errors.New("nothing is listening on the port in the sandbox")

// ErrNoNetwork reports a DialPort in a tier without a network namespace
// (landlock, none-unsafe): the sandbox shares the host's network, so its
// loopback is the host's, whose services must not be reachable this way.
var ErrNoNetwork = errors.New("the sandbox has no network namespace of its own")

// ErrAddrInUse reports a Listen on an address of the sandbox's network
// namespace that a process of the sandbox already holds.
var ErrAddrInUse = errors.New("the address is in use in the sandbox")

// Compile-time check of the entry points every platform implements.
var (
	_ func(Options) (*Manager, error)                                           = New
	_ func(*Manager, context.Context, Spec) (*Sandbox, error)                   = (*Manager).Start
	_ func(*Manager, context.Context, Spec) (*Sandbox, error)                   = (*Manager).StartAsync
	_ func(*Sandbox, context.Context) error                                     = (*Sandbox).WaitReady
	_ func(*Sandbox, context.Context, ExecSpec) (ExecResult, error)             = (*Sandbox).Exec
	_ func(*Sandbox, context.Context, ExecSpec) (*Command, error)               = (*Sandbox).Start
	_ func(*Command, context.Context) (ExecResult, error)                       = (*Command).Wait
	_ func(*Command, context.Context, []byte) (int, error)                      = (*Command).WriteStdin
	_ func(*Command) error                                                      = (*Command).CloseStdin
	_ func(*Command, syscall.Signal) error                                      = (*Command).Signal
	_ func(*Command, WinSize) error                                             = (*Command).Resize
	_ func(*Command)                                                            = (*Command).Kill
	_ func(*Sandbox, context.Context, int) (net.Conn, error)                    = (*Sandbox).DialPort
	_ func(*Sandbox, context.Context, string, netip.AddrPort) (*os.File, error) = (*Sandbox).Listen
)
