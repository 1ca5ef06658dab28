package chart_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/noxrunner/nox/internal/bench"
	"github.com/noxrunner/nox/internal/bench/chart"
)

// report is a report with operations and a sweep, with bare figures.
func report() *bench.Report {
	return &bench.Report{
		Operations: []bench.Operation{
			{Name: "create", Latency: bench.Stats{Count: 3, P50Ms: 40, P90Ms: 60, P99Ms: 90}},
			{Name: "ensure", Latency: bench.Stats{Count: 3, P50Ms: 0.2, P90Ms: 0.4, P99Ms: 0.5}},
			{Name: "exec true", Latency: bench.Stats{Count: 3, P50Ms: 4, P90Ms: 5, P99Ms: 9},
				Bare: &bench.Stats{Count: 3, P50Ms: 0.9}, Ratio: 4.4},
		},
		Sweep: []bench.Level{
			{Concurrency: 1, ExecsPerSec: 200, Bare: &bench.BareLevel{ExecsPerSec: 900}},
			{Concurrency: 10, ExecsPerSec: 450, Bare: &bench.BareLevel{ExecsPerSec: 2500}},
		},
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		report *bench.Report
		format string
		magic  [][]byte // the output starts with one of these
	}{
		{"svg", report(), chart.SVG, [][]byte{[]byte("<?xml"), []byte("<svg")}},
		{"png", report(), chart.PNG, [][]byte{[]byte("\x89PNG\r\n\x1a\n")}},
		{"empty svg", &bench.Report{}, chart.SVG, [][]byte{[]byte("<?xml"), []byte("<svg")}},
		{"no bare", &bench.Report{Operations: report().Operations[:2], Sweep: []bench.Level{{Concurrency: 1, ExecsPerSec: 5}}},
			chart.SVG, [][]byte{[]byte("<?xml"), []byte("<svg")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := chart.Write(&b, tc.report, tc.format); err != nil {
				t.Fatal(err)
			}
			ok := false
			for _, m := range tc.magic {
				ok = ok || bytes.HasPrefix(b.Bytes(), m)
			}
			if !ok {
				t.Errorf("%s chart starts %q", tc.format, b.Bytes()[:min(b.Len(), 16)])
			}
			if tc.format == chart.SVG && !bytes.Contains(b.Bytes(), []byte("</svg>")) {
				t.Errorf("SVG not closed")
			}
		})
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	t.Parallel()
	if err := chart.Write(&bytes.Buffer{}, report(), "gif"); !errors.Is(err, chart.ErrFormat) {
		t.Errorf("Write(gif) = %v, want ErrFormat", err)
	}
}

func TestFormatOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{"bench.svg": chart.SVG, "out/b.png": chart.PNG, "B.PNG": chart.PNG, "chart": chart.SVG} {
		if got := chart.FormatOf(path); got != want {
			t.Errorf("FormatOf(%q) = %q, want %q", path, got, want)
		}
	}
}
