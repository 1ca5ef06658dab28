package conformance_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"slices"
	"strings"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
)

func TestProfiles(t *testing.T) {
	t.Parallel()
	srv := reference{}.serve(t)
	run := "^(health/ok|exec/argv-verbatim|info/shape|auth/bearer-required)$"
	type outcome struct {
		status  conformance.Status
		outside bool
	}
	pass := outcome{conformance.StatusPass, false}
	for _, tt := range []struct {
		name    string
		profile conformance.Profile
		level   conformance.Level
		want    map[string]outcome
		report  string
	}{
		{"core", conformance.ProfileCore, "", map[string]outcome{
			"health/ok": pass, "exec/argv-verbatim": pass,
			"info/shape":           {conformance.StatusSkip, true},
			"auth/bearer-required": {conformance.StatusSkip, true},
		}, "profile core"},
		{"extended", conformance.ProfileExtended, "", map[string]outcome{
			"health/ok": pass, "exec/argv-verbatim": pass, "info/shape": pass,
			"auth/bearer-required": {conformance.StatusSkip, true}, // not advertised: outside
		}, "profile extended"},
		{"all", conformance.ProfileAll, "", map[string]outcome{
			"health/ok": pass, "exec/argv-verbatim": pass, "info/shape": pass,
			"auth/bearer-required": {conformance.StatusSkip, false}, // not advertised: inside
		}, "profile all"},
		{"level recommended is core", "", conformance.LevelRecommended, map[string]outcome{
			"health/ok": pass, "info/shape": {conformance.StatusSkip, true},
		}, "profile core"},
		{"level minimum", "", conformance.LevelMinimum, map[string]outcome{
			"health/ok": pass, "info/shape": {conformance.StatusSkip, true},
		}, "level minimum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := conformance.NewConfig()
			cfg.BaseURL, cfg.Run, cfg.Profile = srv.URL, run, tt.profile
			if tt.level != "" {
				cfg.Level = tt.level
			}
			rep, err := conformance.RunSuite(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rep.Results {
				w, ok := tt.want[r.ID]
				if ok && (r.Status != w.status || r.OutsideProfile != w.outside) {
					t.Errorf("%s: %s (outside the profile: %v), want %s (%v): %s", r.ID, r.Status, r.OutsideProfile, w.status, w.outside, r.Message)
				}
			}
			if !rep.OK() {
				t.Errorf("OK() = false with only passes and skips (not certifying)")
			}
			if !strings.Contains(rep.Summary(), tt.report) {
				t.Errorf("summary %q does not name %q", rep.Summary(), tt.report)
			}
		})
	}
}

// TestCertify certifies the reference backend with a limit of concurrent
// commands too large to saturate cheaply: the one skip inside the profile
// fails the run; the skips outside it (auth.bearer not advertised, memory
// limits declared unenforced) do not.
func TestCertify(t *testing.T) {
	if testing.Short() {
		t.Skip("a certified run runs the slow checks")
	}
	t.Parallel()
	srv := reference{}.serve(t)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Certify = srv.URL, true
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if got := rep.Failed(); !slices.Equal(got, []string{"exec/saturated-503"}) || rep.OK() {
		t.Errorf("certified run: OK %v, failed %q; want only exec/saturated-503 (skipped inside the profile)\n%s", rep.OK(), got, text.String())
	}
	skips := map[string]bool{}
	for _, r := range rep.Results {
		if r.Status == conformance.StatusSkip {
			skips[r.ID] = r.OutsideProfile
		}
	}
	want := map[string]bool{"exec/saturated-503": false, "auth/bearer-required": true, "exec/oom-killed": true}
	for _, c := range conformance.Checks() {
		if c.Capability == api.ExtNetworkEgress { // the reference cannot enforce egress
			want[c.ID] = true
		}
	}
	if !mapsEqual(skips, want) {
		t.Errorf("skips (id: outside the profile) %v, want %v", skips, want)
	}
	for _, s := range []string{
		"SKIP  exec/saturated-503: limits.maxConcurrentExecs 64 is above 8: too costly to saturate [fails the certified run]",
		"NOT CERTIFIED: ", "1 skips of the profile count as failures", "spec 1.1.0",
		"spec:       NoxRunner contract 1.1.0", "extensions: info, sandboxes.get, sandboxes.list, exec.stream, exec.flags, upload.chunked",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}
	checkWriters(t, rep)
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReportsRecordTheRun checks what the JSON and JUnit reports record:
// the spec version, the profile, the extensions the backend claims, every
// skip with its reason, and the deviation summary.
func TestReportsRecordTheRun(t *testing.T) {
	t.Parallel()
	srv := httptestQuirky(t)
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Profile = srv.URL, conformance.ProfileAll
	cfg.Run = "^(health/ok|sandbox/create|sandbox/touch-extends-expiry|info/shape)$"
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkJSONRecord(t, rep)
	checkJUnitRecord(t, rep)
}

// checkJSONRecord checks the JSON report of TestReportsRecordTheRun.
func checkJSONRecord(t *testing.T, rep *conformance.Report) {
	t.Helper()
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var j struct {
		SpecVersion string   `json:"specVersion"`
		Profile     string   `json:"profile"`
		Certify     bool     `json:"certify"`
		Extensions  []string `json:"extensions"`
		Skips       []struct {
			ID             string `json:"id"`
			Reason         string `json:"reason"`
			OutsideProfile bool   `json:"outsideProfile"`
		} `json:"skips"`
		Deviations []conformance.Deviation `json:"deviations"`
		Results    []struct {
			ID         string   `json:"id"`
			Deviations []string `json:"deviations"`
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.SpecVersion != "1.1.0" || j.Profile != "all" || j.Certify || j.Extensions == nil || len(j.Extensions) != 0 {
		t.Errorf("JSON report: specVersion %q profile %q certify %v extensions %q", j.SpecVersion, j.Profile, j.Certify, j.Extensions)
	}
	if len(j.Skips) != 1 || j.Skips[0].ID != "info/shape" || j.Skips[0].Reason != `backend does not advertise extension "info"` || j.Skips[0].OutsideProfile {
		t.Errorf("JSON report skips: %+v", j.Skips)
	}
	var ids []string
	for _, d := range j.Deviations {
		ids = append(ids, d.ID)
		if d.Requirement != conformance.Must || d.Repro == "" || d.Anchor == "" || len(d.Checks) != 1 {
			t.Errorf("JSON deviation %+v", d)
		}
	}
	assertSet(t, "JSON deviations", ids, []string{"status:createSandbox:201", "timestamps", "status:touchSandbox:204"}, js.String())
	for _, r := range j.Results {
		if r.ID == "sandbox/create" && !slices.Equal(r.Deviations, []string{"status:createSandbox:201", "timestamps"}) {
			t.Errorf("JSON result of sandbox/create names deviations %q", r.Deviations)
		}
	}
}

// checkJUnitRecord checks the JUnit report of TestReportsRecordTheRun.
func checkJUnitRecord(t *testing.T, rep *conformance.Report) {
	t.Helper()
	var ju bytes.Buffer
	if err := rep.WriteJUnit(&ju); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suite struct {
			Properties []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
			SystemOut string `xml:"system-out"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	props := map[string][]string{}
	for _, p := range suites.Suite.Properties {
		props[p.Name] = append(props[p.Name], p.Value)
	}
	if props["specVersion"][0] != "1.1.0" || props["profile"][0] != "all" || props["certify"][0] != "false" || len(props["deviation"]) != 3 {
		t.Errorf("JUnit properties: %v", props)
	}
	for _, c := range suites.Suite.Cases {
		if c.Name == "info/shape" && (c.Skipped == nil || c.Skipped.Message != `backend does not advertise extension "info"`) {
			t.Errorf("JUnit skip of info/shape: %+v", c.Skipped)
		}
	}
	if !strings.Contains(suites.Suite.SystemOut, "Deviations (3, each listed once):") {
		t.Errorf("JUnit system-out lacks the deviation summary:\n%s", suites.Suite.SystemOut)
	}
}
