package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// The bounds of a terminal session.
const (
	// termReadLimit is the largest message a client may send (a paste).
	termReadLimit = 1 << 20
	// termQueue is how many client messages of stdin wait while the
	// process does not read; then the session stops reading the socket.
	termQueue = 16
	// termCloseReason bounds a close frame's reason (125 bytes in all).
	termCloseReason = 120
)

// termSession is one WebSocket attached to a process's terminal, framed
// as the contract's description of attachTerminal says.
type termSession struct {
	h    *handlers
	p    driver.Process
	conn *websocket.Conn
	// end is done once the session's last word (exit or error, then a
	// close) was said.
	end sync.Once
}

// termControl is a control message (a text message), either way.
type termControl struct {
	Type    string          `json:"type"`
	Rows    *int32          `json:"rows,omitempty"`
	Cols    *int32          `json:"cols,omitempty"`
	Process *noxapi.Process `json:"process,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// termInput is what a client typed: bytes, or end-of-file.
type termInput struct {
	data []byte
	eof  bool
}

// run serves the session until the WebSocket closes: output from the
// offset from to the client, the client's messages to the process, and
// pings every heartbeat. Then, with hangup, the process group gets
// SIGHUP; otherwise the process runs on.
func (s *termSession) run(ctx context.Context, from int64, hangup bool) {
	ctx, cancel := context.WithCancel(ctx)
	keys := make(chan termInput, termQueue)
	var wg sync.WaitGroup
	wg.Go(func() { s.output(ctx, from) })
	wg.Go(func() { s.typeKeys(ctx, keys) })
	wg.Go(func() { s.ping(ctx) })
	s.input(ctx, keys)
	cancel()
	wg.Wait()
	_ = s.conn.CloseNow()
	if hangup {
		_ = s.p.Signal(driver.SIGHUP)
	}
}

// output sends the process's output as binary messages, then exit with
// the final record (and a normal close) once it has ended, or error.
func (s *termSession) output(ctx context.Context, from int64) {
	var err error
	defer func() {
		if err != nil && ctx.Err() == nil {
			s.fail(ctx, websocket.StatusInternalError, s.h.errorFor(ctx, err).msg)
		}
	}()
	defer recoverTo(ctx, s.h.log, &err) // runs first
	r := s.p.Output(from)
	for {
		var c driver.OutputChunk
		if c, err = r.Next(ctx); err != nil {
			break
		}
		if werr := s.write(ctx, websocket.MessageBinary, c.Data); werr != nil {
			return // the connection is gone: the reader sees it too
		}
	}
	if err != io.EOF {
		return
	}
	var in driver.ProcessInfo
	if in, err = s.p.Wait(ctx); err != nil {
		return
	}
	rec := processRecord(in)
	s.end.Do(func() {
		if s.writeControl(ctx, termControl{Type: "exit", Process: &rec}) == nil {
			_ = s.conn.Close(websocket.StatusNormalClosure, "")
		}
	})
}

// input reads the client's messages until the WebSocket closes: binary
// ones are queued for typeKeys, text ones are control messages. It
// closes keys when it returns.
func (s *termSession) input(ctx context.Context, keys chan<- termInput) {
	defer close(keys)
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		in := termInput{data: data}
		if typ == websocket.MessageText {
			var ok bool
			if in, ok = s.control(ctx, data); !ok {
				continue
			}
		}
		select {
		case keys <- in:
		case <-ctx.Done():
			return
		}
	}
}

// control handles a client's control message: a resize is applied at
// once, end-of-file is returned to be queued behind the bytes typed
// before it. Unknown types are ignored; a malformed message ends the
// session with an error.
func (s *termSession) control(ctx context.Context, data []byte) (termInput, bool) {
	var m termControl
	if err := json.Unmarshal(data, &m); err != nil {
		s.fail(ctx, websocket.StatusPolicyViolation, "control message: not a JSON object with a type")
		return termInput{}, false
	}
	switch m.Type {
	case "eof":
		return termInput{eof: true}, true
	case "resize":
		if m.Rows == nil || m.Cols == nil {
			s.fail(ctx, websocket.StatusPolicyViolation, "resize: rows and cols are required")
			return termInput{}, false
		}
		size, err := termSize("resize", noxapi.TerminalSize{Rows: *m.Rows, Cols: *m.Cols})
		if err == nil {
			err = s.p.Resize(size)
		}
		s.check(ctx, err)
	}
	return termInput{}, false
}

// typeKeys writes the queued input to the process, in order.
func (s *termSession) typeKeys(ctx context.Context, keys <-chan termInput) {
	for in := range keys {
		var err error
		if in.eof {
			err = s.p.CloseStdin()
		} else {
			_, err = s.p.WriteStdin(ctx, bytes.NewReader(in.data))
		}
		if ctx.Err() != nil {
			return
		}
		s.check(ctx, err)
	}
}

// check ends the session when err is a failure: an invalid request is
// the client's (1008), anything else the server's (1011). A conflict
// means that the process has ended: the exit message follows.
func (s *termSession) check(ctx context.Context, err error) {
	switch {
	case err == nil || errors.Is(err, driver.ErrConflict):
	case errors.Is(err, driver.ErrInvalidArgument):
		s.fail(ctx, websocket.StatusPolicyViolation, s.h.errorFor(ctx, err).msg)
	default:
		s.fail(ctx, websocket.StatusInternalError, s.h.errorFor(ctx, err).msg)
	}
}

// ping pings the client every heartbeat: the traffic keeps proxies from
// closing an idle terminal. A pong that does not come is not an error
// (the client may be busy); a ping the client does not take within the
// stall timeout closes the connection, as any write does.
func (s *termSession) ping(ctx context.Context) {
	t := time.NewTicker(s.h.opts.StreamHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := s.writeContext(ctx)
			_ = s.conn.Ping(pctx)
			cancel()
		}
	}
}

// fail says the session's last word, an error message, and closes with
// code.
func (s *termSession) fail(ctx context.Context, code websocket.StatusCode, msg string) {
	s.end.Do(func() {
		_ = s.writeControl(ctx, termControl{Type: "error", Error: msg})
		reason := msg
		if len(reason) > termCloseReason {
			reason = reason[:termCloseReason]
		}
		_ = s.conn.Close(code, reason)
	})
}

// writeControl sends a control message.
func (s *termSession) writeControl(ctx context.Context, m termControl) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.write(ctx, websocket.MessageText, data)
}

// write sends one message, within the stall timeout: a client that reads
// nothing for that long is disconnected (the connection is closed).
func (s *termSession) write(ctx context.Context, typ websocket.MessageType, data []byte) error {
	wctx, cancel := s.writeContext(ctx)
	defer cancel()
	return s.conn.Write(wctx, typ, data)
}

// writeContext bounds one write by the stall timeout (none when
// disabled).
func (s *termSession) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if stall := s.h.opts.StallTimeout; stall > 0 {
		return context.WithTimeout(ctx, stall)
	}
	return context.WithCancel(ctx)
}
