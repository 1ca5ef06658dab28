package conformance

import (
	"context"
	"fmt"

	"github.com/noxrunner/nox/api"
)

// procChecks are the checks of the processes extensions: processes
// (start, list, get, wait, output, stdin, signal, resize, kill) and
// processes.terminal (a process's terminal over a WebSocket), and of
// exec.stdin. Each is skipped when the backend does not advertise its
// extension. The commands they run need sh, sleep, cat, head, tr, stty
// and sha256sum.
func procChecks() []Check {
	proc := func(id string, req Requirement, ops []string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtProcesses, Parallel: true,
			Requirement: req, Operations: ops, Anchor: anchor, Spec: spec, Run: run}
	}
	term := func(id string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtProcessesTerminal, Parallel: true,
			Requirement: Must, Operations: []string{"attachTerminal"}, Extensions: []string{api.ExtProcessesTerminal},
			Anchor: anchor, Spec: spec, Run: run}
	}
	stdin := func(id string, ops []string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtExecStdin, Parallel: true,
			Requirement: Must, Operations: ops, Extensions: []string{api.ExtExecStdin}, Anchor: anchor, Spec: spec, Run: run}
	}
	start, output := []string{"startProcess"}, []string{"streamProcessOutput"}
	byID := []string{"getProcess", "waitProcess", "streamProcessOutput", "writeProcessStdin", "signalProcess", "resizeProcess", "killProcess"}
	return []Check{
		proc("proc/start", Must, start, anchorProcStart,
			"POST .../processes: 201 with the record (an id, cmd, tag, workdir, state running, startedAt, outputBytes 0) at once; env and workdir are used, the workdir defaults to /workspace; ids are unique",
			checkProcStart),
		proc("proc/get", Must, []string{"getProcess"}, anchorProcGet,
			"GET .../processes/{processId}: the record as it is now: running with the output counted so far, then exited with exitCode, endedAt and outputBytes",
			checkProcGet),
		proc("proc/list", Must, []string{"listProcesses"}, anchorProcList,
			"GET .../processes: every record, oldest first, ended ones kept; ?tag lists only the processes started with that tag",
			checkProcList),
		proc("proc/wait", Must, []string{"waitProcess"}, anchorProcWait,
			"GET .../processes/{processId}/wait: answers the ended record (exitCode, endedAt; 127 for a command not found); with timeoutSeconds it answers the running record after that long, not before",
			checkProcWait),
		proc("proc/unknown-process-404", Must, byID, anchorProcNotFound,
			"every operation on a process id the sandbox does not have is a 404 JSON Error naming it",
			checkProcUnknownProcess),
		proc("proc/unknown-sandbox-404", Must, append([]string{"startProcess", "listProcesses"}, byID...), anchorProcNotFound,
			"every processes operation on an unknown sandbox is a 404 JSON Error and creates nothing",
			checkProcUnknownSandbox),
		proc("proc/invalid-request-400", Must, []string{"startProcess", "signalProcess", "resizeProcess", "waitProcess", "streamProcessOutput", "writeProcessStdin", "getProcess"}, anchorProcBad,
			"the processes operations answer malformed requests 400 JSON Error naming the field (empty cmd, pty size, timeoutSeconds, tag, signal, from, Last-Event-ID, processId) and start nothing",
			checkProcInvalid),
		proc("proc/output-replay", Must, output, anchorProcOutput,
			"GET .../output: output events whose id is the offset after the chunk, contiguous from the offset asked (from, or Last-Event-ID, which wins): a client reconnecting anywhere loses and repeats nothing",
			checkProcOutputReplay),
		proc("proc/output-follow", Must, output, anchorProcOutput,
			"GET .../output: output produced after a client attached reaches it; the exit event, with the ended record, comes last and ends the stream",
			checkProcOutputFollow),
		proc("proc/output-end", Must, output, anchorProcOutput,
			"GET .../output?follow=false: the output so far, then an end event, while the process runs; exit once it has ended",
			checkProcOutputEnd),
		{ID: "proc/output-truncated", Level: LevelExtension, Capability: api.ExtProcesses, Parallel: true,
			Requirement: Must, Operations: output, Extensions: []string{api.ExtInfo}, Anchor: anchorProcTruncated,
			Spec: fmt.Sprintf("GET .../output: output beyond Info.limits.processOutputBytes drops the oldest; from 0 a truncated event (outputStart as in the record), then the newest output kept, exact (skipped above %d MiB)", maxTruncatedTest>>20),
			Run:  checkProcOutputTruncated},
		proc("proc/output-binary", Must, output, anchorProcChunk,
			"GET .../output: bytes that are not UTF-8 come as dataBase64, exact; UTF-8 output as data",
			checkProcOutputBinary),
		proc("proc/output-streams", Must, output, anchorProcChunk,
			"GET .../output: chunks are labelled stdout or stderr as the process wrote them",
			checkProcOutputStreams),
		proc("proc/stdin", Must, []string{"writeProcessStdin"}, anchorProcStdin,
			"POST .../stdin: the body reaches a process started with stdin (StdinResult written); close=true gives it end-of-file; writes after the close, to an ended process or to a process without stdin (whose stdin is empty) are 409",
			checkProcStdin),
		proc("proc/signal", Must, []string{"signalProcess"}, anchorProcSignal,
			"POST .../signal: TERM ends sleep with exitCode 143 and signal TERM, INT with 130 and INT; a signal to an ended process leaves its record unchanged",
			checkProcSignal),
		proc("proc/kill", Must, []string{"killProcess"}, anchorProcKill,
			"DELETE .../processes/{processId}: kills the process and the processes it started, answers the final record (exitCode 137, signal KILL), which is kept; killing it again answers it unchanged",
			checkProcKill),
		proc("proc/timeout", Must, start, anchorProcTimeout,
			"POST .../processes: timeoutSeconds ends the process and every process it started with exitCode 124 and timedOut",
			checkProcTimeout),
		proc("proc/survives-disconnect", Must, []string{"startProcess", "streamProcessOutput", "waitProcess"}, anchorProcStart,
			"a process outlives its clients: after its output stream and a wait are dropped it still runs, and a new stream from the offset reached gets the rest and the exit",
			checkProcSurvivesDisconnect),
		proc("proc/pty", Must, start, anchorProcPty,
			"POST .../processes with pty: the process runs on a terminal of that size (tty names a device, test -t 0, 1 and 2 hold, stty size), its output labelled stdout",
			checkProcPty),
		proc("proc/pty-resize", Must, []string{"resizeProcess"}, anchorProcResize,
			"POST .../resize: 204; the terminal takes the new size and the process gets SIGWINCH; a process without a terminal, or ended, is 409",
			checkProcPtyResize),
		{ID: "proc/max-processes-503", Level: LevelExtension, Capability: api.ExtProcesses, Parallel: true,
			Requirement: Must, Operations: start, Extensions: []string{api.ExtInfo}, Anchor: anchorMaxProcs,
			Spec: fmt.Sprintf("POST .../processes: with Info.limits.maxProcessesPerSandbox running, one more is a 503 JSON Error; ended processes do not count (skipped above %d)", maxProcsTest),
			Run:  checkProcMax},
		term("proc/terminal", anchorProcTerminal,
			"GET .../terminal (WebSocket): output as binary messages from offset 0, typed input echoed and read, resize messages change the size, eof ends input; the exit message (with the record) after all output, then close 1000",
			checkProcTerminal),
		term("proc/terminal-errors", anchorProcTerminal,
			"GET .../terminal: a process without a terminal is 409, a request that is not a WebSocket upgrade 426, an unknown process 404 naming it, an unknown sandbox 404: JSON Errors",
			checkProcTerminalErrors),
		term("proc/terminal-hangup", anchorProcTerminal,
			"GET .../terminal?hangup=true: closing the WebSocket sends SIGHUP (exitCode 129, signal HUP); without hangup the process keeps running",
			checkProcTerminalHangup),
		stdin("exec/stdin", []string{"execInSandbox", "execInSandboxStream"}, anchorExecStdin,
			"POST .../exec with stdin: the command reads it, then end-of-file: UTF-8 text, base64 bytes (all 256 values, exact) and 256 KiB; exec/stream too when advertised",
			checkExecStdin),
		stdin("exec/stdin-invalid-400", []string{"execInSandbox"}, anchorExecStdinCodec,
			"POST .../exec: stdin that is not base64 with stdinEncoding base64, and an unknown stdinEncoding, are 400 JSON Errors naming the field",
			checkExecStdinInvalid),
		{ID: "exec/stdin-too-large-400", Level: LevelExtension, Capability: api.ExtExecStdin, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtExecStdin, api.ExtInfo}, Anchor: anchorMaxStdin,
			Spec: fmt.Sprintf("POST .../exec: stdin above Info.limits.maxStdinBytes once decoded is a 400 JSON Error naming stdin; the maximum itself is accepted (skipped above %d MiB)", maxStdinTest>>20),
			Run:  checkExecStdinTooLarge},
	}
}
