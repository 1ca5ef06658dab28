package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// termMsg is a message the server sent on a terminal's WebSocket.
type termMsg struct {
	// text: a text (control) message; otherwise binary (output).
	text bool
	data []byte
}

// termControl is a control message of the server, read leniently.
type termControl struct {
	Type    string          `json:"type"`
	Process json.RawMessage `json:"process"`
	Error   string          `json:"error"`
}

// termConn is a client's WebSocket attached to a process's terminal. The
// messages are read as they come; the check's goroutine collects them.
type termConn struct {
	conn *websocket.Conn
	msgs chan termMsg
	// err is why reading ended (a close frame's status inside); read only
	// once msgs is closed.
	err error
	// ended is set when the check found msgs closed.
	ended bool
	// out holds the output so far; controls the control messages, raw;
	// outAt the length of out when each control message came.
	out      []byte
	controls [][]byte
	outAt    []int
}

// dialTerminal opens a WebSocket to the terminal of process pid of
// sandbox id, with query q. The handshake's answer is recorded and
// validated like every other; a refused handshake returns the exchange
// and a nil connection, for the caller to judge.
func (e *Env) dialTerminal(ctx context.Context, id, pid string, q url.Values) (*termConn, *Exchange, error) {
	path := procPath(id, pid, "terminal")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	u := strings.TrimRight(e.BaseURL, "/") + path
	h := http.Header{}
	if e.Token != "" {
		h.Set("Authorization", "Bearer "+e.Token)
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.cfg.HTTPClient, HTTPHeader: h})
	x := &Exchange{Method: http.MethodGet, URL: strings.TrimRight(e.basePath, "/") + path, ReqHeader: h.Clone()}
	x.ReqHeader.Set("Upgrade", "websocket")
	if resp == nil {
		x.Err = err
		e.record(nil, x)
		return nil, x, transportError(ctx, "attach to the terminal of process "+pid, err)
	}
	x.Status, x.Header = resp.StatusCode, resp.Header.Clone()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
		body, _ = io.ReadAll(resp.Body)
		x.Body = body
	}
	if req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, u, nil); rerr == nil {
		x.op, x.complaints = e.run.contract.validateResponse(ctx, req, e.basePath, x.Status, x.Header, body)
		x.Operation = x.op.id
	}
	e.record(nil, x)
	if err != nil {
		return nil, x, nil
	}
	c.SetReadLimit(16 << 20)
	t := &termConn{conn: c, msgs: make(chan termMsg, 1024)}
	go t.read(ctx)
	return t, x, nil
}

// read receives messages until the connection ends.
func (t *termConn) read(ctx context.Context) {
	defer close(t.msgs)
	for {
		typ, b, err := t.conn.Read(ctx)
		if err != nil {
			t.err = err
			return
		}
		t.msgs <- termMsg{text: typ == websocket.MessageText, data: b}
	}
}

// await collects messages until cond holds (true), the connection ends
// or d passes (false).
func (t *termConn) await(ctx context.Context, d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !cond() {
		select {
		case m, ok := <-t.msgs:
			if !ok {
				t.ended = true
				return cond()
			}
			if m.text {
				t.controls = append(t.controls, m.data)
				t.outAt = append(t.outAt, len(t.out))
			} else {
				t.out = append(t.out, m.data...)
			}
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// awaitOutput collects messages until the output holds s (line ends
// read as "\n").
func (t *termConn) awaitOutput(ctx context.Context, d time.Duration, s string) bool {
	return t.await(ctx, d, func() bool { return strings.Contains(crlf(string(t.out)), s) })
}

// send writes a message: text (a control message) or binary (input).
func (t *termConn) send(ctx context.Context, text bool, b []byte) error {
	typ := websocket.MessageBinary
	if text {
		typ = websocket.MessageText
	}
	if err := t.conn.Write(ctx, typ, b); err != nil {
		return fmt.Errorf("write to the terminal's WebSocket: %w", err)
	}
	return nil
}

// close closes the WebSocket normally and drains it.
func (t *termConn) close() {
	_ = t.conn.Close(websocket.StatusNormalClosure, "")
	for range t.msgs { //nolint:revive // drain so the reader ends
	}
}

// control returns the first control message of type typ, decoded, and
// the output length when it came; ok is false when none came.
func (t *termConn) control(typ string) (termControl, int, bool) {
	for i, raw := range t.controls {
		var c termControl
		if json.Unmarshal(raw, &c) == nil && c.Type == typ {
			return c, t.outAt[i], true
		}
	}
	return termControl{}, 0, false
}

// transcript shows what the WebSocket carried, for messages.
func (t *termConn) transcript() string {
	var b strings.Builder
	fmt.Fprintf(&b, "output %s", clip(strconv.Quote(string(t.out)), 400))
	for _, c := range t.controls {
		fmt.Fprintf(&b, "\ncontrol %s", clip(string(c), 300))
	}
	if t.ended {
		fmt.Fprintf(&b, "\nended: %v (close status %d)", t.err, websocket.CloseStatus(t.err))
	}
	return b.String()
}

// resizeMessage is the client's resize control message.
func resizeMessage(rows, cols int) []byte {
	return []byte(fmt.Sprintf(`{"type":"resize","rows":%d,"cols":%d}`, rows, cols))
}

// hasText reports whether out holds s with terminal line ends read as
// "\n".
func hasText(out []byte, s string) bool { return bytes.Contains([]byte(crlf(string(out))), []byte(s)) }
