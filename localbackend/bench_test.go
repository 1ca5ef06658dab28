package localbackend

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// latencies collects per-operation durations and reports percentiles.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (l latencies) report(b *testing.B) {
	b.ReportMetric(ms(l.percentile(0.50)), "p50-ms")
	b.ReportMetric(ms(l.percentile(0.99)), "p99-ms")
}

// bareEcho runs echo hi with os/exec n times.
func bareEcho(b *testing.B, n int) latencies {
	var l latencies
	for range n {
		t0 := time.Now()
		out, err := exec.Command("echo", "hi").Output()
		if err != nil || string(out) != "hi\n" {
			b.Fatalf("echo: %q %v", out, err)
		}
		l = append(l, time.Since(t0))
	}
	return l
}

// BenchmarkBareOSExec is the baseline: os/exec "echo hi" on the host.
func BenchmarkBareOSExec(b *testing.B) {
	var l latencies
	for b.Loop() {
		l = append(l, bareEcho(b, 1)...)
	}
	l.report(b)
}

// BenchmarkExecHTTP is an exec of "echo hi" over HTTP on a warm sandbox.
// It also reports ratio-p50: its p50 over the p50 of bare os/exec.
func BenchmarkExecHTTP(b *testing.B) {
	e := benchEnv(b)
	e.createB(b, "bench")
	body := []byte(`{"cmd":["echo","hi"],"workdir":"/workspace","timeoutSeconds":5}`)
	client := &http.Client{}
	url := e.url + "/v1/sandboxes/bench/exec"
	run := func() {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(data, []byte(`"stdout":"hi\n"`)) {
			b.Fatalf("exec: %d %s", resp.StatusCode, data)
		}
	}
	run() // warm
	var l latencies
	for b.Loop() {
		t0 := time.Now()
		run()
		l = append(l, time.Since(t0))
	}
	b.StopTimer()
	l.report(b)
	bare := bareEcho(b, 50).percentile(0.5)
	if bare > 0 {
		b.ReportMetric(float64(l.percentile(0.5))/float64(bare), "ratio-p50")
	}
}

// BenchmarkCreate is create/ensure of a new sandbox each iteration
// (including building its environment), then one ensure of an existing one.
func BenchmarkCreate(b *testing.B) {
	e := benchEnv(b)
	client := &http.Client{}
	var l latencies
	i := 0
	for b.Loop() {
		i++
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/sandboxes/c%d", e.url, i), bytes.NewReader([]byte(`{"ttlSeconds":600}`)))
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l = append(l, time.Since(t0))
		if resp.StatusCode != 200 {
			b.Fatalf("create: %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	l.report(b)
}
