package sdk

import (
	"time"
)

// StartOptions are the optional parameters of Start. A zero field is not
// sent: the backend's default applies.
type StartOptions struct {
	// Workdir is the working directory; empty means the backend's,
	// DefaultWorkdir by the contract.
	Workdir string
	// Env is set on top of the backend's default environment.
	Env map[string]string
	// Timeout kills the process and everything it started after this
	// long (exit code 124, ProcessInfo.TimedOut), in whole seconds
	// (rounded up). Zero means none: the process runs until it exits, is
	// killed or the sandbox ends.
	Timeout time.Duration
	// Stdin keeps the process's standard input open for Process.Stdin,
	// WriteStdin and CloseStdin; without it (and without PTY) standard
	// input is empty.
	Stdin bool
	// PTY, when not nil, runs the process on a new pseudo-terminal of this
	// size: its standard input, output and error (the output then has no
	// separate stderr). Attach to it with Process.Attach, or start it with
	// Terminal.
	PTY *TermSize
	// Tag is a free label, returned in the record and usable as a filter
	// of Processes.
	Tag string
}

// TermSize is a terminal's window size, in character cells (1 to 1000
// each).
type TermSize struct {
	Rows, Cols int
}

// DefaultTermSize is the size of a terminal started without one.
var DefaultTermSize = TermSize{Rows: 24, Cols: 80}

// ProcessState is the state of a process record.
type ProcessState string

// The states of a process.
const (
	// ProcessRunning means the process runs.
	ProcessRunning ProcessState = "running"
	// ProcessExited means the process ended; ProcessInfo.ExitCode says
	// how.
	ProcessExited ProcessState = "exited"
	// ProcessLost means the backend restarted while the process ran; its
	// end is unknown.
	ProcessLost ProcessState = "lost"
)

// ProcessInfo is the record of a process, running or ended. Its JSON form
// is the API's Process (see MarshalJSON), as nox --json prints it.
type ProcessInfo struct {
	// ID is the process id, unique within the sandbox and never reused.
	// It is not the operating system's pid.
	ID string
	// Tag is StartOptions.Tag.
	Tag string
	// Cmd is the argv, Workdir the working directory.
	Cmd     []string
	Workdir string
	// PTY reports that the process runs on a terminal; Stdin that its
	// standard input is open for writing.
	PTY   bool
	Stdin bool
	// State is running, exited or lost.
	State ProcessState
	// StartedAt is when it started; EndedAt when it ended (zero while it
	// runs, and for a lost process).
	StartedAt time.Time
	EndedAt   time.Time
	// ExitCode is the exit status once exited: 124 timeout, 126 and 127
	// could not start, 128+N killed by signal N.
	ExitCode int
	// Signal names the signal that ended the process ("KILL", "TERM"),
	// or is empty.
	Signal Signal
	// TimedOut reports that StartOptions.Timeout killed it, OOMKilled that
	// the sandbox's memory limit did.
	TimedOut  bool
	OOMKilled bool
	// OutputBytes is the output produced so far (the offset after its
	// last byte); OutputStart the offset of the oldest byte still kept
	// for replay.
	OutputBytes int64
	OutputStart int64
}

// Running reports whether the process still runs.
func (i ProcessInfo) Running() bool { return i.State == ProcessRunning }

// Signal names a signal without "SIG", as the API does.
type Signal string

// The signals a client may send with Process.Signal.
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

// Signals returns the signals a client may send, in the contract's order.
func Signals() []Signal {
	return []Signal{SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT, SIGWINCH}
}

// ProcessListOptions are the optional parameters of Processes.
type ProcessListOptions struct {
	// Tag, when not empty, lists only the processes started with it.
	Tag string
}

// OutputOptions are the optional parameters of Process.OutputWith.
type OutputOptions struct {
	// From is the offset of the first byte wanted: 0 replays all the
	// output the backend keeps, ProcessInfo.OutputBytes only what comes
	// next.
	From int64
	// NoFollow ends the sequence once the output produced so far was
	// read, instead of when the process ends.
	NoFollow bool
}

// OutputChunk is a piece of a process's output.
type OutputChunk struct {
	// Offset is the offset of Data's first byte: the bytes of output the
	// process produced before it, stdout and stderr together.
	Offset int64
	// Stream is "stdout" or "stderr" (always "stdout" on a terminal).
	Stream string
	// Data holds the bytes; it belongs to the caller.
	Data []byte
	// Dropped is set (with no Data) when output the sequence was due to
	// yield next had already been dropped from the backend's buffer
	// (Limits.ProcessOutputBytes): Dropped bytes before Offset are lost.
	Dropped int64
}

// TerminalOptions are the parameters of Terminal. A zero field means its
// default.
type TerminalOptions struct {
	// Cmd is the argv to run on the terminal; empty means
	// DefaultTerminalCmd, a login shell.
	Cmd []string
	// Size is the terminal's size; zero means DefaultTermSize.
	Size TermSize
	// Env is set on top of the backend's default environment (a terminal
	// process gets TERM from the backend unless Env sets it).
	Env map[string]string
	// Workdir is the working directory; empty means the backend's.
	Workdir string
	// Tag labels the process; empty means "terminal".
	Tag string
}

// DefaultTerminalCmd is the command of a Terminal started without one:
// bash as a login shell where the sandbox has it, else sh.
func DefaultTerminalCmd() []string {
	return []string{"sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash -l; exec sh -l"}
}
