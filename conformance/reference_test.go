package conformance_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// The reference backend's limits, advertised in GET /v1/info: low enough
// for the checks of limits to run cheaply.
const (
	refOutputCap  = 1 << 20
	refMaxTTL     = 86400
	refMaxTimeout = 3600
	refMaxUpload  = 1 << 20
)

// reference configures the suite's reference backend: package server over
// membackend, with deliberate bugs for the self-tests.
type reference struct {
	// token is required on /v1/ requests when set.
	token string
	// faults are membackend's deliberate bugs.
	faults membackend.Faults
	// maxConcurrentExecs is membackend's limit (0: its default).
	maxConcurrentExecs int
	// execQueueWait is how long a command waits for a slot before 503
	// (0: membackend's default).
	execQueueWait time.Duration
	// acceptTTLAboveMax enforces a maximum TTL above the advertised one,
	// so ttlSeconds above the advertised maximum are accepted.
	acceptTTLAboveMax bool
	// acceptUploadAboveMax enforces an upload limit above the advertised
	// one, so uploads above the advertised maxUploadBytes are accepted.
	acceptUploadAboveMax bool
}

// handler returns the reference backend's handler; the backend is closed
// when t ends.
func (r reference) handler(t testing.TB) http.Handler {
	t.Helper()
	maxTTL, maxUpload := time.Duration(refMaxTTL)*time.Second, int64(refMaxUpload)
	if r.acceptTTLAboveMax {
		maxTTL *= 2
	}
	if r.acceptUploadAboveMax {
		maxUpload *= 8
	}
	b, err := membackend.New(membackend.Config{
		Dir:           t.TempDir(),
		Faults:        r.faults,
		ExecQueueWait: r.execQueueWait,
		Limits: driver.Limits{MaxTTL: maxTTL, MaxTimeout: refMaxTimeout * time.Second,
			MaxOutputBytes: refOutputCap, MaxConcurrentExecs: r.maxConcurrentExecs},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{Token: r.token, MaxUploadBytes: maxUpload, StreamHeartbeat: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if r.acceptTTLAboveMax || r.acceptUploadAboveMax {
		h = advertise(h, map[string]int64{"maxTtlSeconds": refMaxTTL, "maxUploadBytes": refMaxUpload})
	}
	return h
}

// serve serves the reference backend until t ends.
func (r reference) serve(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(r.handler(t))
	t.Cleanup(srv.Close)
	return srv
}

// advertise wraps h so that GET /v1/info advertises the given limits,
// whatever h enforces.
func advertise(h http.Handler, limits map[string]int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/info" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var info map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &info) != nil {
			copyRecorded(w, rec)
			return
		}
		l, _ := info["limits"].(map[string]any)
		if l == nil {
			l = map[string]any{}
			info["limits"] = l
		}
		for k, v := range limits {
			l[k] = v
		}
		b, err := json.Marshal(info)
		if err != nil {
			panic(err)
		}
		rec.Body = bytes.NewBuffer(b)
		rec.Header().Set("Content-Length", strconv.Itoa(len(b)))
		copyRecorded(w, rec)
	})
}
