package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// termClient is a WebSocket attached to a terminal, its messages read as
// they come (so that pings are answered).
type termClient struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan termMsg
	// pending is the output read by waitOutput after its last match.
	pending string
}

// termMsg is one message received, or the error that ended the reading.
type termMsg struct {
	typ  websocket.MessageType
	data string
	err  error
}

// dialTerminal attaches to process pid; hdr are extra handshake headers.
func dialTerminal(t *testing.T, base, pid, query string, hdr http.Header) (*termClient, *http.Response, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/sandboxes/a/processes/" + pid + "/terminal" + query
	conn, resp, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	c := &termClient{t: t, conn: conn, msgs: make(chan termMsg, 64)}
	t.Cleanup(func() { _ = conn.CloseNow() })
	go func() {
		defer close(c.msgs)
		for {
			typ, data, err := conn.Read(context.Background())
			c.msgs <- termMsg{typ, string(data), err}
			if err != nil {
				return
			}
		}
	}()
	return c, resp, nil
}

// mustDial attaches to process pid or fails.
func mustDial(t *testing.T, base, pid, query string, hdr http.Header) *termClient {
	t.Helper()
	c, resp, err := dialTerminal(t, base, pid, query, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	return c
}

// next returns the next message.
func (c *termClient) next() termMsg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatal("the reading ended")
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message within 5s")
	}
	return termMsg{}
}

// expectOutput reads binary messages until they make want.
func (c *termClient) expectOutput(want string) {
	c.t.Helper()
	var got string
	for len(got) < len(want) {
		m := c.next()
		if m.err != nil || m.typ != websocket.MessageBinary {
			c.t.Fatalf("got %q, then %+v; want %q", got, m, want)
		}
		got += m.data
	}
	if got != want {
		c.t.Fatalf("output %q, want %q", got, want)
	}
}

// expectControl reads a text message of type typ and returns it.
func (c *termClient) expectControl(typ string) map[string]json.RawMessage {
	c.t.Helper()
	m := c.next()
	var v map[string]json.RawMessage
	if m.err != nil || m.typ != websocket.MessageText || json.Unmarshal([]byte(m.data), &v) != nil || string(v["type"]) != `"`+typ+`"` {
		c.t.Fatalf("message %+v, want a %s control message", m, typ)
	}
	return v
}

// expectClose reads the close with code.
func (c *termClient) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	if m := c.next(); websocket.CloseStatus(m.err) != code {
		c.t.Fatalf("message %+v, want a close with %d", m, code)
	}
}

// send writes a message.
func (c *termClient) send(typ websocket.MessageType, data string) {
	c.t.Helper()
	if err := c.conn.Write(context.Background(), typ, []byte(data)); err != nil {
		c.t.Fatal(err)
	}
}

// startTerminal starts process 1 with a pty.
func startTerminal(t *testing.T, e *env, d *procDouble) *fakeProc {
	t.Helper()
	return startFake(t, e, d, map[string]any{"cmd": []string{"sh"}, "pty": map[string]any{"rows": 24, "cols": 80}})
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{StreamHeartbeat: 50 * time.Millisecond}, nil)
	p := startTerminal(t, e, d)
	p.emit(driver.Stdout, "prompt$ ")

	c := mustDial(t, e.url, "1", "", nil)
	c.expectOutput("prompt$ ")
	c.send(websocket.MessageBinary, "ls\n")
	c.expectOutput("ls\n") // the terminal's echo
	if got := p.typed(); got != "ls\n" {
		t.Errorf("typed %q", got)
	}
	c.send(websocket.MessageText, `{"type":"resize","rows":40,"cols":100}`)
	c.send(websocket.MessageText, `{"type":"from-the-future"}`) // ignored
	c.send(websocket.MessageBinary, "x")
	c.send(websocket.MessageText, `{"type":"eof"}`)
	p.waitFor(t, "resize and eof", func() bool { return len(p.sizes) == 1 && p.eofs == 1 })
	if got := p.resized(); !reflect.DeepEqual(got, []driver.TermSize{{Rows: 40, Cols: 100}}) {
		t.Errorf("sizes %v", got)
	}
	c.expectOutput("x")
	if got := p.typed(); got != "ls\nx" {
		t.Errorf("typed %q (eof must come after the bytes typed before it)", got)
	}

	// A second client attaches from an offset; both see the exit.
	c2 := mustDial(t, e.url, "1", "?from=7", nil)
	c2.expectOutput(" ls\nx")
	p.emit(driver.Stdout, "bye\n")
	p.exit(0, "")
	for _, c := range []*termClient{c, c2} {
		c.expectOutput("bye\n")
		v := c.expectControl("exit")
		var rec noxapi.Process
		if err := json.Unmarshal(v["process"], &rec); err != nil || rec.State != noxapi.Exited || *rec.ExitCode != 0 || rec.ID != "1" {
			t.Errorf("exit %s", v["process"])
		}
		c.expectClose(websocket.StatusNormalClosure)
	}
	if got := p.received(); len(got) != 0 {
		t.Errorf("signals %v without hangup", got)
	}
}

// hangup=true: the process group gets SIGHUP when the client goes; by
// default the process runs on.
func TestTerminalHangup(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startTerminal(t, e, d)
	ended := func(n int) func() bool { // n terminal requests logged: handlers returned
		return func() bool { return strings.Count(e.logs.String(), `/processes/1/terminal"`) >= n }
	}
	c := mustDial(t, e.url, "1", "", nil)
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	p.waitFor(t, "the session's end", ended(1))
	if in := p.Info(); in.State != driver.ProcessRunning || len(p.received()) != 0 {
		t.Fatalf("after a client left: %+v, signals %v", in, p.received())
	}
	c = mustDial(t, e.url, "1", "?hangup=true", nil)
	_ = c.conn.CloseNow() // the connection drops
	p.waitFor(t, "SIGHUP", func() bool { return slices.Equal(p.signals, []driver.Signal{driver.SIGHUP}) })
}

// Errors before the upgrade are JSON; invalid control messages end the
// session with an error message and a close with 1008.
func TestTerminalErrors(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	startTerminal(t, e, d)
	startFake(t, e, d, nil) // 2: no terminal

	resp, body := e.do("GET", "/v1/sandboxes/a/processes/1/terminal", nil)
	expectError(t, resp, body, 426, "WebSocket")
	if resp.Header.Get("Upgrade") != "websocket" {
		t.Errorf("426 without Upgrade: websocket")
	}
	for _, c := range []struct {
		pid, query string
		hdr        http.Header
		status     int
		want       string
	}{
		{"2", "", nil, 409, "no terminal"},
		{"9", "", nil, 404, `process "9" not found`},
		{"-x", "", nil, 400, "processId"},
		{"1", "?from=-1", nil, 400, "from"},
		{"1", "", http.Header{"Origin": {"http://evil.example"}}, 403, "cross-origin"},
	} {
		_, resp, err := dialTerminal(t, e.url, c.pid, c.query, c.hdr)
		if err == nil || resp == nil {
			t.Fatalf("%s%s: dial %v", c.pid, c.query, err)
		}
		body, _ := io.ReadAll(resp.Body)
		expectError(t, resp, body, c.status, c.want)
	}
	mustDial(t, e.url, "1", "", http.Header{"Origin": {e.url}}).conn.CloseNow()

	for _, m := range []string{`not json`, `{"type":"resize","rows":0,"cols":80}`, `{"type":"resize"}`} {
		c := mustDial(t, e.url, "1", "", nil)
		c.send(websocket.MessageText, m)
		v := c.expectControl("error")
		t.Logf("%s: %s", m, v["error"])
		c.expectClose(websocket.StatusPolicyViolation)
	}

	d.double.mu.Lock()
	d.double.err = errors.New("disk on fire")
	d.double.mu.Unlock()
	_, resp, err := dialTerminal(t, e.url, "1", "", nil)
	if err == nil || resp == nil || resp.StatusCode != 500 {
		t.Fatalf("backend failure: %v %v", err, resp)
	}
}

// The sandbox ending during a session: an error message, then a close.
func TestTerminalSandboxEnds(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startTerminal(t, e, d)
	c := mustDial(t, e.url, "1", "", nil)
	p.waitFor(t, "a reader", func() bool { return p.readers == 1 })
	p.endSandbox()
	if v := c.expectControl("error"); !strings.Contains(string(v["error"]), "not found") {
		t.Errorf("error %s", v["error"])
	}
	c.expectClose(websocket.StatusInternalError)
}

// The token may come as ?access_token= on attachTerminal only; with a
// token, pages of other origins may attach.
func TestTerminalAuth(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{Token: "s3cret"}, nil)
	startTerminal(t, e, d)
	mustDial(t, e.url, "1", "?access_token=s3cret", http.Header{"Origin": {"http://ui.example"}}).conn.CloseNow()
	mustDial(t, e.url, "1", "", http.Header{"Authorization": {"Bearer s3cret"}}).conn.CloseNow()
	for _, c := range []struct {
		query string
		hdr   http.Header
	}{
		{"", nil},
		{"?access_token=wrong", nil},
		{"?access_token=s3cret", http.Header{"Authorization": {"Bearer wrong"}}}, // the header wins
	} {
		_, resp, err := dialTerminal(t, e.url, "1", c.query, c.hdr)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("%s %v: dial %v %v, want 401", c.query, c.hdr, err, resp)
		}
	}
	e.token = ""
	for _, p := range []string{"/v1/info?access_token=s3cret", "/v1/sandboxes/a/processes/1?access_token=s3cret", "/v1/sandboxes/a/processes/1/output?access_token=s3cret"} {
		resp, body := e.do("GET", p, nil)
		expectError(t, resp, body, 401, "bearer token")
	}
}

// A terminal idle longer than the stall timeout, or than a server's
// ReadTimeout and WriteTimeout, still carries output and input: the
// hijacked connection keeps no deadline of the HTTP exchange.
func TestTerminalIdle(t *testing.T) {
	t.Parallel()
	for _, stall := range []time.Duration{300 * time.Millisecond, -1} {
		d := newProcDouble()
		h, err := server.New(d, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
		srv.Start()
		defer srv.Close()
		e := &env{t: t, d: d.double, url: srv.URL}
		p := startTerminal(t, e, d)
		c := mustDial(t, srv.URL, "1", "", nil)
		time.Sleep(time.Second)
		p.emit(driver.Stdout, "late")
		c.expectOutput("late")
		c.send(websocket.MessageBinary, "typed")
		c.expectOutput("typed")
	}
}

// A paste of up to 1 MiB arrives in one message (the library's default
// read limit, 32 KiB, would close the session on it).
func TestTerminalLargePaste(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startTerminal(t, e, d)
	c := mustDial(t, e.url, "1", "", nil)
	paste := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	c.send(websocket.MessageBinary, paste)
	c.expectOutput(paste) // the terminal's echo
	if p.typed() != paste {
		t.Fatal("the paste arrived changed")
	}
}
