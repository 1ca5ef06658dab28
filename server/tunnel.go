package server

// openTunnel: a raw TCP connection to a port inside the sandbox, carried
// by a WebSocket's binary messages.

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// serveTunnel answers an openTunnel request: 426 when it is not a
// WebSocket handshake, then it dials the port (an unknown sandbox 404,
// nothing listening 502, both as JSON before any upgrade), upgrades and
// splices until either side closes, which closes the other.
func (h *handlers) serveTunnel(w http.ResponseWriter, r *http.Request, id string, port int) {
	if !isWebSocketHandshake(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		writeJSONError(w, http.StatusUpgradeRequired, "not a WebSocket handshake: openTunnel needs Connection: Upgrade and Upgrade: websocket", 0)
		return
	}
	ctx := r.Context()
	tcp, err := h.ports.DialPort(ctx, id, port)
	if err != nil {
		h.errorFor(ctx, err).visit(w)
		return
	}
	defer tcp.Close()
	// Without a token, guardBrowsers refused pages of other sites; with
	// one, a page cannot have it.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the handshake's error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	defer nc.Close()
	splice(nc, tcp, h.opts.StallTimeout)
}

// splice copies a to b and b to a until either side ends, then closes
// both. Each write to a (the client) is bounded by stall (when positive):
// a client that reads nothing for that long is cut off.
func splice(a, b net.Conn, stall time.Duration) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = a.Close()
			_ = b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer closeBoth()
		_, _ = io.Copy(b, a)
	}()
	go func() {
		defer wg.Done()
		defer closeBoth()
		_, _ = io.Copy(stallConn{Conn: a, stall: stall}, b)
	}()
	wg.Wait()
}

// stallConn sets the write deadline before each write.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c stallConn) Write(p []byte) (int, error) {
	if c.stall > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	}
	return c.Conn.Write(p)
}
