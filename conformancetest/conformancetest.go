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
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/noxrunner/nox/conformance"
)

// Run runs the suite as subtests of t, one per check (named by its id),
// against the backend at cfg.BaseURL, the checks of cfg.ExtraChecks
// included: a check that fails is a test error listing every misbehaviour;
// checks outside the run's profile (level not selected, capability not
// advertised) are skipped, and so are checks that cannot judge the backend
// unless cfg.Certify is set, in which case such a skip is a test error;
// parallel-safe checks call t.Parallel, at most cfg.Parallelism of them
// running at once. When the checks are done, t logs the deviation summary
// (each deviation once, with the checks it affected). It fails t at once
// when cfg or a check is invalid or the backend cannot be reached.
func Run(t *testing.T, cfg conformance.Config) {
	t.Helper()
	s, err := conformance.NewSession(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = s.Config()
	t.Logf("conformance: %s at %s, spec %s, profile %q, extensions %v, id prefix %s",
		s.Backend(), cfg.BaseURL, s.SpecVersion(), cfg.Profile, s.Extensions(), cfg.IDPrefix)
	checks := s.Checks()
	var mu sync.Mutex
	results := make([]*conformance.Result, len(checks)) // in check order
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		logDeviations(t, results)
	})
	sem := make(chan struct{}, cfg.Parallelism)
	for i, c := range checks {
		t.Run(c.ID, func(t *testing.T) {
			if why := s.SkipReason(c); why != "" {
				if cfg.Certify && !s.OutsideProfile(c) {
					t.Fatalf("%s skipped in a certified run: %s", c.ID, why)
				}
				t.Skip(why)
			}
			if c.Parallel {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			res := s.RunCheck(t.Context(), c)
			mu.Lock()
			results[i] = &res
			mu.Unlock()
			report(t, c, res, cfg.Certify)
		})
	}
}

// report turns one check's result into the subtest's outcome.
func report(t *testing.T, c conformance.Check, res conformance.Result, certify bool) {
	t.Helper()
	for _, n := range res.Notes {
		t.Logf("note: %s", n)
	}
	switch res.Status {
	case conformance.StatusFail:
		t.Errorf("%s (spec: %s %s; see %s; deviations %v):\n%s", c.ID, c.Requirement, c.Spec, c.Anchor, res.Deviations, res.Message)
	case conformance.StatusError:
		t.Errorf("suite error in %s:\n%s", c.ID, res.Message)
	case conformance.StatusSkip:
		if certify && !res.OutsideProfile {
			t.Errorf("%s skipped in a certified run: %s", c.ID, res.Message)
			return
		}
		t.Skip(res.Message)
	}
}

// logDeviations logs the deviation summary of results.
func logDeviations(t *testing.T, results []*conformance.Result) {
	var ran []conformance.Result
	for _, r := range results {
		if r != nil {
			ran = append(ran, *r)
		}
	}
	devs := conformance.Summarize(ran)
	if len(devs) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "deviations (%d, each listed once):\n", len(devs))
	for _, d := range devs {
		fmt.Fprintf(&b, "%s %s [%s]\n  clause: %s\n  checks: %s\n  repro:  %s\n",
			d.Requirement, d.Title, d.ID, d.Anchor, strings.Join(d.Checks, ", "), d.Repro)
	}
	t.Log(b.String())
}
