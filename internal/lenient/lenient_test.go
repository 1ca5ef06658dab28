package lenient

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
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
		got, ok := ParseTimestamp(tc.in)
		if !ok || !got.Round(time.Microsecond).Equal(tc.want) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{"", "tomorrow", "2026-13-02T01:17:27Z", "2026-12-02", "12:00:00", "1e300", "NaN",
		"-inf", "99999999999999", "10000-01-01T00:00:00Z", "2026-12-02T01:17:27+00:00ZZ", "0x10"} {
		if got, ok := ParseTimestamp(in); ok {
			t.Errorf("ParseTimestamp(%q) = %v, want no timestamp", in, got)
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
		got, ok := ParseInteger(tc.in, math.MinInt64, math.MaxInt64)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ParseInteger(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ParseInteger("2147483648", math.MinInt32, math.MaxInt32); ok {
		t.Error("2^31 accepted for an int32")
	}
}

// FuzzParseTimestamp checks that ParseTimestamp never panics, and that
// whatever it accepts RFC 3339 can write and read back as the same instant.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-12-02T01:17:27.883767+00:00Z", "2026-12-02T01:17:27", "1796174247.5", "2026-12-02 01:17:27",
		"-62135596800", "253402300799.999999999", "1e9", "z", "+00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseTimestamp(s)
		if !ok {
			if !got.IsZero() {
				t.Errorf("ParseTimestamp(%q) = %v and false; want the zero time", s, got)
			}
			return
		}
		text := got.Format(time.RFC3339Nano)
		back, err := time.Parse(time.RFC3339Nano, text)
		if err != nil || !back.Equal(got) {
			t.Errorf("ParseTimestamp(%q) = %v, written %q, read back %v, %v", s, got, text, back, err)
		}
		if again, ok := ParseTimestamp(text); !ok || !again.Equal(got) {
			t.Errorf("ParseTimestamp(%q) = %v, %v: its RFC 3339 form %q does not parse back", s, again, ok, text)
		}
		var v time.Time
		if err := json.Unmarshal([]byte(strconv.Quote(text)), &v); err != nil {
			t.Errorf("%q: encoding/json refuses %q: %v", s, text, err)
		}
	})
}

// FuzzParseInteger checks that ParseInteger never panics, stays in range,
// and agrees with strconv on plain integers.
func FuzzParseInteger(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-2.5", "1e3", "9223372036854775807", "9.3e18", "NaN", "0x1p3"} {
		f.Add(s, int64(math.MinInt32), int64(math.MaxInt32))
	}
	f.Fuzz(func(t *testing.T, s string, lo, hi int64) {
		got, ok := ParseInteger(s, lo, hi)
		if !ok {
			return
		}
		if got < lo || got > hi {
			t.Errorf("ParseInteger(%q, %d, %d) = %d, out of range", s, lo, hi, got)
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n != got {
			t.Errorf("ParseInteger(%q) = %d, strconv says %d", s, got, n)
		}
	})
}
