package conformancetest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// healthzOnly is a plain v1 backend that serves only /healthz.
func healthzOnly(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "OK")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// counting returns a check that counts its runs.
func counting(id string, level conformance.Level, capability string, parallel bool, runs *atomic.Int32) conformance.Check {
	return conformance.Check{
		ID: id, Level: level, Requirement: conformance.Must, Capability: capability,
		Operations: []string{"healthz"}, Spec: "counts its runs", Anchor: "https://acme.example/rules",
		Parallel: parallel,
		Run: func(context.Context, *conformance.Env) error {
			runs.Add(1)
			return nil
		},
	}
}

// TestRun runs the suite's health check and extra checks as subtests: the
// checks that apply run once each, in parallel or not, and the check whose
// extension the backend does not advertise is skipped without running.
func TestRun(t *testing.T) {
	t.Parallel()
	var serial, parallel, ext atomic.Int32
	cfg := conformance.NewConfig()
	cfg.BaseURL = healthzOnly(t).URL
	cfg.Run = "^(health/ok|acme/.*)$"
	cfg.ExtraChecks = []conformance.Check{
		counting("acme/serial", conformance.LevelMinimum, "", false, &serial),
		counting("acme/parallel", conformance.LevelRecommended, "", true, &parallel),
		counting("acme/extension", conformance.LevelExtension, "acme.ext", true, &ext),
	}
	// Parallel subtests end when the test that started them returns.
	t.Run("suite", func(t *testing.T) { conformancetest.Run(t, cfg) })
	if serial.Load() != 1 || parallel.Load() != 1 || ext.Load() != 0 {
		t.Errorf("runs: serial %d, parallel %d, extension %d; want 1, 1, 0", serial.Load(), parallel.Load(), ext.Load())
	}
}
