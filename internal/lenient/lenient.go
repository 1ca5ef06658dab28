// Package lenient reads the values real NoxRunner backends send in the
// forms they send them: timestamps in RFC 3339 and the other forms seen in
// the wild, integers written as numbers with a fraction. The SDK decodes
// answers with it, and the conformance suite's set-up steps read answers
// with it, so that both are as tolerant as the Python client.
package lenient

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// timestampLayouts are the forms of a timestamp ParseTimestamp reads after
// RFC 3339: an offset without a colon, no zone at all (UTC), and each with
// a space instead of the T, as Python's str(datetime) writes.
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999",
}

// ParseTimestamp reads a timestamp as real backends write it: RFC 3339
// (the contract's form), with a redundant Z after an offset
// ("...+00:00Z", Python's isoformat() + "Z"), without a zone (taken as
// UTC), with a space for the T, in lower case, or as seconds since the
// Unix epoch (an integer or a decimal fraction, as the text of a JSON
// number or string). It reports false for anything else and for years
// outside 0000-9999, which RFC 3339 cannot write.
func ParseTimestamp(s string) (time.Time, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return time.Time{}, false
	}
	if t, ok := parseEpoch(s); ok {
		return inRFC3339Range(t)
	}
	candidates := []string{s}
	if zless, ok := strings.CutSuffix(s, "Z"); ok && len(zless) > 6 && strings.ContainsAny(zless[len(zless)-6:], "+-") {
		candidates = append(candidates, zless) // an offset and a Z
	}
	for _, c := range candidates {
		for _, layout := range timestampLayouts {
			if t, err := time.Parse(layout, c); err == nil {
				if t.Location() == time.Local {
					t = t.UTC()
				}
				return inRFC3339Range(t)
			}
		}
	}
	return time.Time{}, false
}

// parseEpoch reads s as seconds since the Unix epoch: digits with an
// optional sign and decimal fraction (read exactly, to the nanosecond), or
// any other number strconv.ParseFloat reads.
func parseEpoch(s string) (time.Time, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	digits := strings.TrimLeft(whole, "+-")
	if len(whole)-len(digits) <= 1 && digits != "" && allDigits(digits) && allDigits(frac) && len(digits) <= 12 {
		sec, err := strconv.ParseInt(whole, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		frac = (frac + "000000000")[:9]
		ns, _ := strconv.ParseInt(frac, 10, 64)
		if strings.HasPrefix(whole, "-") {
			ns = -ns
		}
		return time.Unix(sec, ns).UTC(), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e12 {
		return time.Time{}, false
	}
	sec, fr := math.Modf(f)
	return time.Unix(int64(sec), int64(fr*1e9)).UTC(), true
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// inRFC3339Range returns t and true when RFC 3339 can write its year, else
// the zero time and false.
func inRFC3339Range(t time.Time) (time.Time, bool) {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// ParseInteger reads the text of a JSON number (or of a string holding
// one) as an integer: integers as they are; numbers with a fraction or an
// exponent ("1.5", "0.0", "1e3") rounded to the nearest integer, halves
// away from zero. It reports false for anything else and for values
// outside [min, max].
func ParseInteger(s string, lo, hi int64) (int64, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, n >= lo && n <= hi
	}
	if s == "" || strings.ContainsAny(s, "_xXpPiInN") { // no hex, underscores, Inf or NaN
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	f = math.Round(f)
	if f < float64(lo) || f >= -float64(math.MinInt64) || f > float64(hi) {
		return 0, false
	}
	return int64(f), true
}
