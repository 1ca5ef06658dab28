package sdk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// HandlerTransport returns an http.RoundTripper that serves every request
// in process by h, with no socket. h runs in its own goroutine with a
// ResponseWriter backed by an io.Pipe: RoundTrip returns as soon as h writes
// the header (or the first byte, or flushes), and the response body yields
// what h writes while it runs, so event streams and large downloads stream
// instead of being buffered. Closing the response body or cancelling the
// request's context cancels the context h sees and makes its writes fail.
func HandlerTransport(h http.Handler) http.RoundTripper {
	return handlerTransport{h: h}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	upgrade := isUpgrade(req)
	parent := req.Context()
	if upgrade {
		// An upgraded connection outlives the request's context, as
		// over a socket: it ends when either side closes it.
		parent = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithCancel(parent)
	if upgrade {
		stop := context.AfterFunc(req.Context(), cancel)
		defer stop()
	}
	sreq := req.Clone(ctx)
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:0"
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1

	pr, pw := io.Pipe()
	w := &pipeResponseWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	if upgrade {
		w.hijacks = make(chan hijack, 1)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if req.Body != nil {
				req.Body.Close()
			}
		}()
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("nox: in-process handler panicked: %v", p)
				if p == http.ErrAbortHandler {
					err = http.ErrAbortHandler
				}
				w.fail(err)
				return
			}
			w.WriteHeader(http.StatusOK) // no-op when already written
			pw.Close()
		}()
		t.h.ServeHTTP(w, sreq)
	}()

	select {
	case <-w.ready:
	case <-ctx.Done():
		cancel()
		pr.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
	if w.err != nil {
		cancel()
		return nil, w.err
	}
	if upgrade && (w.status == http.StatusSwitchingProtocols || w.status == 0) {
		return upgraded(req, w, done, cancel)
	}
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	resp := &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		ContentLength: -1,
		Body:          &pipeBody{pr: pr, cancel: cancel, stop: stop},
		Request:       req,
	}
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	if req.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		resp.ContentLength = 0
	}
	return resp, nil
}

// pipeBody is the body of an in-process answer.
type pipeBody struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	stop   func() bool
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

func (b *pipeBody) Close() error {
	b.stop()
	b.pr.CloseWithError(errors.New("nox: response body closed"))
	b.cancel()
	return nil
}

// pipeResponseWriter is the http.ResponseWriter of an in-process handler.
type pipeResponseWriter struct {
	header http.Header
	pw     *io.PipeWriter

	mu     sync.Mutex
	status int
	sent   http.Header // the header as it was when written
	err    error       // set when the handler failed before writing a header
	ready  chan struct{}
	closed bool

	// hijacks is made for an upgrade request, whose handler may hijack
	// the connection once (Hijack).
	hijacks  chan hijack
	hijacked bool
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return // informational answers are not forwarded
	}
	w.status = code
	w.sent = w.header.Clone()
	w.closed = true
	close(w.ready)
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	written := w.closed
	w.mu.Unlock()
	if !written {
		if w.header.Get("Content-Type") == "" && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	return w.pw.Write(p)
}

// Flush sends the header if it was not yet sent; written data is always
// handed to the reader at once.
func (w *pipeResponseWriter) Flush() {
	w.WriteHeader(http.StatusOK)
}

// fail ends the answer with err: RoundTrip returns it when no header was
// sent, else reading the body does.
func (w *pipeResponseWriter) fail(err error) {
	w.mu.Lock()
	if !w.closed {
		w.err = err
		w.closed = true
		close(w.ready)
	}
	w.mu.Unlock()
	w.pw.CloseWithError(err)
}

// isUpgrade reports whether req asks to switch protocols (a WebSocket).
func isUpgrade(req *http.Request) bool {
	return req.Header.Get("Upgrade") != "" && headerHasToken(req.Header, "Connection", "upgrade")
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hijack is the client's end of a connection a handler hijacked; raw is
// set when the handler hijacked it before writing a header, so the
// answer's header comes through the connection.
type hijack struct {
	conn net.Conn
	raw  bool
}

// Hijack hands the handler of an upgrade request the server's end of an
// in-memory connection (net.Pipe), whose client end becomes the answer's
// body, as http.Transport gives it for a 101 answer.
func (w *pipeResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacks == nil {
		return nil, nil, errors.New("nox: in-process handler: only an upgrade request can be hijacked")
	}
	w.mu.Lock()
	if w.hijacked {
		w.mu.Unlock()
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	raw := !w.closed
	if raw {
		w.closed = true
		close(w.ready)
	}
	w.mu.Unlock()
	server, client := net.Pipe()
	w.hijacks <- hijack{conn: client, raw: raw}
	return server, bufio.NewReadWriter(bufio.NewReader(server), bufio.NewWriter(server)), nil
}

// upgraded returns the answer to an upgrade request once its handler
// hijacked the connection, with the connection as its body; a handler
// that answered without hijacking is answered as usual.
func upgraded(req *http.Request, w *pipeResponseWriter, done <-chan struct{}, cancel context.CancelFunc) (*http.Response, error) {
	var h hijack
	select {
	case h = <-w.hijacks:
	case <-done:
		cancel()
		return nil, errors.New("nox: in-process handler: switched protocols without hijacking the connection")
	case <-req.Context().Done():
		cancel()
		return nil, req.Context().Err()
	}
	conn := &upgradedConn{Conn: h.conn, cancel: cancel}
	if !h.raw {
		return &http.Response{
			Status:     "101 " + http.StatusText(http.StatusSwitchingProtocols),
			StatusCode: http.StatusSwitchingProtocols,
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  w.sent,
			Body:    conn,
			Request: req,
		}, nil
	}
	// The handler writes the answer's header itself.
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nox: in-process handler: reading the upgrade answer: %w", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &bufferedConn{r: br, upgradedConn: conn}
	}
	return resp, nil
}

// upgradedConn is the client's end of an upgraded in-process connection;
// closing it cancels the handler's context.
type upgradedConn struct {
	net.Conn
	cancel context.CancelFunc
}

func (c *upgradedConn) Close() error {
	err := c.Conn.Close()
	c.cancel()
	return err
}

// bufferedConn reads through the reader that read the answer's header.
type bufferedConn struct {
	r *bufio.Reader
	*upgradedConn
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
