package bench

import (
	"math"
	"slices"
	"time"
)

// Stats summarises a set of latency samples, in milliseconds.
type Stats struct {
	// Count is the number of samples.
	Count int `json:"count"`
	// MeanMs is the arithmetic mean.
	MeanMs float64 `json:"meanMs"`
	// P50Ms, P90Ms and P99Ms are percentiles, interpolated linearly
	// between the two nearest samples (see Percentile).
	P50Ms float64 `json:"p50Ms"`
	P90Ms float64 `json:"p90Ms"`
	P99Ms float64 `json:"p99Ms"`
	// MinMs and MaxMs are the smallest and largest samples.
	MinMs float64 `json:"minMs"`
	MaxMs float64 `json:"maxMs"`
}

// Summarize returns the statistics of samples; the zero Stats for none.
// It does not modify samples.
func Summarize(samples []time.Duration) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	ms := make([]float64, len(samples))
	sum := 0.0
	for i, d := range samples {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Stats{
		Count:  len(ms),
		MeanMs: sum / float64(len(ms)),
		P50Ms:  Percentile(ms, 50),
		P90Ms:  Percentile(ms, 90),
		P99Ms:  Percentile(ms, 99),
		MinMs:  ms[0],
		MaxMs:  ms[len(ms)-1],
	}
}

// Percentile returns the p-th percentile (0 <= p <= 100) of sorted, an
// ascending slice: the value at rank p/100*(n-1), interpolated linearly
// between the samples on either side (the "R-7" definition that
// spreadsheets and NumPy use by default). It returns NaN for an empty
// slice and clamps p to [0, 100].
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	p = min(max(p, 0), 100)
	rank := p / 100 * float64(n-1)
	lo := int(math.Floor(rank))
	if lo >= n-1 {
		return sorted[n-1]
	}
	frac := rank - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}
