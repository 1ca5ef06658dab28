package conformance_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// portsReference serves the reference backend for the ports checks, or
// skips the test while it does not advertise the ports extension.
func portsReference(t *testing.T) http.Handler {
	t.Helper()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir(),
		Extensions: []string{api.ExtInfo, api.ExtSandboxesGet, api.ExtExecFlags, api.ExtProcesses, api.ExtPorts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, ok := any(b).(driver.Ports); !ok {
		t.Skip("the reference backend does not implement the ports extension yet")
	}
	h, err := server.New(b, server.Options{StreamHeartbeat: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// portsCheckIDs are the ids of the checks of the ports extension.
func portsCheckIDs() []string {
	var ids []string
	for _, c := range conformance.Checks() {
		if strings.HasPrefix(c.ID, "ports/") {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// runPorts runs the ports checks against h.
func runPorts(t *testing.T, h http.Handler) (*conformance.Report, string) {
	t.Helper()
	return runChecks(t, h, portsCheckIDs())
}

// TestPortsChecksPassReference runs every ports check against the
// reference backend: all pass, none skipped.
func TestPortsChecksPassReference(t *testing.T) {
	t.Parallel()
	rep, text := runPorts(t, portsReference(t))
	var notPassed []string
	for _, r := range rep.Results {
		if r.Status != conformance.StatusPass {
			notPassed = append(notPassed, r.ID+" "+string(r.Status))
		}
	}
	if len(notPassed) > 0 || len(rep.Results) != len(portsCheckIDs()) {
		t.Errorf("%d ports checks, not passed: %q\n%s", len(rep.Results), notPassed, text)
	}
	t.Logf("report:\n%s", text)
}

var portsURLPath = regexp.MustCompile(`^/v1/sandboxes/[^/]+/(ports|tunnel)/([^/]+)`)

// onPorts calls f for proxy (kind "ports") or tunnel requests, and passes
// the others to h.
func onPorts(h http.Handler, kind string, f func(w http.ResponseWriter, r *http.Request, port string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := portsURLPath.FindStringSubmatch(r.URL.Path); m != nil && m[1] == kind {
			f(w, r, m[2])
			return
		}
		h.ServeHTTP(w, r)
	})
}

// statusRewriter answers status to instead of from.
type statusRewriter struct {
	http.ResponseWriter
	from, to int
}

func (s *statusRewriter) WriteHeader(code int) {
	if code == s.from {
		code = s.to
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets the proxy hijack the connection for an upgrade.
func (s *statusRewriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// TestPortsChecksCatchEachBug runs the ports checks against backends with
// one deliberate bug each: exactly the check of that behaviour fails.
func TestPortsChecksCatchEachBug(t *testing.T) {
	t.Parallel()
	faults := []struct {
		name   string
		wrap   func(h http.Handler) http.Handler
		failed []string
	}{
		{"the proxy drops the query", func(h http.Handler) http.Handler {
			return onPorts(h, "ports", func(w http.ResponseWriter, r *http.Request, _ string) {
				r.URL.RawQuery = ""
				h.ServeHTTP(w, r)
			})
		}, []string{"ports/proxy"}},
		{"the proxy refuses WebSocket upgrades", func(h http.Handler) http.Handler {
			return onPorts(h, "ports", func(w http.ResponseWriter, r *http.Request, _ string) {
				if r.Header.Get("Upgrade") != "" {
					jsonError(w, http.StatusBadRequest, "upgrades are not proxied")
					return
				}
				h.ServeHTTP(w, r)
			})
		}, []string{"ports/proxy-websocket"}},
		{"an unreachable port is 500", func(h http.Handler) http.Handler {
			return onPorts(h, "ports", func(w http.ResponseWriter, r *http.Request, _ string) {
				h.ServeHTTP(&statusRewriter{ResponseWriter: w, from: http.StatusBadGateway, to: http.StatusInternalServerError}, r)
			})
		}, []string{"ports/unreachable-502"}},
		{"tunnel port 70000 is 404", func(h http.Handler) http.Handler {
			return onPorts(h, "tunnel", func(w http.ResponseWriter, r *http.Request, port string) {
				if port == "70000" {
					jsonError(w, http.StatusNotFound, "no such port")
					return
				}
				h.ServeHTTP(w, r)
			})
		}, []string{"ports/bad-port-400"}},
		{"the proxy forwards Authorization", func(h http.Handler) http.Handler {
			// The reference dials the host's loopback: a proxy of its own,
			// which keeps every header, stands in for the server's.
			return onPorts(h, "ports", func(w http.ResponseWriter, r *http.Request, port string) {
				if !strings.HasSuffix(r.URL.Path, "/echo") {
					h.ServeHTTP(w, r)
					return
				}
				(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
					pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path, pr.Out.URL.RawPath = "http", "127.0.0.1:"+port, "/echo", ""
					pr.Out.Header.Set("Authorization", r.Header.Get("Authorization"))
				}}).ServeHTTP(w, r)
			})
		}, []string{"ports/proxy-no-authorization"}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			rep, text := runPorts(t, f.wrap(portsReference(t)))
			var failed []string
			for _, r := range rep.Results {
				if r.Status == conformance.StatusFail || r.Status == conformance.StatusError {
					failed = append(failed, r.ID)
				}
			}
			if !slices.Equal(failed, f.failed) {
				t.Errorf("failed %q, want %q\n%s", failed, f.failed, text)
			}
		})
	}
}
