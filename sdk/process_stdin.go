package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/noxrunner/nox/gen/noxapi"
)

// WriteStdin writes data to the process's standard input, in one request
// that returns once the process has taken all of it (a process that does
// not read makes it wait). The process must have been started with
// StartOptions.Stdin or PTY (on a terminal the bytes are typed); without
// it, after CloseStdin or once the process ended, it fails with an error
// matching ErrConflict. For a stream of writes, Stdin costs one request
// in all instead of one per write.
//
//meta:operation POST /v1/sandboxes/{sessionId}/processes/{processId}/stdin
func (p *Process) WriteStdin(ctx context.Context, data []byte) error {
	_, err := p.sendStdin(ctx, bytes.NewReader(data), false)
	return err
}

// CloseStdin closes the process's standard input: the process reads
// end-of-file (on a terminal, the end-of-file character, Ctrl-D, is
// typed and the terminal stays open). It fails as WriteStdin does.
func (p *Process) CloseStdin(ctx context.Context) error {
	_, err := p.sendStdin(ctx, http.NoBody, true)
	return err
}

// sendStdin sends body (a bytes.Reader or http.NoBody, sent with a
// Content-Length, or a pipe, sent as it is written) to the process's
// standard input, then closes it when closeAfter is set.
func (p *Process) sendStdin(ctx context.Context, body io.Reader, closeAfter bool) (int64, error) {
	const op = "writeProcessStdin"
	if err := checkID(op, p.sb.id); err != nil {
		return 0, err
	}
	if err := checkProcessID(op, p.id); err != nil {
		return 0, err
	}
	c := p.sb.c
	params := &noxapi.WriteProcessStdinParams{}
	if closeAfter {
		params.Close = &closeAfter
	}
	cl := call{op: op}
	switch b := body.(type) {
	case *bytes.Reader:
		start := b.Size() - int64(b.Len())
		cl.rewind = func() error {
			_, err := b.Seek(start, io.SeekStart)
			return err
		}
	case *io.PipeReader:
		cl.noReplay, cl.untimed = true, true
	}
	resp, err := c.do(ctx, cl, func(ctx context.Context) (*http.Response, error) {
		return c.gen.WriteProcessStdinWithBody(ctx, p.sb.id, p.id, params, "application/octet-stream", body)
	})
	if err != nil {
		return 0, err
	}
	var g noxapi.StdinResult
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return 0, err
	}
	return g.Written, nil
}

// Stdin returns a writer to the process's standard input. Its writes
// travel in one request, opened by the first write, that streams each
// write as it is made (HTTP/1.1 chunked: a write reaches the process after
// one network trip, with no request of its own), until Close, which ends
// the request and then closes standard input (one more request). A
// process that does not read makes writes wait (the backend bounds what
// it buffers). ctx bounds the whole stream; the Client's timeout
// (WithTimeout) does not apply to it.
//
// A write returns once the transport took the bytes, before the backend
// answered, so a failure (a process without stdin: ErrConflict; the
// connection lost) shows up in a later Write or in Close, which returns
// the request's outcome. Writes are not retried. Close must be called to
// release the request; it is not an error that the process ended after
// taking every byte written. Writes of concurrent goroutines are not
// interleaved, but their order is not defined.
//
// A proxy between the client and the backend that buffers request bodies
// holds the writes until Close; WriteStdin does not depend on streaming.
func (p *Process) Stdin(ctx context.Context) io.WriteCloser {
	return &stdinWriter{ctx: ctx, p: p}
}

// stdinWriter is the writer of Process.Stdin.
type stdinWriter struct {
	ctx context.Context
	p   *Process

	mu      sync.Mutex
	pw      *io.PipeWriter // nil until the first write
	done    chan struct{}  // closed when the request ended
	err     error          // the request's outcome, once done
	closed  bool
	written int64
}

// errStdinClosed is the error of a write after Close.
var errStdinClosed = errors.New("nox: writeProcessStdin: the stdin writer is closed")

// Write sends b to the process's standard input.
func (w *stdinWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, errStdinClosed
	}
	if w.pw == nil {
		w.open()
	}
	pw, done := w.pw, w.done
	w.mu.Unlock()
	select {
	case <-done:
		return 0, w.outcome()
	default:
	}
	n, err := pw.Write(b)
	if err != nil {
		// The request ended while the bytes were written: its outcome
		// says why.
		<-done
		if rerr := w.outcome(); rerr != nil {
			return n, rerr
		}
		return n, fmt.Errorf("nox: writeProcessStdin: %w", err)
	}
	return n, nil
}

// open starts the streamed request; w.mu is held.
func (w *stdinWriter) open() {
	pr, pw := io.Pipe()
	w.pw, w.done = pw, make(chan struct{})
	go func() {
		n, err := w.p.sendStdin(w.ctx, pr, false)
		// Writes blocked on the pipe, and later ones, fail from now on.
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errStdinClosed)
		}
		w.mu.Lock()
		w.err, w.written = err, n
		w.mu.Unlock()
		close(w.done)
	}()
}

// outcome returns the request's error once it is done.
func (w *stdinWriter) outcome() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the stream and closes the process's standard input. It
// returns the stream's error, if any (then standard input is left open).
// A process that ended after taking every byte written is not an error:
// its standard input closed with it.
func (w *stdinWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errStdinClosed
	}
	w.closed = true
	pw, done := w.pw, w.done
	w.mu.Unlock()
	if pw != nil {
		_ = pw.Close()
		<-done
		if err := w.outcome(); err != nil {
			return err
		}
	}
	err := w.p.CloseStdin(w.ctx)
	if errors.Is(err, ErrConflict) {
		if rec, ierr := w.p.Info(w.ctx); ierr == nil && !rec.Running() {
			return nil
		}
	}
	return err
}
