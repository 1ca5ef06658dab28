package egress

// The gateway's proxy: HTTP CONNECT, absolute-URI HTTP requests and
// SOCKS5 on one listener, told apart by the first byte.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// ServeProxy serves proxy connections accepted on l until l or the
// gateway is closed; it returns nil then. Beyond Config.MaxConns
// connections, new ones are told the proxy is busy (HTTP 503, SOCKS5
// general failure) and closed.
func (g *Gateway) ServeProxy(l net.Listener) error {
	if !g.addCloser(l) {
		return nil
	}
	defer g.removeCloser(l)
	for {
		c, err := l.Accept()
		if err != nil {
			if g.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("egress proxy: %w", err)
		}
		st := g.state.Load()
		g.dispatch(c, st)
	}
}

// dispatch serves c in a slot of its own, or tells it the proxy is busy
// when all are taken (at most cap(g.refusing) at once; beyond, c is just
// closed).
func (g *Gateway) dispatch(c net.Conn, st *state) {
	select {
	case g.slots <- struct{}{}:
		if !g.spawn(func() { defer func() { <-g.slots }(); g.serveConn(c, st) }) {
			<-g.slots
			c.Close()
		}
		return
	default:
	}
	select {
	case g.refusing <- struct{}{}:
		if !g.spawn(func() { defer func() { <-g.refusing }(); g.refuseBusy(c) }) {
			<-g.refusing
			c.Close()
		}
	default:
		c.Close()
	}
}

// spawn runs f in a goroutine that Close waits for; false when the
// gateway is closed.
func (g *Gateway) spawn(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// serveConn serves one proxy connection under st's policy until the
// client or the policy goes.
func (g *Gateway) serveConn(c net.Conn, st *state) {
	defer c.Close()
	if !g.track(c, st) {
		return
	}
	defer g.untrack(c)
	c.SetReadDeadline(time.Now().Add(g.cfg.HeaderTimeout))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == socksVersion {
		g.serveSOCKS(c, br, st)
		return
	}
	g.serveHTTP(c, br, st)
}

// refuseBusy tells a connection beyond Config.MaxConns that the proxy is
// busy, in its protocol, and closes it.
func (g *Gateway) refuseBusy(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == socksVersion {
		if _, code := socksRequest(br, c); code != socksNoReply {
			socksReply(c, socksGeneralFailure)
		}
		return
	}
	// Read the request first: closing on unread data would reset the
	// connection before the client reads the answer.
	http.ReadRequest(br)
	writeStatus(c, http.StatusServiceUnavailable, "the sandbox's egress proxy has too many connections open")
}

// serveHTTP serves HTTP proxy requests on c: one CONNECT, or absolute-URI
// requests as long as both sides keep the connection alive.
func (g *Gateway) serveHTTP(c net.Conn, br *bufio.Reader, st *state) {
	for {
		c.SetReadDeadline(time.Now().Add(g.cfg.HeaderTimeout))
		req, err := http.ReadRequest(br)
		if err != nil {
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
				writeStatus(c, http.StatusBadRequest, "malformed proxy request")
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		if req.Method == http.MethodConnect {
			g.connect(c, br, req, st)
			return
		}
		if !g.forward(c, req, st) {
			return
		}
	}
}

// connect serves a CONNECT request: a tunnel to the destination.
func (g *Gateway) connect(c net.Conn, br *bufio.Reader, req *http.Request, st *state) {
	dest := req.URL.Host
	up, err := g.dial(g.ctx, st, dest)
	if err != nil {
		g.refuseHTTP(c, dest, err)
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	splice(c, br, up)
}

// forward serves an absolute-URI request through st's transport, whose
// dialer checks the policy, and reports whether the client connection
// may serve another request.
func (g *Gateway) forward(c net.Conn, req *http.Request, st *state) (keepAlive bool) {
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		writeStatus(c, http.StatusBadRequest, "the proxy serves CONNECT and absolute http:// URIs only")
		return false
	}
	out := req.Clone(g.ctx)
	out.RequestURI = ""
	out.Close = false
	removeHopHeaders(out.Header)
	resp, err := st.transport.RoundTrip(out)
	if err != nil {
		g.refuseHTTP(c, req.URL.Host, err)
		return false
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	keepAlive = !req.Close && req.ProtoAtLeast(1, 1) && !resp.Close &&
		(resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked")
	resp.Close = !keepAlive
	return resp.Write(c) == nil && keepAlive
}

// refuseHTTP answers a failed proxy request with the status its error
// calls for: 403 for a destination the policy refuses, 400 for a
// malformed one, 502 when it does not resolve or connect.
func (g *Gateway) refuseHTTP(c net.Conn, dest string, err error) {
	switch {
	case errors.Is(err, errNotAllowed):
		writeStatus(c, http.StatusForbidden, dest+": not allowed by the sandbox's egress policy")
	case errors.Is(err, errBadTarget):
		writeStatus(c, http.StatusBadRequest, dest+": not a host:port the proxy serves")
	case errors.Is(err, errResolve):
		writeStatus(c, http.StatusBadGateway, dest+": cannot resolve the name")
	case errors.Is(err, net.ErrClosed) || g.ctx.Err() != nil:
	default:
		writeStatus(c, http.StatusBadGateway, dest+": cannot connect")
	}
}

// writeStatus writes a complete text response and asks the client to
// close the connection.
func writeStatus(w io.Writer, code int, msg string) {
	msg += "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
}

// hopHeaders are the headers of one connection, never forwarded.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes hop-by-hop headers: the fixed ones, those the
// Connection header names, and every Proxy-* header.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	for name := range h {
		if strings.HasPrefix(name, "Proxy-") {
			delete(h, name)
		}
	}
}

// splice copies both ways between the client (reading through cr, which
// may hold bytes already read from it) and the upstream connection,
// passing each side's end of stream on as a half-close, until both
// directions end.
func splice(client net.Conn, cr io.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, cr)
		closeWrite(up)
	}()
	io.Copy(client, up)
	closeWrite(client)
	<-done
}

// closeWrite half-closes c, or closes it when it cannot half-close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
