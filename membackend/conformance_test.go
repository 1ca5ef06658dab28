package membackend_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// TestConforms runs the whole conformance suite against the reference
// backend served by the server layer.
func TestConforms(t *testing.T) {
	b, err := membackend.New(membackend.Config{Dir: t.TempDir(), Limits: driver.Limits{MaxTTL: 2 * time.Hour, MaxTimeout: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{Token: "conformance-token", MaxUploadBytes: 8 << 20, StreamHeartbeat: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Token = "conformance-token"
	cfg.Parallelism = 4
	conformancetest.Run(t, cfg)
}
