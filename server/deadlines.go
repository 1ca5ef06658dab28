package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/noxrunner/nox/driver"
)

// stallDeadlines cuts off clients that stop reading a response or stop
// sending an upload: before every write of a response (and every read of
// an upload body) it sets the connection's deadline to stall from now, so
// a long response (a download, an exec stream) may last as long as it
// makes progress, while a client that reads nothing for stall is
// disconnected and the resources its request held are released. stall
// <= 0 disables it.
func stallDeadlines(next http.Handler, stall time.Duration) http.Handler {
	if stall <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		sw := &stallWriter{ResponseWriter: w, rc: rc, stall: stall}
		if streamsBody(r) && r.Body != nil && r.Body != http.NoBody {
			r.Body = &stallBody{ReadCloser: r.Body, rc: rc, stall: stall}
		}
		next.ServeHTTP(sw, r)
	})
}

// stallWriter sets the write deadline before each write and flush.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (s *stallWriter) extend() { _ = s.rc.SetWriteDeadline(time.Now().Add(s.stall)) }

func (s *stallWriter) WriteHeader(code int) {
	s.extend()
	s.ResponseWriter.WriteHeader(code)
}

func (s *stallWriter) Write(p []byte) (int, error) {
	s.extend()
	return s.ResponseWriter.Write(p)
}

// Flush implements http.Flusher (the generated SSE code asserts it).
func (s *stallWriter) Flush() {
	s.extend()
	_ = s.rc.Flush()
}

// SetWriteDeadline is ignored: the deadline follows progress (the exec
// stream clears the server's WriteTimeout this way).
func (s *stallWriter) SetWriteDeadline(time.Time) error { return nil }

// Unwrap lets http.ResponseController reach the underlying writer, and
// websocket.Accept its http.Hijacker (net/http clears the connection's
// deadlines when it is hijacked).
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// stallBody sets the read deadline before each read of a request body
// and clears it at the end of the body, so that waiting for the answer is
// not limited. When the client stalled, the expired deadline stays: after
// the handler, net/http reads what is left of a short body (to reuse the
// connection), and that read must fail at once, not wait for a client
// that sends nothing (the answer would never be written).
type stallBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
	done  bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	if !b.done {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, fmt.Errorf("body: the client sent nothing for %s: %w", b.stall, driver.ErrInvalidArgument)
		}
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
