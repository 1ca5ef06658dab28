package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

// The statuses of a check.
const (
	// StatusPass means the backend behaved as the contract says.
	StatusPass Status = "pass"
	// StatusFail means the backend misbehaved; Result.Message says how.
	StatusFail Status = "fail"
	// StatusSkip means the check did not run (level not selected, capability
	// not advertised, slow checks skipped, ...); Result.Message says why.
	StatusSkip Status = "skip"
	// StatusError means the suite itself broke (backend unreachable, run
	// cancelled), so the check could not judge the backend.
	StatusError Status = "error"
)

// Result is the outcome of one check in a Report.
type Result struct {
	// ID is the check's id.
	ID string `json:"id"`
	// Level is the check's level.
	Level Level `json:"level"`
	// Requirement is the strength of the requirement the check tests.
	Requirement Requirement `json:"requirement"`
	// Operations are the contract operations the check covers.
	Operations []string `json:"operations,omitempty"`
	// Extensions are the extensions the check covers beyond those its
	// operations belong to.
	Extensions []string `json:"extensions,omitempty"`
	// Capability is the extension the check needs ("" for plain v1).
	Capability string `json:"capability,omitempty"`
	// Spec is the behaviour the check tests.
	Spec string `json:"spec"`
	// Anchor points to the section of the specification the check tests.
	Anchor string `json:"anchor,omitempty"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Duration is how long the check ran, cleanup included.
	Duration time.Duration `json:"durationNs"`
	// Message describes the failure or error (requests and responses
	// included), or why the check was skipped. Empty on pass.
	Message string `json:"message,omitempty"`
	// OutsideProfile marks a skip of a check outside the run's profile
	// (level not selected, extension not advertised); a certified run
	// fails on every other skip.
	OutsideProfile bool `json:"outsideProfile,omitempty"`
	// Deviations are the ids of the deviations (Report.Deviations) that
	// made the check fail.
	Deviations []string `json:"deviations,omitempty"`
	// Notes are measurements and observations the check recorded (for
	// example a latency it measured), whatever its status.
	Notes []string `json:"notes,omitempty"`

	// found are those deviations, as this check saw them.
	found []Deviation
}

// blocksCertification reports whether r is a skip that fails a certified
// run: a skip inside the profile.
func (r Result) blocksCertification() bool { return r.Status == StatusSkip && !r.OutsideProfile }

// Report is the outcome of a conformance run.
type Report struct {
	// BaseURL is the backend tested.
	BaseURL string `json:"baseUrl"`
	// Backend is the backend's name and version from GET /v1/info, or
	// "plain v1 backend" when it has no /v1/info.
	Backend string `json:"backend"`
	// SpecVersion is the version of the contract the run tested
	// (info.version of api/openapi.yaml).
	SpecVersion string `json:"specVersion"`
	// Extensions are the extensions the backend advertised.
	Extensions []string `json:"extensions"`
	// Level is the level selection of the run.
	Level Level `json:"level"`
	// Profile is the profile of the run ("" for level minimum).
	Profile Profile `json:"profile,omitempty"`
	// Certify is set for a certified run, which fails on a skip inside
	// its profile.
	Certify bool `json:"certify"`
	// IDPrefix is the prefix of every session id the run created.
	IDPrefix string `json:"idPrefix"`
	// Started is when the run began.
	Started time.Time `json:"started"`
	// Duration is how long the whole run took.
	Duration time.Duration `json:"durationNs"`
	// Results holds one entry per check selected by Config.Run, in
	// check order (the suite's own, then Config.ExtraChecks).
	Results []Result `json:"results"`
	// Deviations is the deviation summary: each way the backend departs
	// from the contract once, with the checks it made fail.
	Deviations []Deviation `json:"deviations"`
}

// OK reports whether no check failed or errored and, in a certified run,
// no check of the profile was skipped. Other skipped checks (levels not
// selected, capabilities not advertised) do not count. The nox
// conformance command exits 0 only when OK is true.
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// certifySkips counts the skips that fail a certified run.
func (r *Report) certifySkips() int {
	n := 0
	for _, res := range r.Results {
		if r.Certify && res.blocksCertification() {
			n++
		}
	}
	return n
}

// Counts returns how many checks ended in each status.
func (r *Report) Counts() map[Status]int {
	n := map[Status]int{StatusPass: 0, StatusFail: 0, StatusSkip: 0, StatusError: 0}
	for _, res := range r.Results {
		n[res.Status]++
	}
	return n
}

// Failed returns the ids of the checks that failed or errored, and in a
// certified run those of the profile that were skipped.
func (r *Report) Failed() []string {
	var ids []string
	for _, res := range r.Results {
		if res.Status == StatusFail || res.Status == StatusError || r.Certify && res.blocksCertification() {
			ids = append(ids, res.ID)
		}
	}
	return ids
}

// Summary returns the one-line summary the text report ends with.
func (r *Report) Summary() string {
	n := r.Counts()
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	sel := "level " + string(r.Level)
	if r.Profile != "" {
		sel = "profile " + string(r.Profile)
	}
	if r.Certify {
		verdict = "CERTIFIED"
		if !r.OK() {
			verdict = "NOT CERTIFIED"
		}
		sel += ", certified run"
		if k := r.certifySkips(); k > 0 {
			sel += fmt.Sprintf(", %d skips of the profile count as failures", k)
		}
	}
	if r.SpecVersion != "" {
		sel += ", spec " + r.SpecVersion
	}
	return fmt.Sprintf("%s: %d passed, %d failed, %d errors, %d skipped (%d checks, %s; %d deviations) in %s",
		verdict, n[StatusPass], n[StatusFail], n[StatusError], n[StatusSkip], len(r.Results), sel, len(r.Deviations), roundDuration(r.Duration))
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	default:
		return d.Round(10 * time.Millisecond)
	}
}

// WriteText writes the report for people: a header, one line per check
// ("PASS  exec/argv-verbatim (12ms)"), the failure details indented under
// failed checks, the deviation summary and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "nox conformance: %s (%s)\n", r.BaseURL, r.Backend)
	if r.SpecVersion != "" {
		fmt.Fprintf(&b, "spec:       NoxRunner contract %s\n", r.SpecVersion)
	}
	ext := "none (a plain v1 backend)"
	if len(r.Extensions) > 0 {
		ext = strings.Join(r.Extensions, ", ")
	}
	fmt.Fprintf(&b, "extensions: %s\n", ext)
	for _, res := range r.Results {
		writeResult(&b, res, r.Certify)
	}
	writeDeviations(&b, r.Deviations)
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write text report: %w", err)
	}
	return nil
}

// WriteSummary writes the end of the text report: the deviation summary
// and the summary line.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	writeDeviations(&b, r.Deviations)
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	if _, err := io.WriteString(w, strings.TrimLeft(b.String(), "\n")); err != nil {
		return fmt.Errorf("write report summary: %w", err)
	}
	return nil
}

// writeResult writes one check's lines of the text report.
func writeResult(b *strings.Builder, res Result, certify bool) {
	label := strings.ToUpper(string(res.Status))
	fmt.Fprintf(b, "%-5s %s", label, res.ID)
	if res.Status != StatusSkip {
		fmt.Fprintf(b, " (%s)", roundDuration(res.Duration))
	}
	if res.Status == StatusSkip && res.Message != "" {
		fmt.Fprintf(b, ": %s", firstLine(res.Message))
		if certify && res.blocksCertification() {
			b.WriteString(" [fails the certified run]")
		}
	}
	b.WriteByte('\n')
	for _, n := range res.Notes {
		fmt.Fprintf(b, "      note: %s\n", n)
	}
	if (res.Status == StatusFail || res.Status == StatusError) && res.Message != "" {
		fmt.Fprintf(b, "      spec: %s %s\n", res.Requirement, res.Spec)
		if res.Anchor != "" {
			fmt.Fprintf(b, "      see:  %s\n", res.Anchor)
		}
		for _, line := range strings.Split(strings.TrimRight(res.Message, "\n"), "\n") {
			b.WriteString("      ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
}

// writeDeviations writes the deviation summary of the text report.
func writeDeviations(b *strings.Builder, ds []Deviation) {
	if len(ds) == 0 {
		return
	}
	fmt.Fprintf(b, "\nDeviations (%d, each listed once):\n", len(ds))
	for i, d := range ds {
		fmt.Fprintf(b, "%3d. %-6s %s [%s]\n", i+1, d.Requirement, d.Title, d.ID)
		fmt.Fprintf(b, "     clause: %s\n", d.Anchor)
		fmt.Fprintf(b, "     checks: %s\n", strings.Join(d.Checks, ", "))
		if d.Repro != "" {
			fmt.Fprintf(b, "     repro:  %s\n", d.Repro)
		}
	}
	b.WriteByte('\n')
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteJSON writes the report as one indented JSON object (the Report
// fields; durations in nanoseconds) plus an "ok" field.
func (r *Report) WriteJSON(w io.Writer) error {
	type skip struct {
		ID             string `json:"id"`
		Reason         string `json:"reason"`
		OutsideProfile bool   `json:"outsideProfile"`
	}
	skips := []skip{}
	for _, res := range r.Results {
		if res.Status == StatusSkip {
			skips = append(skips, skip{res.ID, res.Message, res.OutsideProfile})
		}
	}
	out := struct {
		*Report
		OK      bool           `json:"ok"`
		Summary map[Status]int `json:"counts"`
		Skips   []skip         `json:"skips"`
	}{r, r.OK(), r.Counts(), skips}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// junitCaseOf is the testcase of one result; a skip that fails a
// certified run is a failure.
func junitCaseOf(res Result, certify bool) junitCase {
	area, _, _ := strings.Cut(res.ID, "/")
	c := junitCase{Name: res.ID, Classname: "conformance." + area, Time: seconds(res.Duration)}
	switch {
	case res.Status == StatusFail:
		text := "spec: " + string(res.Requirement) + " " + res.Spec + "\nsee: " + res.Anchor + "\n"
		if len(res.Deviations) > 0 {
			text += "deviations: " + strings.Join(res.Deviations, ", ") + "\n"
		}
		c.Failure = &junitMessage{Message: firstLine(res.Message), Type: string(res.Level), Text: text + res.Message}
	case res.Status == StatusError:
		c.Error = &junitMessage{Message: firstLine(res.Message), Text: res.Message}
	case res.Status == StatusSkip && certify && res.blocksCertification():
		c.Failure = &junitMessage{Message: "skipped in a certified run: " + res.Message, Type: "certify", Text: res.Message}
	case res.Status == StatusSkip:
		reason := res.Message
		if res.OutsideProfile {
			reason += " (outside the profile)"
		}
		c.Skipped = &junitMessage{Message: reason}
	}
	return c
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one testsuite "nox
// conformance", one testcase per check (classname: the check's area), with
// failure, error or skipped elements as the status says.
func (r *Report) WriteJUnit(w io.Writer) error {
	n := r.Counts()
	blocking := r.certifySkips()
	s := junitSuite{
		Name: "nox conformance", Tests: len(r.Results),
		Failures: n[StatusFail] + blocking, Errors: n[StatusError], Skipped: n[StatusSkip] - blocking,
		Time: seconds(r.Duration), Timestamp: r.Started.UTC().Format(time.RFC3339),
		Properties: []junitProperty{
			{"baseUrl", r.BaseURL}, {"backend", r.Backend}, {"specVersion", r.SpecVersion},
			{"extensions", strings.Join(r.Extensions, ",")}, {"level", string(r.Level)},
			{"profile", string(r.Profile)}, {"certify", fmt.Sprint(r.Certify)},
		},
	}
	for _, d := range r.Deviations {
		s.Properties = append(s.Properties, junitProperty{"deviation", fmt.Sprintf("%s %s: %s (checks: %s; repro: %s)",
			d.Requirement, d.ID, d.Title, strings.Join(d.Checks, ", "), d.Repro)})
	}
	for _, res := range r.Results {
		s.Cases = append(s.Cases, junitCaseOf(res, r.Certify))
	}
	var dev strings.Builder
	writeDeviations(&dev, r.Deviations)
	s.SystemOut = strings.TrimSpace(dev.String())
	doc := junitSuites{Name: "nox conformance", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped, Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

// Formats returns the report formats Write accepts.
func Formats() []string { return []string{"text", "json", "junit"} }

// Write writes the report in format "text", "json" or "junit" (the values
// of nox conformance --format).
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "text", "":
		return r.WriteText(w)
	case "json":
		return r.WriteJSON(w)
	case "junit":
		return r.WriteJUnit(w)
	}
	return fmt.Errorf("report format %q: want text, json or junit", format)
}
