package sdk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/server"
)

// basePath is where test servers mount the API, to catch absolute-URL bugs.
const basePath = "/prefix"

// testOptions are the test backend's options unless a test says
// otherwise: mounted under basePath, with a heartbeat of one second.
func testOptions() testbackend.Options {
	return testbackend.Options{BasePath: basePath, Server: server.Options{StreamHeartbeat: time.Second}}
}

// newTestBackend returns the reference test backend (membackend behind
// package server) mounted under basePath.
func newTestBackend(t *testing.T) *testbackend.Backend {
	t.Helper()
	return testbackend.New(t, testOptions())
}

// testPolicy retries fast.
func testPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
}

// setup starts the test backend behind an httptest server and returns a
// client for it.
func setup(t *testing.T, opts ...Option) (*Client, *testbackend.Backend) {
	t.Helper()
	return setupWith(t, testOptions(), opts...)
}

// setupWith is setup with the backend's options given.
func setupWith(t *testing.T, bo testbackend.Options, opts ...Option) (*Client, *testbackend.Backend) {
	t.Helper()
	f := testbackend.New(t, bo)
	c, err := New(testbackend.Serve(t, f)+bo.BasePath, append([]Option{WithRetry(testPolicy())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// setupInProcess is setup with WithHandler instead of a socket.
func setupInProcess(t *testing.T, opts ...Option) (*Client, *testbackend.Backend) {
	t.Helper()
	f := newTestBackend(t)
	c, err := New("http://nox.invalid"+basePath, append([]Option{WithRetry(testPolicy()), WithHandler(f)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeEvent(w io.Writer, event string, v any) {
	data, _ := json.Marshal(v)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
}
