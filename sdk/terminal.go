package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/gen/noxapi"
)

// maxTerminalMessage bounds one message the backend sends on a terminal
// (output arrives in pieces far smaller).
const maxTerminalMessage = 32 << 20

// Terminal is an interactive connection to a process running on a
// pseudo-terminal, over a WebSocket (extension ExtProcessesTerminal): Read
// returns the terminal's output, Write types on it. It is made by
// Sandbox.Terminal or Process.Attach. Read and Write may be called
// concurrently with each other and with the other methods.
type Terminal struct {
	p    *Process
	conn *websocket.Conn
	out  *io.PipeReader

	done chan struct{} // closed when the connection ended
	mu   sync.Mutex
	exit *ProcessInfo // the exit message's record
	err  error        // why the connection ended without one

	closeOnce sync.Once
	closed    chan struct{}
}

// Terminal starts opts.Cmd (by default a login shell) on a new
// pseudo-terminal of opts.Size and attaches to it, as an ssh session
// does: closing the Terminal, or losing its connection, hangs up the
// terminal (its process group gets SIGHUP). Use Start with
// StartOptions.PTY and Process.Attach for a terminal process that outlives
// its connections. When the attach fails, the process is killed.
func (s *Sandbox) Terminal(ctx context.Context, opts TerminalOptions) (*Terminal, error) {
	const op = "attachTerminal"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if err := s.c.requireExt(ctx, op, ExtProcessesTerminal); err != nil {
		return nil, err
	}
	size := opts.Size
	if size == (TermSize{}) {
		size = DefaultTermSize
	}
	cmd := opts.Cmd
	if len(cmd) == 0 {
		cmd = DefaultTerminalCmd()
	}
	tag := opts.Tag
	if tag == "" {
		tag = "terminal"
	}
	p, err := s.Start(ctx, cmd, StartOptions{Workdir: opts.Workdir, Env: opts.Env, PTY: &size, Tag: tag})
	if err != nil {
		return nil, err
	}
	t, err := p.attach(ctx, 0, true)
	if err != nil {
		_, _ = p.Kill(context.WithoutCancel(ctx))
		return nil, err
	}
	return t, nil
}

// Attach attaches to the terminal of a process started with
// StartOptions.PTY (extension ExtProcessesTerminal), replaying its output
// from offset from (0: all the backend keeps; Record().OutputBytes: only
// what comes next). Closing the Terminal detaches and leaves the process
// running. Several clients may attach at once: all see the output and
// all may type. A process without a terminal is an error matching
// ErrConflict.
//
//meta:operation GET /v1/sandboxes/{sessionId}/processes/{processId}/terminal
func (p *Process) Attach(ctx context.Context, from int64) (*Terminal, error) {
	const op = "attachTerminal"
	if err := checkID(op, p.sb.id); err != nil {
		return nil, err
	}
	if err := checkProcessID(op, p.id); err != nil {
		return nil, err
	}
	if from < 0 {
		return nil, fmt.Errorf("nox: %s: negative offset %d: %w", op, from, ErrInvalidArgument)
	}
	if err := p.sb.c.requireExt(ctx, op, ExtProcessesTerminal); err != nil {
		return nil, err
	}
	return p.attach(ctx, from, false)
}

// attach dials the process's terminal WebSocket.
func (p *Process) attach(ctx context.Context, from int64, hangup bool) (*Terminal, error) {
	const op = "attachTerminal"
	c := p.sb.c
	params := &noxapi.AttachTerminalParams{}
	if from > 0 {
		params.From = &from
	}
	if hangup {
		params.Hangup = &hangup
	}
	req, err := noxapi.NewAttachTerminalRequest(c.baseURL, p.sb.id, p.id, params)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if err := c.editRequest(ctx, req); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	conn, resp, err := websocket.Dial(ctx, req.URL.String(), &websocket.DialOptions{
		HTTPClient: c.httpClient,
		HTTPHeader: req.Header,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			if resp.Body == nil {
				resp.Body = http.NoBody
			}
			return nil, newAPIError(op, resp)
		}
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	conn.SetReadLimit(maxTerminalMessage)
	pr, pw := io.Pipe()
	t := &Terminal{p: p, conn: conn, out: pr, done: make(chan struct{}), closed: make(chan struct{})}
	go t.readLoop(pw)
	return t, nil
}

// terminalMessage is a control message of the terminal protocol (a text
// message), either way.
type terminalMessage struct {
	Type    string          `json:"type"`
	Rows    int             `json:"rows,omitempty"`
	Cols    int             `json:"cols,omitempty"`
	Process json.RawMessage `json:"process,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// ErrTerminalLost is returned (wrapped) by Terminal.Wait, and by Read,
// when the terminal's connection ended before the process did: the
// process goes on, and Process.Attach attaches again.
var ErrTerminalLost = errors.New("terminal connection lost")

// readLoop reads the backend's messages until the connection ends: output
// to pw, control messages to t.
func (t *Terminal) readLoop(pw *io.PipeWriter) {
	const op = "attachTerminal"
	var end error
	for {
		typ, data, err := t.conn.Read(context.Background())
		if err != nil {
			end = t.ended(err)
			break
		}
		if typ == websocket.MessageBinary {
			if _, err := pw.Write(data); err != nil {
				continue // the reader closed: output is discarded until the end
			}
			continue
		}
		var m terminalMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch m.Type {
		case "exit":
			var g noxapi.Process
			if _, err := decodeModel(m.Process, &g); err == nil {
				rec := t.p.remember(fromGenProcess(&g))
				t.mu.Lock()
				t.exit = &rec
				t.mu.Unlock()
			}
		case "error":
			t.mu.Lock()
			t.err = &APIError{StatusCode: http.StatusInternalServerError, Operation: op, Message: m.Error}
			t.mu.Unlock()
		}
	}
	t.mu.Lock()
	if t.exit == nil && t.err == nil {
		t.err = end
	}
	readErr := t.err
	if t.exit != nil {
		readErr = nil
	}
	t.mu.Unlock()
	pw.CloseWithError(readErr) // nil: Read returns io.EOF
	close(t.done)
}

// ended says why the connection ended, from the error of its last read.
func (t *Terminal) ended(err error) error {
	const op = "attachTerminal"
	select {
	case <-t.closed:
		return errTerminalClosed
	default:
	}
	if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure {
		return fmt.Errorf("nox: %s: the backend closed the terminal before the process ended: %w", op, ErrTerminalLost)
	}
	return fmt.Errorf("nox: %s: %w: %w", op, ErrTerminalLost, err)
}

// errTerminalClosed is the error of a Terminal used after Close.
var errTerminalClosed = fmt.Errorf("nox: attachTerminal: use of a closed terminal: %w", net.ErrClosed)

// Process returns the process the terminal is attached to.
func (t *Terminal) Process() *Process { return t.p }

// Read reads the terminal's output. It returns io.EOF once the process
// has ended and all its output was read, and an error wrapping
// ErrTerminalLost when the connection ended first.
func (t *Terminal) Read(b []byte) (int, error) { return t.out.Read(b) }

// maxTerminalWrite bounds one message of typed bytes: a backend bounds
// what it reads of one (nox's server: 1 MiB), so a large paste goes in
// several.
const maxTerminalWrite = 32 << 10

// Write types b on the terminal.
func (t *Terminal) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		part := b[n:min(len(b), n+maxTerminalWrite)]
		if err := t.conn.Write(context.Background(), websocket.MessageBinary, part); err != nil {
			return n, t.writeError(err)
		}
		n += len(part)
	}
	return n, nil
}

// writeError explains a failed write.
func (t *Terminal) writeError(err error) error {
	select {
	case <-t.closed:
		return errTerminalClosed
	case <-t.done:
		if e := t.result(); e != nil {
			return e
		}
		return fmt.Errorf("nox: attachTerminal: the process has ended: %w", io.ErrClosedPipe)
	default:
	}
	return fmt.Errorf("nox: attachTerminal: %w", err)
}

// control sends a control message.
func (t *Terminal) control(m terminalMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := t.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
		return t.writeError(err)
	}
	return nil
}

// Resize sets the terminal's window size; the process gets SIGWINCH.
func (t *Terminal) Resize(rows, cols int) error {
	return t.control(terminalMessage{Type: "resize", Rows: rows, Cols: cols})
}

// CloseWrite types end-of-file (Ctrl-D) on the terminal, which stays
// open.
func (t *Terminal) CloseWrite() error {
	return t.control(terminalMessage{Type: "eof"})
}

// Wait waits until the connection ends and returns the process's final
// record when it ended, or an error wrapping ErrTerminalLost when the
// connection was lost first (the process goes on). The output must be
// read meanwhile (until Read returns io.EOF), as the exit message comes
// after it.
func (t *Terminal) Wait() (ProcessInfo, error) {
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exit != nil {
		return *t.exit, nil
	}
	return ProcessInfo{}, t.err
}

// result returns the connection's error once it ended, nil after an
// exit message.
func (t *Terminal) result() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exit != nil {
		return nil
	}
	return t.err
}

// Close closes the connection. A Terminal made by Sandbox.Terminal hangs
// up its process (SIGHUP); one made by Attach leaves it running. Read and
// Write then fail with an error matching net.ErrClosed.
func (t *Terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		select {
		case <-t.done: // the connection ended already
			close(t.closed)
			_ = t.conn.CloseNow()
			return
		default:
		}
		close(t.closed)
		t.out.CloseWithError(errTerminalClosed) // unblocks the read loop
		err = t.conn.Close(websocket.StatusNormalClosure, "")
		<-t.done
	})
	// A connection the backend closed meanwhile is closed all the same.
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("nox: attachTerminal: closing: %w", err)
	}
	return nil
}
