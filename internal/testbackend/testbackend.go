// Package testbackend serves nox's reference test backend (membackend)
// through the real HTTP layer (package server) for the SDK and CLI tests,
// with the few things tests need around it: a base path, request
// recording, a per-request hook and, through internal/quirks, the
// departures of other backends (a plain v1 backend is
// quirks.Quirks{NoExtensions: true}).
//
// It replaces hand-written fakes: what the tests talk to is the same code
// that nox serve runs, over a backend that passes the conformance suite.
package testbackend

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/noxrunner/nox/internal/quirks"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// Options configure a Backend. The zero value serves membackend's defaults
// at the root.
type Options struct {
	// BasePath mounts the API under a path prefix such as "/prefix";
	// requests outside it are answered 404.
	BasePath string
	// Server are the HTTP layer's options (Token, StreamHeartbeat, ...);
	// a nil Logger discards the access log.
	Server server.Options
	// Backend configures membackend; an empty Dir is a t.TempDir().
	Backend membackend.Config
	// Quirks, when set, wraps the server in internal/quirks.
	Quirks *quirks.Quirks
}

// Hook may answer a request itself, before the backend sees it; it
// returns true when it did. It sees the request's full path, base path
// included.
type Hook func(w http.ResponseWriter, r *http.Request) bool

// Request is what Backend records of a request.
type Request struct {
	Method, Path string
	// ContentLength is the request's Content-Length, -1 when the body
	// was sent without one (chunked).
	ContentLength int64
	Header        http.Header
}

// Backend is membackend behind package server, as an http.Handler.
type Backend struct {
	// Mem is the backend the server serves.
	Mem  *membackend.Backend
	next http.Handler

	mu       sync.Mutex
	requests []Request
	hook     Hook
}

// New returns a Backend, closed when t ends.
func New(t testing.TB, opts Options) *Backend {
	t.Helper()
	if opts.Backend.Dir == "" {
		opts.Backend.Dir = t.TempDir()
	}
	mem, err := membackend.New(opts.Backend)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	if opts.Server.Logger == nil {
		opts.Server.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := server.New(mem, opts.Server)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Quirks != nil {
		h = quirks.Wrap(h, *opts.Quirks)
	}
	if opts.BasePath != "" {
		h = http.StripPrefix(strings.TrimSuffix(opts.BasePath, "/"), h)
	}
	return &Backend{Mem: mem, next: h}
}

// Serve starts a loopback server for b, closed when t ends, and returns
// its URL (without the base path).
func Serve(t testing.TB, b *Backend) string {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv.URL
}

// ServeHTTP records r, offers it to the hook, then serves it.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.requests = append(b.requests, Request{Method: r.Method, Path: r.URL.Path, ContentLength: r.ContentLength, Header: r.Header.Clone()})
	hook := b.hook
	b.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	b.next.ServeHTTP(w, r)
}

// SetHook sets the hook (nil removes it).
func (b *Backend) SetHook(h Hook) {
	b.mu.Lock()
	b.hook = h
	b.mu.Unlock()
}

// Requests returns the requests received so far.
func (b *Backend) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests)
}

// Count returns the number of requests with method whose path ends with
// suffix.
func (b *Backend) Count(method, suffix string) int {
	n := 0
	for _, r := range b.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

// StreamBody returns a hook that answers every exec stream request with
// the event stream body returns, flushed as it is read; body's context
// ends when the client goes away.
func StreamBody(body func(ctx context.Context) io.Reader) Hook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/exec/stream") {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		flush := func() {}
		if f, ok := w.(http.Flusher); ok {
			flush = f.Flush
			flush()
		}
		src := body(r.Context())
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return true
				}
				flush()
			}
			if err != nil {
				return true
			}
		}
	}
}
