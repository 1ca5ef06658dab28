package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// The requests of the processes extension. Set-up steps (starting the
// process a check needs, waiting for it) accept any success and read the
// answer leniently; each operation has one check that judges its form.

// procRecord is a Process record read leniently.
type procRecord struct {
	ID          string      `json:"id"`
	Tag         string      `json:"tag"`
	Cmd         []string    `json:"cmd"`
	Workdir     string      `json:"workdir"`
	Pty         bool        `json:"pty"`
	Stdin       bool        `json:"stdin"`
	State       string      `json:"state"`
	StartedAt   lenientTime `json:"startedAt"`
	EndedAt     lenientTime `json:"endedAt"`
	ExitCode    *lenientInt `json:"exitCode"`
	Signal      string      `json:"signal"`
	TimedOut    bool        `json:"timedOut"`
	OOMKilled   bool        `json:"oomKilled"`
	OutputBytes lenientInt  `json:"outputBytes"`
	OutputStart lenientInt  `json:"outputStart"`
}

// exit is the record's exit code, or -1 when it has none.
func (p procRecord) exit() int {
	if p.ExitCode == nil {
		return -1
	}
	return int(*p.ExitCode)
}

// ended reports whether the record says the process has ended.
func (p procRecord) ended() bool { return p.State != "" && p.State != "running" }

// procList is a ProcessList read leniently.
type procList struct {
	Items []procRecord `json:"items"`
}

// procCmd is a ProcessRequest running argv.
func procCmd(a ...string) noxapi.ProcessRequest { return noxapi.ProcessRequest{Cmd: a} }

// procSh is a ProcessRequest running `sh -c script`.
func procSh(script string) noxapi.ProcessRequest { return procCmd("sh", "-c", script) }

// procPath is the path of a process operation: op "" is the process
// itself, otherwise wait, output, stdin, signal, resize or terminal. pid
// "" is the sandbox's process collection.
func procPath(id, pid, op string) string {
	p := "/v1/sandboxes/" + url.PathEscape(id) + "/processes"
	if pid != "" {
		p += "/" + url.PathEscape(pid)
	}
	if op != "" {
		p += "/" + op
	}
	return p
}

// startProc starts req in sandbox id and returns the exchange, whatever
// the status (a 503 is retried as Env.send does).
func (e *Env) startProc(ctx context.Context, id string, req noxapi.ProcessRequest) (*Exchange, error) {
	return e.send(ctx, "start a process in "+id, func() (*http.Response, error) { return e.Client.StartProcess(ctx, id, req) })
}

// startProcOK starts req in sandbox id as a set-up step: any success
// will do, read leniently (proc/start judges the answer).
func (e *Env) startProcOK(ctx context.Context, id string, req noxapi.ProcessRequest) (procRecord, *Exchange, error) {
	x, err := e.startProc(ctx, id, req)
	if err != nil {
		return procRecord{}, x, err
	}
	return recordOK(x, "start process")
}

// recordOK reads a successful answer holding a Process leniently.
func recordOK(x *Exchange, what string) (procRecord, *Exchange, error) {
	var p procRecord
	if err := expectSuccess(x); err != nil {
		return p, x, fmt.Errorf("%s: %w", what, err)
	}
	if err := decodeLenient(x, &p); err != nil {
		return p, x, fmt.Errorf("%s: %w", what, err)
	}
	if p.ID == "" {
		return p, x, fmt.Errorf("%s: the answer has no process id\n%s", what, x)
	}
	return p, x, nil
}

// getProc gets process pid of sandbox id.
func (e *Env) getProc(ctx context.Context, id, pid string) (*Exchange, error) {
	return e.send(ctx, "get process "+pid, func() (*http.Response, error) { return e.Client.GetProcess(ctx, id, pid) })
}

// getProcOK gets process pid as a set-up step.
func (e *Env) getProcOK(ctx context.Context, id, pid string) (procRecord, *Exchange, error) {
	x, err := e.getProc(ctx, id, pid)
	if err != nil {
		return procRecord{}, x, err
	}
	return recordOK(x, "get process "+pid)
}

// listProcs lists the processes of sandbox id, only those tagged tag
// unless tag is nil.
func (e *Env) listProcs(ctx context.Context, id string, tag *string) (*Exchange, error) {
	return e.send(ctx, "list processes of "+id, func() (*http.Response, error) {
		return e.Client.ListProcesses(ctx, id, &noxapi.ListProcessesParams{Tag: tag})
	})
}

// waitProc waits for process pid, at most timeout seconds (nil: the
// backend's default).
func (e *Env) waitProc(ctx context.Context, id, pid string, timeout *int32) (*Exchange, error) {
	return e.send(ctx, "wait for process "+pid, func() (*http.Response, error) {
		return e.Client.WaitProcess(ctx, id, pid, &noxapi.WaitProcessParams{TimeoutSeconds: timeout})
	})
}

// waitEnd waits up to limit for process pid to end, asking again while
// the backend answers it still runs, as clients do. It returns the last
// record, which still says running when limit passed first.
func (e *Env) waitEnd(ctx context.Context, id, pid string, limit time.Duration) (procRecord, *Exchange, error) {
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		secs := int32(min(max((left+time.Second-1)/time.Second, 1), 10))
		asked := time.Now()
		x, err := e.waitProc(ctx, id, pid, &secs)
		if err != nil {
			return procRecord{}, x, err
		}
		p, x, err := recordOK(x, "wait for process "+pid)
		if err != nil || p.ended() || time.Now().After(deadline) {
			return p, x, err
		}
		// A backend that answers at once is asked again a little later.
		if err := sleep(ctx, 100*time.Millisecond-time.Since(asked)); err != nil {
			return p, x, err
		}
	}
}

// killProc kills process pid of sandbox id.
func (e *Env) killProc(ctx context.Context, id, pid string) (*Exchange, error) {
	return e.send(ctx, "kill process "+pid, func() (*http.Response, error) { return e.Client.KillProcess(ctx, id, pid) })
}

// signalProc sends sig to process pid of sandbox id.
func (e *Env) signalProc(ctx context.Context, id, pid string, sig noxapi.SignalRequestSignal) (*Exchange, error) {
	return e.send(ctx, "signal process "+pid, func() (*http.Response, error) {
		return e.Client.SignalProcess(ctx, id, pid, noxapi.SignalRequest{Signal: sig})
	})
}

// resizeProc sets the terminal size of process pid of sandbox id.
func (e *Env) resizeProc(ctx context.Context, id, pid string, rows, cols int32) (*Exchange, error) {
	return e.send(ctx, "resize process "+pid, func() (*http.Response, error) {
		return e.Client.ResizeProcess(ctx, id, pid, noxapi.TerminalSize{Rows: rows, Cols: cols})
	})
}

// writeStdin writes body to the standard input of process pid of
// sandbox id, closing it afterwards when closeIt is set.
func (e *Env) writeStdin(ctx context.Context, id, pid string, body []byte, closeIt bool) (*Exchange, error) {
	var p *noxapi.WriteProcessStdinParams
	if closeIt {
		p = &noxapi.WriteProcessStdinParams{Close: &closeIt}
	}
	return e.send(ctx, "write to the stdin of process "+pid, func() (*http.Response, error) {
		return e.Client.WriteProcessStdinWithBody(ctx, id, pid, p, "application/octet-stream", bytes.NewReader(body))
	})
}

// stdinResult is a StdinResult read leniently.
type stdinResult struct {
	Written lenientInt `json:"written"`
	Closed  bool       `json:"closed"`
}

// awaitOutput waits up to limit until process pid's record counts at
// least n bytes of output (the process got as far as printing them), and
// returns the last record.
func (e *Env) awaitOutput(ctx context.Context, id, pid string, n int64, limit time.Duration) (procRecord, error) {
	deadline := time.Now().Add(limit)
	for {
		p, _, err := e.getProcOK(ctx, id, pid)
		if err != nil || int64(p.OutputBytes) >= n || p.ended() {
			return p, err
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("process %s printed %d bytes within %s, want at least %d", pid, p.OutputBytes, limit, n)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return p, err
		}
	}
}

// awaitFile waits up to limit until the file p exists in sandbox id (a
// process got as far as writing it) and returns its content. Processes
// write their files by renaming them into place, so a file that exists
// is complete.
func (e *Env) awaitFile(ctx context.Context, id, p string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	script := "if [ -e " + p + " ]; then echo y; cat " + p + "; fi"
	pause := 20 * time.Millisecond
	for {
		out, err := e.Sh(ctx, id, script)
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(out, "y\n"); ok {
			return rest, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the file %s did not appear within %s", p, limit)
		}
		// Each look is a command: look less often as time passes.
		if err := sleep(ctx, pause); err != nil {
			return "", err
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// errorMessage is the message of x's JSON Error body ("" when none).
func errorMessage(x *Exchange) string {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(x.Body, &body)
	return body.Error
}

// expectErrorNamingAny checks that x is a JSON Error with status code
// whose message names one of names.
func expectErrorNamingAny(x *Exchange, code int, names ...string) error {
	if err := expectError(x, code); err != nil {
		return err
	}
	msg := errorMessage(x)
	for _, n := range names {
		if strings.Contains(msg, n) {
			return nil
		}
	}
	return ownFinding(x, aspectBody, fmt.Sprintf("error %q", msg), "a message naming "+strings.Join(names, " or "),
		fmt.Errorf("the error message %q does not name %s\n%s", msg, strings.Join(names, " or "), x))
}
