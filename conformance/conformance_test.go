package conformance_test

import (
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// TestReferenceBackendConforms runs the whole suite against the reference
// backend (package server over membackend).
func TestReferenceBackendConforms(t *testing.T) {
	srv := reference{}.serve(t)
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Parallelism = 4
	conformancetest.Run(t, cfg)
}
