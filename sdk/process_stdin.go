package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

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
// travel in a request, opened by the first write, that streams each write
// as it is made (HTTP/1.1 chunked: a write reaches the process after one
// network trip, with no request of its own); after 2 s without writes the
// request ends (a backend cuts a body that stalls) and the next write
// opens another, after it. Close ends the request and then closes
// standard input (one more request). A
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

// stdinIdle is how long the writer of Process.Stdin keeps a request
// open without writes. A backend cuts a request body that sends nothing
// for its stall timeout (30 s on nox), so an idle stream ends its request
// well before, and the next write starts another.
const stdinIdle = 2 * time.Second

// stdinWriter is the writer of Process.Stdin: a streamed request per
// burst of writes, one after the other.
type stdinWriter struct {
	ctx context.Context
	p   *Process

	mu     sync.Mutex
	pw     *io.PipeWriter // the current request's body; nil between requests
	done   chan struct{}  // closed when the last request started ended
	idle   *time.Timer    // ends the current request after stdinIdle
	err    error          // the first failed request's error
	closed bool
	writes int // writes in flight on pw
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
	if w.err != nil {
		w.mu.Unlock()
		return 0, w.err
	}
	if w.idle != nil {
		w.idle.Stop()
	}
	if w.pw == nil {
		w.open()
	}
	pw, done := w.pw, w.done
	w.writes++
	w.mu.Unlock()
	n, err := pw.Write(b)
	w.mu.Lock()
	w.writes--
	w.mu.Unlock()
	if err != nil {
		// The request ended while the bytes were written: its outcome
		// says why.
		<-done
		if rerr := w.outcome(); rerr != nil {
			return n, rerr
		}
		return n, fmt.Errorf("nox: writeProcessStdin: %w", err)
	}
	w.mu.Lock()
	if w.pw == pw && !w.closed && w.writes == 0 {
		w.idle = time.AfterFunc(stdinIdle, func() { w.endRequest(pw) })
	}
	w.mu.Unlock()
	return n, nil
}

// open starts a streamed request after the previous one ended, so that
// bodies reach the process in order; w.mu is held.
func (w *stdinWriter) open() {
	pr, pw := io.Pipe()
	prev := w.done
	done := make(chan struct{})
	w.pw, w.done = pw, done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		if err := w.outcome(); err != nil {
			pr.CloseWithError(err)
			return
		}
		_, err := w.p.sendStdin(w.ctx, pr, false)
		// Writes blocked on the pipe, and later ones, fail from now on.
		if err != nil {
			pr.CloseWithError(err)
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		} else {
			pr.CloseWithError(errStdinClosed)
		}
	}()
}

// endRequest ends the request whose body is pw, when it is still the
// current one: the writer was idle.
func (w *stdinWriter) endRequest(pw *io.PipeWriter) {
	w.mu.Lock()
	if w.pw != pw || w.closed || w.writes > 0 {
		w.mu.Unlock()
		return
	}
	w.pw = nil
	w.mu.Unlock()
	_ = pw.Close()
}

// outcome returns the error of the first request that failed.
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
	if w.idle != nil {
		w.idle.Stop()
	}
	pw, done := w.pw, w.done
	w.mu.Unlock()
	if pw != nil {
		_ = pw.Close()
	}
	if done != nil {
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
