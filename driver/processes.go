package driver

import (
	"context"
	"io"
	"time"
)

// Processes is the optional interface of a backend that implements the
// processes extension: commands that outlive the request that started
// them, with replayable output, stdin, signals and terminals. The server
// advertises api.ExtProcesses (and api.ExtProcessesTerminal, which it
// implements itself over this interface) only when the Backend implements
// Processes and lists api.ExtProcesses in Info().Extensions.
//
// A process runs until it exits, is killed, reaches its timeout or its
// sandbox ends; no context passed here bounds its life. An unknown
// sandbox or process is ErrNotFound naming it; a start beyond
// Limits.MaxProcessesPerSandbox (or with Limits.MaxProcessRecords records
// kept and none ended) is ErrBusy.
type Processes interface {
	// StartProcess starts a process in sandbox id and returns once it
	// runs (or failed to start: then its record says how it ended, as an
	// exec result would, with exit code 126 or 127).
	StartProcess(ctx context.Context, id string, req ProcessRequest) (Process, error)

	// ListProcesses returns the records of sandbox id, oldest first.
	ListProcesses(ctx context.Context, id string) ([]ProcessInfo, error)

	// Process returns process pid of sandbox id.
	Process(ctx context.Context, id, pid string) (Process, error)
}

// Process is one process of a sandbox, running or ended. Its methods are
// safe for concurrent use, and work on a record whose process is gone
// (ended or lost): Wait and Kill return the record at once, Output
// replays what is kept, Signal does nothing, WriteStdin, CloseStdin and
// Resize return ErrConflict.
type Process interface {
	// Info returns the process's record as it is now.
	Info() ProcessInfo

	// Wait waits until the process has ended and returns its final
	// record; when ctx ends first it returns ctx's error.
	Wait(ctx context.Context) (ProcessInfo, error)

	// Output returns a reader of the process's output from the offset
	// from (0: the oldest output kept).
	Output(from int64) OutputReader

	// WriteStdin copies r to the process's standard input until r ends,
	// ctx ends or the process stops reading for good, and returns the
	// bytes written. Writers of concurrent calls are not interleaved. It
	// is ErrConflict when the process has no standard input (started
	// without ProcessRequest.Stdin or PTY), when it was closed, or when
	// the process ended.
	WriteStdin(ctx context.Context, r io.Reader) (int64, error)

	// CloseStdin closes the process's standard input (the reader gets
	// end-of-file). On a terminal it types the end-of-file character
	// (Ctrl-D) and leaves the terminal open. ErrConflict as WriteStdin.
	CloseStdin() error

	// Signal sends sig to the process's process group. An ended process
	// ignores it.
	Signal(sig Signal) error

	// Resize sets the window size of the process's terminal; ErrConflict
	// when it has none or has ended.
	Resize(size TermSize) error

	// Kill kills the process and every process it started, waits until
	// it has ended and returns its final record.
	Kill(ctx context.Context) (ProcessInfo, error)
}

// OutputReader reads a process's output in order, from an offset.
type OutputReader interface {
	// Next returns the next chunk of output, waiting for it until ctx
	// ends (then it returns ctx's error). It returns io.EOF once the
	// process has ended and every chunk was returned, and ErrNotFound when
	// the sandbox ended meanwhile. When output the reader was due to
	// return was dropped from the buffer, the next chunk has Dropped set.
	Next(ctx context.Context) (OutputChunk, error)
}

// OutputChunk is a piece of a process's output.
type OutputChunk struct {
	// Offset is the offset of Data's first byte: the bytes of output the
	// process produced before it, stdout and stderr together.
	Offset int64
	// Stream is where Data came from (Stdout for a terminal).
	Stream Stream
	// Data holds the bytes. Backends split output on UTF-8 character
	// boundaries where it is valid UTF-8.
	Data []byte
	// Dropped is the number of bytes before Offset that the reader
	// should have returned first but the buffer no longer holds (0: none).
	Dropped int64
}

// ProcessRequest is a validated process start.
type ProcessRequest struct {
	// Argv, Workdir and Env are as in ExecRequest.
	Argv    []string
	Workdir string
	Env     map[string]string
	// Timeout kills the process after this long; zero means none.
	Timeout time.Duration
	// Stdin keeps standard input open for Process.WriteStdin; otherwise it
	// is empty (unless PTY is set).
	Stdin bool
	// PTY, when non-nil, runs the process on a new pseudo-terminal of
	// this size: its standard input, output and error.
	PTY *TermSize
	// Tag is the client's free label.
	Tag string
}

// TermSize is a terminal's window size.
type TermSize struct {
	Rows, Cols uint16
}

// ProcessState is the state of a process record.
type ProcessState string

// The states of a process.
const (
	// ProcessRunning: the process runs.
	ProcessRunning ProcessState = "running"
	// ProcessExited: the process ended; ProcessInfo.ExitCode says how.
	ProcessExited ProcessState = "exited"
	// ProcessLost: the backend restarted while the process ran; its end
	// is unknown.
	ProcessLost ProcessState = "lost"
)

// ProcessInfo is the record of a process.
type ProcessInfo struct {
	// ID is the process id: unique within its sandbox and never reused,
	// from [A-Za-z0-9._-], at most 64 characters.
	ID string
	// Tag is the request's tag.
	Tag string
	// Argv and Workdir are the request's.
	Argv    []string
	Workdir string
	// PTY reports that the process runs on a terminal; Stdin that its
	// standard input is open for WriteStdin.
	PTY, Stdin bool
	// State is running, exited or lost.
	State ProcessState
	// StartedAt is when it started; EndedAt when it ended (zero while it
	// runs, and for a lost process).
	StartedAt, EndedAt time.Time
	// ExitCode is its exit status once exited: 124 on timeout, 126 and
	// 127 when it could not start, 128+N when killed by signal N.
	ExitCode int
	// Signal names the signal that ended it ("KILL", "TERM", ...), or "".
	Signal Signal
	// TimedOut reports that its timeout killed it; OOMKilled that the
	// memory limit did.
	TimedOut, OOMKilled bool
	// OutputBytes is the output produced so far; OutputStart the offset
	// of the oldest byte still kept.
	OutputBytes, OutputStart int64
}

// Signal names a signal, without "SIG".
type Signal string

// The signals a client may send.
const (
	SIGTERM  Signal = "TERM"
	SIGKILL  Signal = "KILL"
	SIGINT   Signal = "INT"
	SIGHUP   Signal = "HUP"
	SIGQUIT  Signal = "QUIT"
	SIGUSR1  Signal = "USR1"
	SIGUSR2  Signal = "USR2"
	SIGSTOP  Signal = "STOP"
	SIGCONT  Signal = "CONT"
	SIGWINCH Signal = "WINCH"
)
