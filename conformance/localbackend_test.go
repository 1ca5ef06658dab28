package conformance_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
	"github.com/noxrunner/nox/internal/networld"
	"github.com/noxrunner/nox/localbackend"
)

func TestMain(m *testing.M) {
	localbackend.MaybeRunInit() // a re-executed sandbox init never returns
	os.Exit(m.Run())
}

// requireIsolation reports whether NOX_REQUIRE_ISOLATION=1 forbids
// skipping the local backend test.
func requireIsolation() bool { return os.Getenv("NOX_REQUIRE_ISOLATION") == "1" }

// localServer serves the real local backend in-process (see localBackend).
func localServer(t *testing.T, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(localBackend(t, token, nil))
	t.Cleanup(srv.Close)
	return srv
}

// egressWorld starts a stand-in internet for the network.egress checks
// (a network namespace of the test's own with allowed.test serving 200)
// and returns the egress target, or "" when the host cannot make one
// (not root).
func egressWorld(t *testing.T, cfg *localbackend.Config) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	w := networld.New(t)
	// allowed.test, and a metadata server that no policy may reach.
	for _, addr := range []netip.Addr{w.Host("allowed.test"), networld.Metadata} {
		err := w.ServeHTTP(netip.AddrPortFrom(addr, 80), http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(rw, "hello from "+r.Host+"\n")
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg.EgressNetns, cfg.EgressResolver = w.NetnsPath(), w.DNSAddr().String()
	return "http://allowed.test/"
}

// localBackend starts the real local backend and returns its handler, or
// skips when the host cannot isolate sandboxes (fails with
// NOX_REQUIRE_ISOLATION=1). mod, when set, adjusts its config.
func localBackend(t *testing.T, token string, mod func(*localbackend.Config)) http.Handler {
	t.Helper()
	cfg := localbackend.Config{
		DataDir:        t.TempDir(),
		Token:          token,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReaperInterval: 200 * time.Millisecond,
		// Limits low enough for the checks of limits to run (an upload
		// above maxUploadBytes must be cheap to send).
		MaxTTL:         2 * time.Hour,
		MaxExecTimeout: 10 * time.Minute,
		MaxUploadBytes: 8 << 20,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := localbackend.New(cfg)
	if err != nil {
		if requireIsolation() {
			t.Fatalf("local backend: %v (NOX_REQUIRE_ISOLATION=1)", err)
		}
		t.Skipf("local backend unavailable here: %v (set NOX_REQUIRE_ISOLATION=1 to fail instead)", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close local backend: %v", err)
		}
	})
	if info := b.Info(); !info.Isolated {
		if requireIsolation() {
			t.Fatalf("local backend runs without isolation (tier %s) (NOX_REQUIRE_ISOLATION=1)", info.Tier)
		}
		t.Skipf("local backend runs without isolation here (tier %s)", info.Tier)
	}
	t.Logf("local backend: isolation tier %s", b.Info().Tier)
	return b.Handler()
}

// TestLocalBackendConforms runs the whole suite against the real local
// backend, the reference implementation.
func TestLocalBackendConforms(t *testing.T) {
	var target string
	srv := httptest.NewServer(localBackend(t, "", func(c *localbackend.Config) { target = egressWorld(t, c) }))
	t.Cleanup(srv.Close)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.EgressTarget = srv.URL, target
	cfg.Parallelism = 3
	cfg.SkipSlow = testing.Short()
	conformancetest.Run(t, cfg)
}

// TestLocalBackendAuth runs the auth checks against the local backend with
// a token.
func TestLocalBackendAuth(t *testing.T) {
	srv := localServer(t, "conformance-token")
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Token = srv.URL, "conformance-token"
	cfg.Run = "^(auth/|health/|info/|sandbox/create$|exec/argv-verbatim$)"
	conformancetest.Run(t, cfg)
}
