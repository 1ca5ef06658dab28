package conformance_test

import (
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// TestReferenceBackendConforms certifies the reference backend (package
// server over membackend) with every check: a token for the auth checks,
// a limit of concurrent commands low enough to saturate.
func TestReferenceBackendConforms(t *testing.T) {
	srv := reference{token: "conformance-token", maxConcurrentExecs: 4}.serve(t)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Token = srv.URL, "conformance-token"
	cfg.Profile, cfg.Certify = conformance.ProfileAll, true
	cfg.Parallelism = 4
	conformancetest.Run(t, cfg)
}
