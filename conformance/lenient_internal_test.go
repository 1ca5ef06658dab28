package conformance

import (
	"encoding/json"
	"testing"
	"time"
)

func TestLenientDecoding(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 12, 2, 1, 17, 27, 883767000, time.UTC)
	for _, raw := range []string{
		`"2026-12-02T01:17:27.883767Z"`,
		`"2026-12-02T01:17:27.883767+00:00"`,
		`"2026-12-02T01:17:27.883767+00:00Z"`, // Python's isoformat() + "Z"
		`"2026-12-02T03:17:27.883767+02:00"`,
		`"2026-12-02T01:17:27.883767"`, // no zone: UTC
		`"2026-12-02 01:17:27.883767"`,
		`1796174247.883767`,   // epoch seconds
		`"1796174247.883767"`, // as a string
		`1796174247883.767`,   // epoch milliseconds
	} {
		var v struct {
			T lenientTime `json:"t"`
		}
		if err := json.Unmarshal([]byte(`{"t":`+raw+`}`), &v); err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if d := v.T.Sub(want); d < -time.Millisecond || d > time.Millisecond || v.T.Raw != raw {
			t.Errorf("%s: %s (raw %s), want %s", raw, v.T.Time, v.T.Raw, want)
		}
	}
	var bad struct {
		T lenientTime `json:"t"`
	}
	if err := json.Unmarshal([]byte(`{"t":"next tuesday"}`), &bad); err != nil || !bad.T.IsZero() || bad.T.Raw != `"next tuesday"` {
		t.Errorf("unreadable timestamp: %v, %+v; want the zero time and the raw text", err, bad.T)
	}
	var r lenientExecResult
	if err := json.Unmarshal([]byte(`{"exitCode":2.0,"stdout":"x","durationMs":1.5,"extra":true}`), &r); err != nil {
		t.Fatal(err)
	}
	if res := r.result(); res.ExitCode != 2 || res.DurationMs != 1 || res.Stdout != "x" || res.TimedOut != nil {
		t.Errorf("lenient exec result: %+v", res)
	}
}

func TestWithoutIndexes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/items/3/expiresAt": "/items/expiresAt", "/durationMs": "/durationMs", "/": "/"} {
		if got := withoutIndexes(in); got != want {
			t.Errorf("withoutIndexes(%q) = %q, want %q", in, got, want)
		}
	}
}
