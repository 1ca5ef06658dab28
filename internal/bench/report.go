package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the version of the Report JSON layout. Fields may be
// added within a version; none is renamed or removed.
const SchemaVersion = 1

// Report is the result of a run. Its JSON form is stable (see
// SchemaVersion): times are milliseconds (fields ending in Ms) or seconds,
// throughputs are MB/s (10^6 bytes) and executions a second.
type Report struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// Target names the backend.
	Target string `json:"target"`
	// Bare says why the bare os/exec comparisons ran ("--local", or
	// "--base-url on loopback"); empty when they did not.
	Bare string `json:"bare,omitempty"`
	// Started is when the run began; Seconds how long it took, clean-up
	// included.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// IDPrefix starts the session id of every sandbox the run made.
	IDPrefix string `json:"idPrefix"`
	// Settings are the parameters of the run.
	Settings Settings `json:"settings"`
	// Operations are the latencies of single calls, in the order run.
	Operations []Operation `json:"operations"`
	// Transfers are the upload and download throughputs.
	Transfers []Transfer `json:"transfers"`
	// Sweep is the concurrency sweep, one entry per level.
	Sweep []Level `json:"sweep"`
	// Retries counts the calls repeated after a 502, 503 or 504 answer,
	// over the whole run.
	Retries int `json:"retries"`
	// Sandboxes counts the sandboxes the run created (successful create
	// calls); Deleted the successful delete calls, which take in the
	// sandboxes of create calls that failed in a way that may have
	// created them. Every sandbox is deleted unless Settings.Keep or a
	// clean-up failed (see Notes).
	Sandboxes int `json:"sandboxes"`
	Deleted   int `json:"deleted"`
	// Notes are remarks on how to read the figures (a fallback taken, a
	// clean-up that failed).
	Notes []string `json:"notes,omitempty"`
}

// Settings are the parameters of a run, as in Config.
type Settings struct {
	Iterations       int      `json:"iterations"`
	CreateIterations int      `json:"createIterations"`
	Concurrency      []int    `json:"concurrency"`
	SweepExecs       int      `json:"sweepExecs"`
	TreeFiles        int      `json:"treeFiles"`
	TreeBytes        int64    `json:"treeBytes"`
	TransferRuns     int      `json:"transferRuns"`
	Sections         []string `json:"sections"`
	Keep             bool     `json:"keep"`
}

// Operation is the latency of one kind of call.
type Operation struct {
	// Name is the operation: "create", "ensure", "exec true",
	// "exec echo hi", "stream first byte", "delete".
	Name string `json:"name"`
	// Latency is the time of each successful attempt.
	Latency Stats `json:"latency"`
	// Bare is the same command run with os/exec on this host, interleaved
	// with the calls (local backends only).
	Bare *Stats `json:"bare,omitempty"`
	// Ratio is Latency.P50Ms / Bare.P50Ms (local backends only).
	Ratio float64 `json:"ratio,omitempty"`
	// Retries counts the attempts repeated after a 502, 503 or 504.
	Retries int `json:"retries"`
}

// Transfer is the throughput of an upload or a download of the
// generated tree.
type Transfer struct {
	// Name is "upload" or "download".
	Name string `json:"name"`
	// Files and Bytes are the tree's file count and content size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Latency is the time of each whole transfer.
	Latency Stats `json:"latency"`
	// MBps is Bytes over the median time, in MB/s (10^6 bytes a second).
	MBps float64 `json:"mbPerSec"`
	// Retries counts the attempts repeated after a 502, 503 or 504.
	Retries int `json:"retries"`
}

// Level is one level of the concurrency sweep: Concurrency workers, each
// in a sandbox of its own, each running Settings.SweepExecs commands one
// after another, all at once.
type Level struct {
	// Concurrency is the number of execs in flight at once.
	Concurrency int `json:"concurrency"`
	// Sandboxes is the number of sandboxes they ran in: Concurrency,
	// unless the backend refused to make that many (see the notes).
	Sandboxes int `json:"sandboxes"`
	// Execs is the number of commands run; Seconds the level's wall time.
	Execs   int     `json:"execs"`
	Seconds float64 `json:"seconds"`
	// ExecsPerSec is Execs / Seconds.
	ExecsPerSec float64 `json:"execsPerSec"`
	// Latency is the time of each exec.
	Latency Stats `json:"latency"`
	// Bare is the same load as plain fork/exec on this host (local
	// backends only).
	Bare *BareLevel `json:"bare,omitempty"`
	// Ratio is Bare.ExecsPerSec / ExecsPerSec: how many times faster the
	// bare fork/exec is (local backends only).
	Ratio float64 `json:"ratio,omitempty"`
	// Retries counts the attempts repeated after a 502, 503 or 504.
	Retries int `json:"retries"`
}

// BareLevel is a sweep level run as plain fork/exec.
type BareLevel struct {
	Execs       int     `json:"execs"`
	Seconds     float64 `json:"seconds"`
	ExecsPerSec float64 `json:"execsPerSec"`
	Latency     Stats   `json:"latency"`
}

// WriteText writes r as aligned text tables.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "nox bench: %s\n", r.Target)
	if r.Bare != "" {
		fmt.Fprintf(&b, "bare: the same commands with os/exec on this host (%s); ratio = p50 / bare p50, sweep: bare execs/s / execs/s\n", r.Bare)
	}
	if len(r.Operations) > 0 {
		b.WriteString("\n")
		t := table{header: []string{"operation", "count", "mean", "p50", "p90", "p99"}}
		if r.Bare != "" {
			t.header = append(t.header, "bare p50", "ratio")
		}
		t.header = append(t.header, "retries")
		for _, op := range r.Operations {
			s := op.Latency
			row := []string{op.Name, strconv.Itoa(s.Count), Ms(s.MeanMs), Ms(s.P50Ms), Ms(s.P90Ms), Ms(s.P99Ms)}
			if r.Bare != "" {
				row = append(row, "-", "-")
				if op.Bare != nil {
					row[len(row)-2], row[len(row)-1] = Ms(op.Bare.P50Ms), ratio(op.Ratio)
				}
			}
			t.add(append(row, strconv.Itoa(op.Retries))...)
		}
		t.write(&b)
	}
	if len(r.Transfers) > 0 {
		b.WriteString("\n")
		t := table{header: []string{"transfer", "files", "size", "runs", "p50", "MB/s", "retries"}}
		for _, tr := range r.Transfers {
			t.add(tr.Name, strconv.Itoa(tr.Files), Size(tr.Bytes), strconv.Itoa(tr.Latency.Count),
				Ms(tr.Latency.P50Ms), fmt.Sprintf("%.1f", tr.MBps), strconv.Itoa(tr.Retries))
		}
		t.write(&b)
	}
	if len(r.Sweep) > 0 {
		b.WriteString("\n")
		t := table{header: []string{"concurrency", "sandboxes", "execs", "execs/s", "p50", "p99"}}
		if r.Bare != "" {
			t.header = append(t.header, "bare execs/s", "bare p50", "bare p99", "ratio")
		}
		t.header = append(t.header, "retries")
		for _, l := range r.Sweep {
			row := []string{strconv.Itoa(l.Concurrency), strconv.Itoa(l.Sandboxes), strconv.Itoa(l.Execs), fmt.Sprintf("%.1f", l.ExecsPerSec),
				Ms(l.Latency.P50Ms), Ms(l.Latency.P99Ms)}
			if r.Bare != "" {
				if l.Bare != nil {
					row = append(row, fmt.Sprintf("%.1f", l.Bare.ExecsPerSec), Ms(l.Bare.Latency.P50Ms), Ms(l.Bare.Latency.P99Ms), ratio(l.Ratio))
				} else {
					row = append(row, "-", "-", "-", "-")
				}
			}
			t.add(append(row, strconv.Itoa(l.Retries))...)
		}
		t.write(&b)
	}
	fmt.Fprintf(&b, "\n%d sandboxes created, %d deleted, %d retries, %.1fs (id prefix %s)\n",
		r.Sandboxes, r.Deleted, r.Retries, r.Seconds, r.IDPrefix)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// table is a text table whose first column is aligned left and the
// others right, two spaces apart.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, row := range append([][]string{t.header}, t.rows...) {
		var line strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			switch {
			case i == 0:
				line.WriteString(c + pad)
			default:
				line.WriteString("  " + pad + c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// Ms formats a time in milliseconds with three significant digits or
// so: "850µs", "4.21ms", "37.5ms", "412ms", "2.31s".
func Ms(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}

// Size formats a byte count: "512B", "64.0KiB", "16.0MiB", "1.50GiB".
func Size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2fGiB", float64(n)/(1<<30))
	}
}

// ratio formats a ratio: "3.2x", or "-" when unknown.
func ratio(r float64) string {
	if r <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", r)
}
