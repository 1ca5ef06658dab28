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
}

// Report is the outcome of a conformance run.
type Report struct {
	// BaseURL is the backend tested.
	BaseURL string `json:"baseUrl"`
	// Backend is the backend's name and version from GET /v1/info, or
	// "plain v1 backend" when it has no /v1/info.
	Backend string `json:"backend"`
	// Extensions are the extensions the backend advertised.
	Extensions []string `json:"extensions"`
	// Level is the level selection of the run.
	Level Level `json:"level"`
	// IDPrefix is the prefix of every session id the run created.
	IDPrefix string `json:"idPrefix"`
	// Started is when the run began.
	Started time.Time `json:"started"`
	// Duration is how long the whole run took.
	Duration time.Duration `json:"durationNs"`
	// Results holds one entry per check selected by Config.Run, in
	// check order (the suite's own, then Config.ExtraChecks).
	Results []Result `json:"results"`
}

// OK reports whether no check failed or errored. Skipped checks (levels
// not selected, capabilities not advertised) do not count. The nox
// conformance command exits 0 only when OK is true.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if res.Status == StatusFail || res.Status == StatusError {
			return false
		}
	}
	return true
}

// Counts returns how many checks ended in each status.
func (r *Report) Counts() map[Status]int {
	n := map[Status]int{StatusPass: 0, StatusFail: 0, StatusSkip: 0, StatusError: 0}
	for _, res := range r.Results {
		n[res.Status]++
	}
	return n
}

// Failed returns the ids of the checks that failed or errored.
func (r *Report) Failed() []string {
	var ids []string
	for _, res := range r.Results {
		if res.Status == StatusFail || res.Status == StatusError {
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
	return fmt.Sprintf("%s: %d passed, %d failed, %d errors, %d skipped (%d checks, level %s) in %s",
		verdict, n[StatusPass], n[StatusFail], n[StatusError], n[StatusSkip], len(r.Results), r.Level, roundDuration(r.Duration))
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
// failed checks, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "nox conformance: %s (%s)\n", r.BaseURL, r.Backend)
	if len(r.Extensions) > 0 {
		fmt.Fprintf(&b, "extensions: %s\n", strings.Join(r.Extensions, ", "))
	}
	for _, res := range r.Results {
		label := strings.ToUpper(string(res.Status))
		fmt.Fprintf(&b, "%-5s %s", label, res.ID)
		if res.Status != StatusSkip {
			fmt.Fprintf(&b, " (%s)", roundDuration(res.Duration))
		}
		if res.Status == StatusSkip && res.Message != "" {
			fmt.Fprintf(&b, ": %s", firstLine(res.Message))
		}
		b.WriteByte('\n')
		if (res.Status == StatusFail || res.Status == StatusError) && res.Message != "" {
			fmt.Fprintf(&b, "      spec: %s %s\n", res.Requirement, res.Spec)
			if res.Anchor != "" {
				fmt.Fprintf(&b, "      see:  %s\n", res.Anchor)
			}
			for _, line := range strings.Split(strings.TrimRight(res.Message, "\n"), "\n") {
				b.WriteString("      ")
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write text report: %w", err)
	}
	return nil
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
	out := struct {
		*Report
		OK      bool           `json:"ok"`
		Summary map[Status]int `json:"counts"`
	}{r, r.OK(), r.Counts()}
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

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one testsuite "nox
// conformance", one testcase per check (classname: the check's area), with
// failure, error or skipped elements as the status says.
func (r *Report) WriteJUnit(w io.Writer) error {
	n := r.Counts()
	s := junitSuite{
		Name: "nox conformance", Tests: len(r.Results),
		Failures: n[StatusFail], Errors: n[StatusError], Skipped: n[StatusSkip],
		Time: seconds(r.Duration), Timestamp: r.Started.UTC().Format(time.RFC3339),
		Properties: []junitProperty{
			{"baseUrl", r.BaseURL}, {"backend", r.Backend},
			{"extensions", strings.Join(r.Extensions, ",")}, {"level", string(r.Level)},
		},
	}
	for _, res := range r.Results {
		area, _, _ := strings.Cut(res.ID, "/")
		c := junitCase{Name: res.ID, Classname: "conformance." + area, Time: seconds(res.Duration)}
		switch res.Status {
		case StatusFail:
			c.Failure = &junitMessage{Message: firstLine(res.Message), Type: string(res.Level), Text: "spec: " + string(res.Requirement) + " " + res.Spec + "\nsee: " + res.Anchor + "\n" + res.Message}
		case StatusError:
			c.Error = &junitMessage{Message: firstLine(res.Message), Text: res.Message}
		case StatusSkip:
			c.Skipped = &junitMessage{Message: res.Message}
		}
		s.Cases = append(s.Cases, c)
	}
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
