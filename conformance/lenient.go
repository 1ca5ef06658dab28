package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/lenient"
)

// The set-up steps of checks read answers leniently, as the Python
// NoxRunner client does: any timestamp form real backends send, numbers
// with a fraction for integers, missing fields as zero values. Whether an
// answer has the contract's exact form is judged by the checks of its
// operation, not by every check that needs a sandbox.

// lenientTime is a timestamp in any form seen in real backends: RFC 3339,
// RFC 3339 with a redundant Z after the offset, without a zone (taken as
// UTC), or epoch seconds (a number or a numeric string). Anything else
// decodes as the zero time; Raw keeps the text.
type lenientTime struct {
	time.Time
	Raw string
}

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (t *lenientTime) UnmarshalJSON(b []byte) error {
	t.Raw = string(b)
	t.Time = time.Time{}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = string(b) // a number
	}
	t.Time, _ = parseTimestamp(s)
	return nil
}

// parseTimestamp parses s leniently (see lenientTime): epoch
// milliseconds (a number above 1e11), then every form lenient.ParseTimestamp
// reads.
func parseTimestamp(s string) (time.Time, bool) {
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f > 1e11 && !math.IsInf(f, 0) {
		ms := f / 1000
		sec, frac := math.Modf(ms)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	return lenient.ParseTimestamp(s)
}

// lenientInt is an integer that may arrive with a fraction (1.5) or as a
// numeric string; the fraction is dropped.
type lenientInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *lenientInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = lenientInt(f)
	return nil
}

// decodeLenient decodes x's JSON body into v; an empty body leaves v as
// it is.
func decodeLenient(x *Exchange, v any) error {
	if len(bytes.TrimSpace(x.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(x.Body, v); err != nil {
		return ownFinding(x, aspectBody, bodyExcerpt(x), "a JSON body", fmt.Errorf("body is not the expected JSON: %w\n%s", err, x))
	}
	return nil
}

// lenientExecResult is an ExecResult read leniently.
type lenientExecResult struct {
	ExitCode        lenientInt `json:"exitCode"`
	Stdout          string     `json:"stdout"`
	Stderr          string     `json:"stderr"`
	DurationMs      lenientInt `json:"durationMs"`
	TimedOut        *bool      `json:"timedOut"`
	StdoutTruncated *bool      `json:"stdoutTruncated"`
	StderrTruncated *bool      `json:"stderrTruncated"`
	OomKilled       *bool      `json:"oomKilled"`
}

func (r lenientExecResult) result() *noxapi.ExecResult {
	return &noxapi.ExecResult{
		ExitCode: int32(r.ExitCode), Stdout: r.Stdout, Stderr: r.Stderr, DurationMs: int64(r.DurationMs),
		TimedOut: r.TimedOut, StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated, OomKilled: r.OomKilled,
	}
}

// lenientCreate is a CreateSandboxResult or TouchResult read leniently.
type lenientCreate struct {
	PodName   string      `json:"podName"`
	ExpiresAt lenientTime `json:"expiresAt"`
}

// lenientStatus is a SandboxStatus read leniently.
type lenientStatus struct {
	SessionID    string      `json:"sessionId"`
	PodName      string      `json:"podName"`
	State        string      `json:"state"`
	CreatedAt    lenientTime `json:"createdAt"`
	LastActiveAt lenientTime `json:"lastActiveAt"`
	ExpiresAt    lenientTime `json:"expiresAt"`
	TTLSeconds   lenientInt  `json:"ttlSeconds"`
	Limits       *struct {
		Unenforced []string `json:"unenforced"`
	} `json:"limits"`
}

func (s lenientStatus) status() *noxapi.SandboxStatus {
	st := &noxapi.SandboxStatus{
		SessionID: s.SessionID, PodName: s.PodName, State: noxapi.SandboxStatusState(s.State),
		CreatedAt: s.CreatedAt.Time, LastActiveAt: s.LastActiveAt.Time, ExpiresAt: s.ExpiresAt.Time, TTLSeconds: int32(s.TTLSeconds),
	}
	if s.Limits != nil {
		st.Limits = &noxapi.ResourceLimits{Unenforced: s.Limits.Unenforced}
	}
	return st
}

// lenientList is a SandboxList read leniently.
type lenientList struct {
	Items         []lenientStatus `json:"items"`
	NextPageToken *string         `json:"nextPageToken"`
}
