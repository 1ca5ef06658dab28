package main

import (
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
)

// newTestBackend serves the reference test backend (membackend behind
// package server) on loopback and returns it and its URL. It runs
// commands as host processes with /workspace and /tmp mapped to
// directories of their own: no sandbox, for tests only.
func newTestBackend(t *testing.T, opts testbackend.Options) (*testbackend.Backend, string) {
	t.Helper()
	b := testbackend.New(t, opts)
	return b, testbackend.Serve(t, b)
}
