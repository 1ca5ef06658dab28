package sandbox

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// reportLatency adds p50 and p99 of the samples, in milliseconds.
func reportLatency(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkOSExecEcho is the baseline: a bare os/exec of `echo hi`.
func BenchmarkOSExecEcho(b *testing.B) {
	samples := make([]time.Duration, 0, b.N)
	for b.Loop() {
		var out bytes.Buffer
		t0 := time.Now()
		cmd := exec.Command("echo", "hi")
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil || out.String() != "hi\n" {
			b.Fatalf("%v %q", err, out.String())
		}
		samples = append(samples, time.Since(t0))
	}
	reportLatency(b, samples)
}

// BenchmarkExecEchoWarm runs `echo hi` in a running sandbox.
func BenchmarkExecEchoWarm(b *testing.B) {
	m := newManager(b, TierAuto)
	s, _ := start(b, m, key("bench"), Limits{Pids: 256, MemoryBytes: 512 << 20, CPUMilli: 2000})
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	for b.Loop() {
		var out, errb bytes.Buffer
		t0 := time.Now()
		r, err := s.Exec(ctx, ExecSpec{Argv: []string{"echo", "hi"}, Dir: "/workspace", Env: testEnv, Timeout: time.Minute, Stdout: &out, Stderr: &errb})
		if err != nil || r.ExitCode != 0 || out.String() != "hi\n" {
			b.Fatalf("%+v %v %q", r, err, out.String())
		}
		samples = append(samples, time.Since(t0))
	}
	reportLatency(b, samples)
}

// BenchmarkStart measures Start (create) of a fresh sandbox; Stop is not
// timed.
func BenchmarkStart(b *testing.B) {
	m := newManager(b, TierAuto)
	ws := b.TempDir()
	ctx := context.Background()
	k := key("start")
	samples := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		s, err := m.Start(ctx, Spec{Key: k, Workspace: ws, Limits: Limits{Pids: 256, MemoryBytes: 512 << 20, CPUMilli: 1000}})
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(t0))
		b.StopTimer()
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatency(b, samples)
}
