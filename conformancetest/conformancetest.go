// Package conformancetest runs the NoxRunner conformance suite (package
// conformance) under go test, one subtest per check. It is the only part of
// the suite that imports package testing, so programs that run the suite
// themselves, such as the nox binary, never link it.
//
//	func TestMyBackend(t *testing.T) {
//		cfg := conformance.NewConfig()
//		cfg.BaseURL = srv.URL
//		conformancetest.Run(t, cfg)
//	}
package conformancetest

import (
	"testing"

	"github.com/noxrunner/nox/conformance"
)

// Run runs the suite as subtests of t, one per check (named by its id),
// against the backend at cfg.BaseURL, the checks of cfg.ExtraChecks
// included: a check that fails is a test error listing every misbehaviour;
// checks the backend lacks the capability for, or whose level is not
// selected, are skipped; parallel-safe checks call t.Parallel, at most
// cfg.Parallelism of them running at once. It fails t at once when cfg or
// a check is invalid or the backend cannot be reached.
func Run(t *testing.T, cfg conformance.Config) {
	t.Helper()
	s, err := conformance.NewSession(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = s.Config()
	t.Logf("conformance: %s at %s, extensions %v, id prefix %s", s.Backend(), cfg.BaseURL, s.Extensions(), cfg.IDPrefix)
	sem := make(chan struct{}, cfg.Parallelism)
	for _, c := range s.Checks() {
		t.Run(c.ID, func(t *testing.T) {
			if why := s.SkipReason(c); why != "" {
				t.Skip(why)
			}
			if c.Parallel {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			res := s.RunCheck(t.Context(), c)
			switch res.Status {
			case conformance.StatusFail:
				t.Errorf("%s (spec: %s %s; see %s):\n%s", c.ID, c.Requirement, c.Spec, c.Anchor, res.Message)
			case conformance.StatusError:
				t.Errorf("suite error in %s:\n%s", c.ID, res.Message)
			case conformance.StatusSkip:
				t.Skip(res.Message)
			}
		})
	}
}
