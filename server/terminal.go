package server

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/gen/noxapi"
)

// AttachTerminal upgrades to a WebSocket attached to the terminal of a
// process started with a pty (processes.terminal, which the server
// implements over driver.Process). Errors found before the upgrade are
// ordinary JSON answers: 400 bad ids or offset, 426 not a WebSocket
// handshake, 403 a browser page of another origin (unless a token is
// required), 404 unknown process, 409 a process without a terminal.
func (h *handlers) AttachTerminal(ctx context.Context, req noxapi.AttachTerminalRequestObject) (noxapi.AttachTerminalResponseObject, error) {
	r := httpRequestFrom(ctx)
	if r == nil {
		return nil, errNoRequest
	}
	if _, err := h.procsFor(req.SessionID); err != nil {
		return h.procErr(ctx, err), nil
	}
	if err := checkProcessID(req.ProcessID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if !isWebSocketHandshake(r) {
		return upgradeRequired{}, nil
	}
	// Without a token, guardBrowsers refused pages of other sites.
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if !p.Info().PTY {
		return errorResponse{status: http.StatusConflict, msg: fmt.Sprintf("process %q has no terminal (start it with pty)", req.ProcessID)}, nil
	}
	var from int64
	if req.Params.From != nil {
		if from = *req.Params.From; from < 0 {
			return h.errorFor(ctx, invalid("from: must not be negative")), nil
		}
	}
	hangup := req.Params.Hangup != nil && *req.Params.Hangup
	return &terminal{ctx: ctx, r: r, s: &termSession{h: h, p: p}, from: from, hangup: hangup}, nil
}

// terminal is the answer of one attachTerminal request: the upgrade, then
// the session until the WebSocket closes.
type terminal struct {
	ctx    context.Context
	r      *http.Request
	s      *termSession
	from   int64
	hangup bool
}

// VisitAttachTerminalResponse upgrades the connection and runs the
// session. A hijacked connection has no deadline left (net/http clears
// those of the server's timeouts and of stallWriter): the session bounds
// each of its writes by the stall timeout itself.
func (t *terminal) VisitAttachTerminalResponse(w http.ResponseWriter) error {
	// The origin was checked by AttachTerminal.
	conn, err := websocket.Accept(w, t.r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil // Accept answered the handshake's error
	}
	conn.SetReadLimit(termReadLimit)
	t.s.conn = conn
	t.s.run(t.ctx, t.from, t.hangup)
	return nil
}

// upgradeRequired is the 426 answer to an attachTerminal request that is
// not a WebSocket handshake.
type upgradeRequired struct{}

func (upgradeRequired) VisitAttachTerminalResponse(w http.ResponseWriter) error {
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Connection", "Upgrade")
	writeJSONError(w, http.StatusUpgradeRequired, "not a WebSocket handshake: attachTerminal needs Connection: Upgrade and Upgrade: websocket", 0)
	return nil
}

// isWebSocketHandshake reports whether r asks for an upgrade to a
// WebSocket (the other handshake fields are websocket.Accept's to check).
func isWebSocketHandshake(r *http.Request) bool {
	return r.ProtoAtLeast(1, 1) && headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether a comma-separated header lists token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(textproto.CanonicalMIMEHeaderKey(name)) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// isTerminal reports whether r is an attachTerminal request: GET
// /v1/sandboxes/{sessionId}/processes/{processId}/terminal.
func isTerminal(r *http.Request) bool {
	return r.Method == http.MethodGet && processOperation(r.URL.Path) == "terminal"
}
