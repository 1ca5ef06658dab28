package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/internal/contract"
)

// TestContractRoutes checks the line reader of the contract against the
// document loaded by kin-openapi: the same operations, methods and paths.
func TestContractRoutes(t *testing.T) {
	doc, err := contract.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[contractRoute]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want[contractRoute{method: method, path: path, id: op.OperationID}] = true
		}
	}
	got := map[contractRoute]bool{}
	for _, r := range contractRoutes(api.OpenAPI()) {
		got[r] = true
		if !want[r] {
			t.Errorf("read %+v, not in the contract", r)
		}
	}
	for r := range want {
		if !got[r] {
			t.Errorf("contract operation %+v not read", r)
		}
	}
}

func TestRouteLookup(t *testing.T) {
	rt := newRouteTable(func(id string) *opMetrics { return &opMetrics{id: id} })
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/healthz", "healthz"},
		{"GET", "/metrics", "getMetrics"},
		{"HEAD", "/metrics", "getMetrics"},
		{"GET", "/v1/info", "getInfo"},
		{"GET", "/v1/sandboxes", "listSandboxes"},
		{"PUT", "/v1/sandboxes/a", "createSandbox"},
		{"GET", "/v1/sandboxes/a", "getSandbox"},
		{"DELETE", "/v1/sandboxes/a", "deleteSandbox"},
		{"POST", "/v1/sandboxes/a/exec", "execInSandbox"},
		{"POST", "/v1/sandboxes/a/exec/stream", "execInSandboxStream"},
		{"POST", "/v1/sandboxes/a/files/upload", "uploadFiles"},
		{"GET", "/v1/sandboxes/a/files/download", "downloadFiles"},
		{"GET", "/v1/sandboxes/a/fs/file", "readFile"},
		{"HEAD", "/v1/sandboxes/a/fs/file", "readFile"},
		{"PUT", "/v1/sandboxes/a/fs/file", "writeFile"},
		{"GET", "/v1/sandboxes/a/processes/p1/wait", "waitProcess"},
		{"GET", "/v1/sandboxes/a/ports/8080/", "proxyPort"},
		{"POST", "/v1/sandboxes/a/ports/8080/x/y/z", "proxyPort"},
		{"GET", "/v1/sandboxes/a/tunnel/22", "openTunnel"},
		{"GET", "/v1/sandboxes/a/ports/8080", "other"},
		{"POST", "/v1/info", "other"},
		{"GET", "/v1/sandboxes/", "other"},
		{"GET", "/v1/sandboxes//exec", "other"},
		{"GET", "/v2/info", "other"},
		{"GET", "", "other"},
		{"GET", "/", "other"},
	} {
		if got := rt.lookup(c.method, c.path).id; got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rt.lookup("POST", "/v1/sandboxes/some-session/exec") }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}

// BenchmarkMetricsMiddleware is the cost metrics add to a request:
// logRequests around a handler that answers 200, with and without them.
func BenchmarkMetricsMiddleware(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	for _, bc := range []struct {
		name string
		m    *metrics
	}{{"without", nil}, {"with", newMetrics(nil, log)}} {
		b.Run(bc.name, func(b *testing.B) {
			h := logRequests(ok, log, bc.m)
			r := httptest.NewRequest("POST", "/v1/sandboxes/some-session/exec", strings.NewReader("{}"))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkMetricsObserve is the metrics' own work per request.
func BenchmarkMetricsObserve(b *testing.B) {
	m := newMetrics(nil, slog.New(slog.DiscardHandler))
	r := httptest.NewRequest("POST", "/v1/sandboxes/some-session/exec", io.NopCloser(strings.NewReader("")))
	b.ReportAllocs()
	for b.Loop() {
		m.begin(r).end(200, time.Millisecond, 10)
	}
}
