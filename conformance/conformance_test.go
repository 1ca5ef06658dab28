package conformance_test

import (
	"net/http/httptest"
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// fakeServer serves a fresh fake backend.
func fakeServer(t *testing.T, mutate func(*fakeBackend)) (*httptest.Server, *fakeBackend) {
	t.Helper()
	f := newFake(t.TempDir())
	if mutate != nil {
		mutate(f)
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return srv, f
}

func TestFakeBackendConforms(t *testing.T) {
	srv, _ := fakeServer(t, nil)
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Parallelism = 4
	conformancetest.Run(t, cfg)
}
