package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// saneRequestID reports whether a client-sent X-Request-Id may be echoed:
// 1 to 128 characters from [A-Za-z0-9._:/+=-].
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:/+=-", c) >= 0) {
			return false
		}
	}
	return true
}

type requestIDKey struct{}

// requestIDFrom returns the request id stored in ctx by logRequests.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// logRequests assigns the request id (echoing a sane X-Request-Id or
// generating one), writes one structured access log line per request and
// counts it in m.
func logRequests(next http.Handler, log *slog.Logger, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			var raw [12]byte
			_, _ = rand.Read(raw[:])
			id = hex.EncodeToString(raw[:])
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		op := m.begin(r)
		defer func() { // also when the handler aborts the connection
			took := time.Since(start)
			op.end(rec.status, took, rec.bytes)
			log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("requestId", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("ms", float64(took.Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status and size of a response. It keeps
// http.Flusher and http.ResponseController working for streams.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher (the generated SSE code asserts it).
func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// markUnisolated sets IsolationHeader on every response.
func markUnisolated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(IsolationHeader, "none-unsafe")
		next.ServeHTTP(w, r)
	})
}

// requireToken demands "Authorization: Bearer <token>" on everything but
// /healthz, comparing in constant time. attachTerminal and openTunnel,
// WebSockets that browsers cannot send headers with, may carry it as
// ?access_token= instead (the header wins when both are sent).
func requireToken(next http.Handler, token string) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		ok := bearerMatches(r, want)
		if r.Header.Get("Authorization") == "" && (isTerminal(r) || isTunnel(r)) && r.URL.Query().Has("access_token") {
			ok = tokenMatches(r.URL.Query().Get("access_token"), want)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nox"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token", 0)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerMatches reports whether r carries "Authorization: Bearer" with
// the token whose SHA-256 is want, compared in constant time.
func bearerMatches(r *http.Request, want [sha256.Size]byte) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && tokenMatches(tok, want)
}

// tokenMatches reports whether tok (spaces trimmed) is the token whose
// SHA-256 is want, compared in constant time.
func tokenMatches(tok string, want [sha256.Size]byte) bool {
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// bodyLimits are the largest request bodies, in bytes.
type bodyLimits struct {
	json   int64 // JSON bodies
	exec   int64 // exec requests, which may carry stdin
	upload int64 // uploads and writeFile bodies
}

// limitBodies bounds request bodies: uploads by l.upload (413 above, as
// the contract declares), exec requests by l.exec and everything else by
// l.json (400 above: the contract declares no 413 for JSON operations).
// A process's stdin is a stream that is not stored: it is not bounded.
func limitBodies(next http.Handler, l bodyLimits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, status := l.json, http.StatusBadRequest
		switch {
		case isProcessStdin(r):
			next.ServeHTTP(w, r)
			return
		case isUpload(r):
			limit, status = l.upload, http.StatusRequestEntityTooLarge
		case isExec(r):
			limit = l.exec
		}
		if r.ContentLength > limit {
			writeJSONError(w, status, fmt.Sprintf("body: exceeds the limit of %d bytes", limit), 0)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// absent names the optional endpoints a backend does not serve.
type absent struct {
	get, list bool // sandboxes.get, sandboxes.list
	files     bool // files.ops: /v1/sandboxes/{sessionId}/fs/* but watch
	watch     bool // files.watch: /v1/sandboxes/{sessionId}/fs/watch
	procs     bool // processes: /v1/sandboxes/{sessionId}/processes[/*]
	ports     bool // ports: /v1/sandboxes/{sessionId}/{ports/*,tunnel/*,previews}
	network   bool // network.egress: /v1/sandboxes/{sessionId}/network
}

// withoutExtensions answers the endpoints of the extensions the backend
// lacks (GET /v1/sandboxes/{sessionId} without sandboxes.get, GET
// /v1/sandboxes without sandboxes.list, /v1/sandboxes/{sessionId}/fs/...
// without files.ops or files.watch, /v1/sandboxes/{sessionId}/processes...
// without processes, the ports extension's paths without ports,
// /v1/sandboxes/{sessionId}/network without network.egress) as a server
// without them does: 404 "no such endpoint", before any validation.
func withoutExtensions(next http.Handler, a absent) http.Handler {
	if a == (absent{}) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.lacks(r) {
			writeNoSuchEndpoint(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// lacks reports whether r is for an endpoint a says is absent.
func (a absent) lacks(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/sandboxes")
	if !ok {
		return false
	}
	if rest == "" {
		return a.list && r.Method == http.MethodGet
	}
	id, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case id == "" || rest[0] != '/':
		return false
	case sub == "":
		return a.get && r.Method == http.MethodGet
	case sub == "fs/watch":
		return a.watch
	case strings.HasPrefix(sub, "fs/"):
		return a.files
	case sub == "processes" || strings.HasPrefix(sub, "processes/"):
		return a.procs
	case strings.HasPrefix(sub, "ports/") || strings.HasPrefix(sub, "tunnel/") || sub == "previews":
		return a.ports
	case sub == "network":
		return a.network
	}
	return false
}

// isExec reports whether r is an exec request: POST
// /v1/sandboxes/{sessionId}/exec or .../exec/stream.
func isExec(r *http.Request) bool {
	return r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/exec") || strings.HasSuffix(r.URL.Path, "/exec/stream"))
}
