package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"one sample", []float64{7}, 50, 7},
		{"one sample p99", []float64{7}, 99, 7},
		{"median of odd", []float64{1, 2, 3}, 50, 2},
		{"median of even interpolates", []float64{1, 2, 3, 4}, 50, 2.5},
		{"p0 is the minimum", []float64{1, 2, 3, 4}, 0, 1},
		{"p100 is the maximum", []float64{1, 2, 3, 4}, 100, 4},
		{"p90 of 1..10", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9.1},
		{"p99 of 1..100", seq(100), 99, 99.01},
		{"p50 of 1..100", seq(100), 50, 50.5},
		{"below 0 clamps", []float64{1, 2}, -5, 1},
		{"above 100 clamps", []float64{1, 2}, 500, 2},
		{"equal samples", []float64{3, 3, 3}, 90, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
}

// seq returns 1, 2, ..., n.
func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		want    Stats
	}{
		{"none", nil, Stats{}},
		{"one", []time.Duration{2 * ms}, Stats{Count: 1, MeanMs: 2, P50Ms: 2, P90Ms: 2, P99Ms: 2, MinMs: 2, MaxMs: 2}},
		{"unsorted", []time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms},
			Stats{Count: 4, MeanMs: 2.5, P50Ms: 2.5, P90Ms: 3.7, P99Ms: 3.97, MinMs: 1, MaxMs: 4}},
		{"sub-millisecond", []time.Duration{500 * time.Microsecond, 1500 * time.Microsecond},
			Stats{Count: 2, MeanMs: 1, P50Ms: 1, P90Ms: 1.4, P99Ms: 1.49, MinMs: 0.5, MaxMs: 1.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tc.samples...)
			got := Summarize(in)
			if !statsClose(got, tc.want) {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.samples, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.samples[i] {
					t.Fatalf("Summarize modified its input: %v", in)
				}
			}
		})
	}
}

// statsClose reports whether a and b are equal up to rounding.
func statsClose(a, b Stats) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.Count == b.Count && near(a.MeanMs, b.MeanMs) && near(a.P50Ms, b.P50Ms) && near(a.P90Ms, b.P90Ms) &&
		near(a.P99Ms, b.P99Ms) && near(a.MinMs, b.MinMs) && near(a.MaxMs, b.MaxMs)
}
