package conformance_test

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/localbackend"
)

// TestNetChecksCatchOpenedRanges runs the network checks against a local
// backend whose operator opened the link-local range, behind which the
// test's world serves a metadata server: exactly net/metadata-unreachable
// fails.
func TestNetChecksCatchOpenedRanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the network checks' world needs root")
	}
	t.Parallel()
	var target string
	srv := httptest.NewServer(localBackend(t, "", func(c *localbackend.Config) {
		target = egressWorld(t, c)
		c.EgressOpen = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}
	}))
	t.Cleanup(srv.Close)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.EgressTarget = srv.URL, target
	cfg.Run, cfg.Profile = "^net/", conformance.ProfileAll
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Failed(); !slices.Equal(got, []string{"net/metadata-unreachable"}) {
		for _, r := range rep.Results {
			t.Logf("%s %s: %s", r.Status, r.ID, r.Message)
		}
		t.Errorf("failed %q, want only net/metadata-unreachable", got)
	}
}
