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
		r, err := s.Exec(ctx, ExecSpec{Argv: []string{"echo", "hi"}, Dir: "/workspace", Env: testEnv(), Timeout: time.Minute, Stdout: &out, Stderr: &errb})
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

// BenchmarkExecVsOSExecInterleaved alternates a warm sandbox exec and a
// bare os/exec of `echo hi`, so that the noise of a shared machine hits
// both, and reports both p50s and their ratio.
func BenchmarkExecVsOSExecInterleaved(b *testing.B) {
	m := newManager(b, TierAuto)
	s, _ := start(b, m, key("inter"), Limits{Pids: 256, MemoryBytes: 512 << 20, CPUMilli: 2000})
	ctx := context.Background()
	var sb, host []time.Duration
	for b.Loop() {
		var out bytes.Buffer
		t0 := time.Now()
		r, err := s.Exec(ctx, ExecSpec{Argv: []string{"echo", "hi"}, Dir: "/workspace", Env: testEnv(), Stdout: &out})
		if err != nil || r.ExitCode != 0 || out.String() != "hi\n" {
			b.Fatalf("%+v %v", r, err)
		}
		sb = append(sb, time.Since(t0))
		out.Reset()
		t0 = time.Now()
		cmd := exec.Command("echo", "hi")
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		host = append(host, time.Since(t0))
	}
	slices.Sort(sb)
	slices.Sort(host)
	p := func(d []time.Duration, q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(p(sb, 0.5), "sandbox-p50-ms")
	b.ReportMetric(p(sb, 0.99), "sandbox-p99-ms")
	b.ReportMetric(p(host, 0.5), "osexec-p50-ms")
	b.ReportMetric(p(host, 0.99), "osexec-p99-ms")
	b.ReportMetric(p(sb, 0.5)/p(host, 0.5), "p50-ratio")
}
