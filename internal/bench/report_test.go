package bench

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report with every section, with bare figures or not.
func sampleReport(bare bool) *Report {
	r := &Report{
		Schema: SchemaVersion, Target: "http://127.0.0.1:8080", Started: time.Unix(0, 0).UTC(), Seconds: 12.5,
		IDPrefix: "noxbench-x", Sandboxes: 3, Deleted: 3, Retries: 2,
		Operations: []Operation{
			{Name: "create", Latency: Stats{Count: 20, MeanMs: 45.1, P50Ms: 41, P90Ms: 60, P99Ms: 120}},
			{Name: "exec true", Latency: Stats{Count: 200, MeanMs: 4.2, P50Ms: 4, P90Ms: 5.5, P99Ms: 9.25}, Retries: 2},
		},
		Transfers: []Transfer{{Name: "upload", Files: 200, Bytes: 16 << 20, Latency: Stats{Count: 3, P50Ms: 250}, MBps: 67.1}},
		Sweep: []Level{
			{Concurrency: 1, Sandboxes: 1, Execs: 20, Seconds: 0.1, ExecsPerSec: 200, Latency: Stats{P50Ms: 5, P99Ms: 7}},
			{Concurrency: 50, Sandboxes: 16, Execs: 1000, Seconds: 5, ExecsPerSec: 200, Latency: Stats{P50Ms: 240, P99Ms: 1200}},
		},
	}
	if bare {
		r.Bare = "--local"
		r.Operations[1].Bare = &Stats{Count: 200, P50Ms: 0.8}
		r.Operations[1].Ratio = 5
		r.Sweep[0].Bare = &BareLevel{Execs: 20, ExecsPerSec: 1000, Latency: Stats{P50Ms: 0.9, P99Ms: 2}}
		r.Sweep[0].Ratio = 5
	}
	return r
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		report  *Report
		want    []string // lines (trailing spaces trimmed) that must appear
		notWant []string
	}{
		{"remote", sampleReport(false), []string{
			"nox bench: http://127.0.0.1:8080",
			"operation  count    mean     p50     p90     p99  retries",
			"create        20  45.1ms  41.0ms  60.0ms   120ms        0",
			"exec true    200  4.20ms  4.00ms  5.50ms  9.25ms        2",
			"transfer  files     size  runs    p50  MB/s  retries",
			"upload      200  16.0MiB     3  250ms  67.1        0",
			"concurrency  sandboxes  execs  execs/s     p50     p99  retries",
			"50                  16   1000    200.0   240ms   1.20s        0",
			"3 sandboxes created, 3 deleted, 2 retries, 12.5s (id prefix noxbench-x)",
		}, []string{"bare"}},
		{"local", sampleReport(true), []string{
			"bare: the same commands with os/exec on this host (--local); ratio = p50 / bare p50, sweep: bare execs/s / execs/s",
			"operation  count    mean     p50     p90     p99  bare p50  ratio  retries",
			"create        20  45.1ms  41.0ms  60.0ms   120ms         -      -        0",
			"exec true    200  4.20ms  4.00ms  5.50ms  9.25ms     800µs   5.0x        2",
			"1                    1     20    200.0  5.00ms  7.00ms        1000.0     900µs    2.00ms   5.0x        0",
			"50                  16   1000    200.0   240ms   1.20s             -         -         -      -        0",
		}, nil},
		{"empty", &Report{Target: "t", IDPrefix: "p"}, []string{"nox bench: t", "0 sandboxes created, 0 deleted, 0 retries, 0.0s (id prefix p)"},
			[]string{"operation", "transfer", "concurrency"}},
		{"notes", &Report{Target: "t", Notes: []string{"clean-up: gone"}}, []string{"note: clean-up: gone"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteText(&b, tc.report); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(b.String(), "\n")
			for _, w := range tc.want {
				if !slices.Contains(lines, w) {
					t.Errorf("missing line %q in\n%s", w, b.String())
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(b.String(), nw) {
					t.Errorf("unexpected %q in\n%s", nw, b.String())
				}
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{Ms(0.25), "250µs"}, {Ms(4.214), "4.21ms"}, {Ms(37.54), "37.5ms"}, {Ms(412.4), "412ms"}, {Ms(2310), "2.31s"},
		{Size(512), "512B"}, {Size(64 << 10), "64.0KiB"}, {Size(16 << 20), "16.0MiB"}, {Size(3 << 29), "1.50GiB"},
		{ratio(0), "-"}, {ratio(3.21), "3.2x"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestReportJSON pins the JSON names of the report: they are its
// documented, stable layout.
func TestReportJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sampleReport(true))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "target", "bare", "started", "seconds", "idPrefix", "settings", "operations",
		"transfers", "sweep", "retries", "sandboxes", "deleted"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q: %s", k, b)
		}
	}
	op := m["operations"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "latency", "bare", "ratio", "retries"} {
		if _, ok := op[k]; !ok {
			t.Errorf("operation JSON lacks %q: %v", k, op)
		}
	}
	lat := op["latency"].(map[string]any)
	for _, k := range []string{"count", "meanMs", "p50Ms", "p90Ms", "p99Ms", "minMs", "maxMs"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("stats JSON lacks %q: %v", k, lat)
		}
	}
	tr := m["transfers"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "files", "bytes", "latency", "mbPerSec", "retries"} {
		if _, ok := tr[k]; !ok {
			t.Errorf("transfer JSON lacks %q: %v", k, tr)
		}
	}
	lvl := m["sweep"].([]any)[0].(map[string]any)
	for _, k := range []string{"concurrency", "sandboxes", "execs", "seconds", "execsPerSec", "latency", "bare", "ratio", "retries"} {
		if _, ok := lvl[k]; !ok {
			t.Errorf("level JSON lacks %q: %v", k, lvl)
		}
	}
	// Without bare figures, the bare members are left out.
	b, _ = json.Marshal(sampleReport(false))
	if strings.Contains(string(b), `"bare"`) || strings.Contains(string(b), `"ratio"`) {
		t.Errorf("remote report has bare figures: %s", b)
	}
}
