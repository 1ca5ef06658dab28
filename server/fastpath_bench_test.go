package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/noxrunner/nox/server"
)

// BenchmarkServeExec measures the server's CPU for one exec request over
// the double, in process (no sockets): the middleware, the validator, the
// decode, the handler and the access log line (formatted, then
// discarded).
func BenchmarkServeExec(b *testing.B) {
	for _, bc := range []struct{ name, method, path, body string }{
		{"exec", "POST", "/v1/sandboxes/bench/exec", `{"cmd":["echo","hi"],"workdir":"/workspace","timeoutSeconds":5}`},
		{"create", "PUT", "/v1/sandboxes/bench", `{"ttlSeconds":600}`},
		{"touch", "POST", "/v1/sandboxes/bench/touch", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := &double{info: fullInfo()}
			h, err := server.New(d, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(bc.method, "http://127.0.0.1"+bc.path, strings.NewReader(bc.body))
				if bc.body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%s %s: %d %s", bc.method, bc.path, w.Code, w.Body)
				}
				d.mu.Lock()
				d.execs, d.creates = d.execs[:0], d.creates[:0]
				d.mu.Unlock()
			}
		})
	}
}
