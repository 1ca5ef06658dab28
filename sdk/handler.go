package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
	ctx, cancel := context.WithCancel(req.Context())
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
