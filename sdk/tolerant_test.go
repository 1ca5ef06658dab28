package sdk

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 12, 2, 1, 17, 27, 883767000, time.UTC)
	whole := want.Truncate(time.Second)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-02T01:17:27.883767Z", want},
		{"2026-12-02T01:17:27.883767+00:00", want},
		{"2026-12-02T01:17:27.883767+00:00Z", want}, // Python isoformat() + "Z"
		{"2026-12-02T03:17:27.883767+02:00Z", want},
		{"2026-12-02T01:17:27.883767", want}, // no zone: UTC
		{"2026-12-02 01:17:27.883767", want}, // str(datetime)
		{"2026-12-02 01:17:27.883767+00:00", want},
		{"2026-12-02t01:17:27.883767z", want},
		{"2026-12-02T01:17:27.883767+0000", want},
		{" 2026-12-02T01:17:27Z ", whole},
		{"2026-12-02T01:17:27", whole},
		{"1796174247.883767", want}, // epoch seconds
		{"1796174247", whole},
		{"1.796174247883767e9", want.Round(time.Microsecond)},
		{"0", time.Unix(0, 0).UTC()},
		{"-1.5", time.Unix(-2, 5e8).UTC()},
	} {
		got, ok := parseTimestamp(tc.in)
		if !ok || !got.Round(time.Microsecond).Equal(tc.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{"", "tomorrow", "2026-13-02T01:17:27Z", "2026-12-02", "12:00:00", "1e300", "NaN",
		"-inf", "99999999999999", "10000-01-01T00:00:00Z", "2026-12-02T01:17:27+00:00ZZ", "0x10"} {
		if got, ok := parseTimestamp(in); ok {
			t.Errorf("parseTimestamp(%q) = %v, want no timestamp", in, got)
		}
	}
}

func TestParseInteger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"12", 12, true}, {"-3", -3, true}, {"+4", 4, true}, {"1.5", 2, true}, {"0.0", 0, true},
		{"-1.5", -2, true}, {"2.4999", 2, true}, {"1e3", 1000, true}, {"1E-2", 0, true}, {" 7 ", 7, true},
		{"9223372036854775807", math.MaxInt64, true}, {"9223372036854775808", 0, false}, {"1e19", 0, false},
		{"", 0, false}, {"x", 0, false}, {"NaN", 0, false}, {"Inf", 0, false}, {"0x10", 0, false},
		{"1_000", 0, false}, {"true", 0, false},
	} {
		got, ok := parseInteger(tc.in, math.MinInt64, math.MaxInt64)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseInteger(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := parseInteger("2147483648", math.MinInt32, math.MaxInt32); ok {
		t.Error("2^31 accepted for an int32")
	}
}

func TestDecodeModel(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 12, 2, 1, 17, 27, 0, time.UTC)
	for _, body := range []string{
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27Z"}`,
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27.000000+00:00Z","extra":{"x":[1]}}`,
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27"}`,
		`{"podName":"p","expiresAt":1796174247}`,
		`{"podName":"p","expiresAt":"1796174247.0"}`,
		`{"PodName":"p","ExpiresAt":1796174247}`,
	} {
		var g noxapi.CreateSandboxResult
		unparsed, err := decodeModel([]byte(body), &g)
		if err != nil || unparsed != nil || g.PodName != "p" || !g.ExpiresAt.Equal(exp) {
			t.Errorf("%s: %+v, unparsed %v, err %v", body, g, unparsed, err)
		}
	}

	var g noxapi.ExecResult
	_, err := decodeModel([]byte(`{"exitCode":0.0,"stdout":"x","stderr":"","durationMs":1.5,"timedOut":false,"new":1}`), &g)
	if err != nil || g.ExitCode != 0 || g.DurationMs != 2 || g.Stdout != "x" || g.TimedOut == nil {
		t.Errorf("fractions: %+v %v", g, err)
	}
	_, err = decodeModel([]byte(`{"exitCode":"3","stdout":"","stderr":"","durationMs":"7"}`), &g)
	if err != nil || g.ExitCode != 3 || g.DurationMs != 7 || g.TimedOut != nil {
		t.Errorf("numeric strings: %+v %v", g, err)
	}
	for _, bad := range []string{`{"exitCode":2147483648.5}`, `{"exitCode":true}`, `{"stdout":5}`, `[`, ``} {
		if _, err := decodeModel([]byte(bad), &g); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}

	var list noxapi.SandboxList
	unparsed, err := decodeModel([]byte(`{"items":[{"sessionId":"a","podName":"p","state":"ready","createdAt":"soon",
		"lastActiveAt":1796174247,"expiresAt":null,"ttlSeconds":60.0}]}`), &list)
	if err != nil || len(list.Items) != 1 || list.Items[0].TTLSeconds != 60 || !list.Items[0].LastActiveAt.Equal(exp) {
		t.Fatalf("list: %+v %v", list, err)
	}
	if fmt.Sprint(unparsed) != `map[items.0.createdAt:"soon"]` {
		t.Errorf("unparsed %v", unparsed)
	}
	st := fromGenStatus(&list.Items[0], unparsedUnder(unparsed, "items.0."))
	if fmt.Sprint(st.Unparsed) != `map[createdAt:"soon"]` || !st.CreatedAt.IsZero() || !st.ExpiresAt.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestTimedOutDerived(t *testing.T) {
	t.Parallel()
	r := &noxapi.ExecResult{ExitCode: 124}
	if !fromGenExec(r, true).TimedOut || fromGenExec(r, false).TimedOut {
		t.Error("TimedOut not derived from exit code 124 as asked")
	}
	f := false
	r.TimedOut = &f
	if fromGenExec(r, true).TimedOut {
		t.Error("a reported timedOut false was overridden")
	}
	c, err := New("http://nox.invalid")
	assertNoErr(t, err)
	assertEq(t, "no info: derive", c.deriveTimedOut(), true)
	c.setInfo(&Info{Extensions: []string{ExtExecFlags}})
	assertEq(t, "exec.flags: reported", c.deriveTimedOut(), false)
	c.setInfo(&Info{PlainV1: true})
	assertEq(t, "plain v1: derive", c.deriveTimedOut(), true)
}

// FuzzParseTimestamp checks that parseTimestamp never panics, and that
// whatever it accepts RFC 3339 can write and read back as the same instant.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-12-02T01:17:27.883767+00:00Z", "2026-12-02T01:17:27", "1796174247.5", "2026-12-02 01:17:27",
		"-62135596800", "253402300799.999999999", "1e9", "z", "+00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimestamp(s)
		if !ok {
			if !got.IsZero() {
				t.Errorf("parseTimestamp(%q) = %v and false; want the zero time", s, got)
			}
			return
		}
		text := got.Format(time.RFC3339Nano)
		back, err := time.Parse(time.RFC3339Nano, text)
		if err != nil || !back.Equal(got) {
			t.Errorf("parseTimestamp(%q) = %v, written %q, read back %v, %v", s, got, text, back, err)
		}
		if again, ok := parseTimestamp(text); !ok || !again.Equal(got) {
			t.Errorf("parseTimestamp(%q) = %v, %v: its RFC 3339 form %q does not parse back", s, again, ok, text)
		}
		var v time.Time
		if err := json.Unmarshal([]byte(strconv.Quote(text)), &v); err != nil {
			t.Errorf("%q: encoding/json refuses %q: %v", s, text, err)
		}
	})
}

// FuzzParseInteger checks that parseInteger never panics, stays in range,
// and agrees with strconv on plain integers.
func FuzzParseInteger(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-2.5", "1e3", "9223372036854775807", "9.3e18", "NaN", "0x1p3"} {
		f.Add(s, int64(math.MinInt32), int64(math.MaxInt32))
	}
	f.Fuzz(func(t *testing.T, s string, lo, hi int64) {
		got, ok := parseInteger(s, lo, hi)
		if !ok {
			return
		}
		if got < lo || got > hi {
			t.Errorf("parseInteger(%q, %d, %d) = %d, out of range", s, lo, hi, got)
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n != got {
			t.Errorf("parseInteger(%q) = %d, strconv says %d", s, got, n)
		}
	})
}

// FuzzDecodeModel checks that decodeModel never panics on any body, and
// that what it decodes encodes to JSON the contract's form decodes again.
func FuzzDecodeModel(f *testing.F) {
	for _, s := range []string{`{"exitCode":0.0,"stdout":"","stderr":"","durationMs":1.5}`,
		`{"items":[{"createdAt":1796174247,"ttlSeconds":"60"}]}`, `{"expiresAt":"2026-12-02T01:17:27+00:00Z"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&noxapi.ExecResult{}, &noxapi.SandboxList{}, &noxapi.CreateSandboxResult{}} {
			if _, err := decodeModel([]byte(body), v); err != nil {
				continue
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: decoded %+v, which does not encode: %v", body, v, err)
			}
			if err := json.Unmarshal(out, v); err != nil {
				t.Errorf("%s: encoded as %s, which does not decode: %v", body, out, err)
			}
		}
	})
}
