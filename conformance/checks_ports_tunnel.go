package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// tunnelEchoBytes is how much the tunnel check sends through the echo
// server: every byte value, several times over.
const tunnelEchoBytes = 64 << 10

func checkPortsTunnel(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-tunnel")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "tcp")
	if err != nil {
		return err
	}
	c, x, err := env.dialTunnel(ctx, id, port)
	x.judge()
	if err != nil {
		return err
	}
	if c == nil {
		return portsFinding(x, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "101 Switching Protocols",
			fmt.Errorf("%w: a tunnel to a listening port", errNoUpgrade))
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	sent := make([]byte, tunnelEchoBytes)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	ctx, cancel := context.WithTimeout(ctx, procWait)
	defer cancel()
	start := time.Now()
	go func() {
		// Two messages: the tunnel carries a stream, not messages.
		half := len(sent) / 2
		if err := c.Write(ctx, websocket.MessageBinary, sent[:half]); err != nil {
			return
		}
		_ = c.Write(ctx, websocket.MessageBinary, sent[half:])
	}()
	var got []byte
	for len(got) < len(sent) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return portsFinding(x, fmt.Sprintf("%d of %d bytes back, then %v", len(got), len(sent), err), "every byte echoed",
				errors.New("the tunnel did not bring back what the echo server echoed"))
		}
		if typ != websocket.MessageBinary {
			return portsFinding(x, "a text message", "binary messages", errors.New("the tunnel carried bytes in a text message"))
		}
		got = append(got, b...)
	}
	env.Notef("tunnel echo of %d KiB: %s", len(sent)>>10, time.Since(start).Round(time.Millisecond))
	if !bytes.Equal(got, sent[:len(got)]) || len(got) != len(sent) {
		return portsFinding(x, fmt.Sprintf("%d bytes back, different", len(got)), fmt.Sprintf("the %d bytes sent", len(sent)),
			errors.New("the bytes echoed through the tunnel are not those sent"))
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	return nil
}

func checkPortsProxyWebSocket(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-ws")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "ws")
	if err != nil {
		return err
	}
	c, x, err := env.dialWebSocket(ctx, portPath(id, port, "/ws"), "open a WebSocket through the proxy to port "+strconv.Itoa(port))
	x.judge()
	if err != nil {
		return err
	}
	if c == nil {
		return portsFinding(x, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "101 Switching Protocols from the server in the sandbox",
			fmt.Errorf("%w: a WebSocket upgrade through the proxy", errNoUpgrade))
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(ctx, procWait)
	defer cancel()
	binary := make([]byte, 70000) // beyond a 16-bit frame length
	for i := range binary {
		binary[i] = byte(i * 13)
	}
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{{websocket.MessageText, []byte("hello through the proxy ☃")}, {websocket.MessageBinary, binary}} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			return portsFinding(x, err.Error(), "the message sent", errors.New("a message could not be sent through the proxied WebSocket"))
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			return portsFinding(x, err.Error(), "the message echoed", errors.New("the echo did not come back through the proxied WebSocket"))
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			return portsFinding(x, fmt.Sprintf("a %v message of %d bytes", typ, len(got)), fmt.Sprintf("the %v message of %d bytes sent", m.typ, len(m.data)),
				errors.New("the message echoed through the proxied WebSocket is not the one sent"))
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	return nil
}
