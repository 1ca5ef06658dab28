package conformance_test

import (
	"bytes"
	"maps"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/internal/quirks"
)

// The deviation each departure of internal/quirks shows, with the checks
// it makes fail.
var (
	timestamps = map[string][]string{
		"timestamps": {"sandbox/create", "sandbox/touch-extends-expiry", "sandbox/get", "sandbox/list-paging"},
	}
	unknownSandbox = []string{"sandbox/touch-unknown-404", "sandbox/delete", "exec/unknown-sandbox-404", "files/unknown-sandbox-404"}
	// allQuirks are the deviations of a backend with every departure at
	// once: a plain v1 backend (no /v1/info), so the extension checks are
	// skipped.
	allQuirks = map[string][]string{
		"status:createSandbox:201":         {"sandbox/create"},
		"timestamps":                       {"sandbox/create"},
		"status:touchSandbox:204":          {"sandbox/touch-extends-expiry"},
		"unknown-sandbox":                  unknownSandbox,
		"schema:execInSandbox:/durationMs": {"exec/stdout-stderr"},
		"status:uploadFiles:204":           {"files/upload-gzip"},
		"upload-chunked":                   {"files/upload-chunked"},
	}
)

// TestQuirkyBackend runs the suite against the reference backend behind
// internal/quirks, with every departure at once and with each alone: the
// suite passes every check the departures do not touch, fails each
// deviating check once, and its summary names each departure once.
func TestQuirkyBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite many times")
	}
	t.Parallel()
	withoutTimestamps := maps.Clone(allQuirks)
	delete(withoutTimestamps, "timestamps")
	// The v1 groups every run covers; a departure alone only needs the
	// groups it touches (run), the others being its neighbours' business.
	const v1 = "health|info|auth|sandbox|exec|files|fs|proc"
	cases := []struct {
		name string
		q    quirks.Quirks
		run  string // check groups, | separated
		// deviations maps each deviation the summary must list to the
		// checks it makes fail; no other check may fail.
		deviations map[string][]string
	}{
		{"all, offset and Z", quirks.All(quirks.TimeOffsetAndZ), v1, allQuirks},
		{"all, no zone", quirks.All(quirks.TimeNoZone), v1, allQuirks},
		{"all, epoch seconds", quirks.All(quirks.TimeEpochSeconds), v1, allQuirks},
		{"all, RFC 3339", quirks.All(quirks.TimeRFC3339), v1, withoutTimestamps},
		{"offset and Z", quirks.Quirks{Time: quirks.TimeOffsetAndZ}, "health|sandbox", timestamps},
		{"no zone", quirks.Quirks{Time: quirks.TimeNoZone}, "health|sandbox", timestamps},
		{"epoch seconds", quirks.Quirks{Time: quirks.TimeEpochSeconds}, "health|sandbox", timestamps},
		{"create 201", quirks.Quirks{Create201: true}, "health|sandbox", map[string][]string{"status:createSandbox:201": {"sandbox/create"}}},
		{"upload 204", quirks.Quirks{Upload204: true}, "health|files", map[string][]string{"status:uploadFiles:204": {"files/upload-gzip"}}},
		{"touch 204", quirks.Quirks{Touch204: true}, "health|sandbox", map[string][]string{"status:touchSandbox:204": {"sandbox/touch-extends-expiry"}}},
		{"fractional durationMs", quirks.Quirks{FractionalNumbers: true}, "health|exec", map[string][]string{"schema:execInSandbox:/durationMs": {"exec/stdout-stderr"}}},
		// The backend advertises upload.chunked (the server layer does), so
		// the chunked half of the 413 check runs into the same refusal.
		{"Content-Length only", quirks.Quirks{ContentLengthOnly: true}, "health|files|fs", map[string][]string{"upload-chunked": {"files/upload-chunked", "files/upload-too-large-413", "fs/write-create-replace"}}},
		{"implicit create", quirks.Quirks{ImplicitCreate: true}, v1, map[string][]string{"unknown-sandbox": append(slices.Clone(unknownSandbox), "exec/stream-errors", "fs/unknown-sandbox-404",
			"proc/unknown-sandbox-404", "proc/terminal-errors")}},
		{"no extensions", quirks.Quirks{NoExtensions: true}, v1, nil},
	}
	// The runs mostly wait, so six run at once, outside go test's
	// -parallel limit (more overload a 2-core machine: timing checks then
	// fail for the machine's sake); the subtests then judge their reports.
	reports := make([]*conformance.Report, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i, c := range cases {
		srv := httptest.NewServer(quirks.Wrap(reference{}.handler(t), c.q))
		defer srv.Close()
		cfg := conformance.NewConfig()
		cfg.BaseURL, cfg.SkipSlow, cfg.Parallelism = srv.URL, true, 2
		// The quirks are those of v1 operations' answers; the ports
		// checks' proxied traffic (a HEAD's empty body with its
		// Content-Length) is not theirs to rewrite.
		cfg.Run = "^(" + c.run + ")/"
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i], errs[i] = conformance.RunSuite(t.Context(), cfg)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := reports[i], errs[i]
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			_ = rep.WriteText(&text)
			var fails []string
			for _, checks := range c.deviations {
				fails = append(fails, checks...)
			}
			assertSet(t, "failed checks", rep.Failed(), slices.Compact(slices.Sorted(slices.Values(fails))), text.String())
			var ids []string
			for _, d := range rep.Deviations {
				ids = append(ids, d.ID)
				if len(d.Checks) == 0 || d.Repro == "" || d.Anchor == "" || d.Title == "" {
					t.Errorf("deviation %s is incomplete: %+v", d.ID, d)
				}
				if want, ok := c.deviations[d.ID]; ok {
					assertSet(t, "checks of deviation "+d.ID, d.Checks, want, text.String())
				}
			}
			assertSet(t, "deviations", ids, slices.Collect(maps.Keys(c.deviations)), text.String())
			if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
				t.Errorf("a deviation is listed twice: %q", ids)
			}
			for _, res := range rep.Results {
				if res.Status == conformance.StatusError {
					t.Errorf("%s: status error (the suite broke): %s", res.ID, res.Message)
				}
			}
			if c.name == "all, offset and Z" {
				t.Logf("report of a backend with every quirk:\n%s", text.String())
			}
		})
	}
}

// assertSet fails t unless got and want hold the same strings.
func assertSet(t *testing.T, what string, got, want []string, report string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q\nreport:\n%s", what, got, want, report)
	}
}

// httptestQuirky serves the reference backend with every quirk, until t
// ends.
func httptestQuirky(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(quirks.Wrap(reference{}.handler(t), quirks.All(quirks.TimeOffsetAndZ)))
	t.Cleanup(srv.Close)
	return srv
}
