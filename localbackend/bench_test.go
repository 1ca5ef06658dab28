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

// report adds <prefix>p50-ms and <prefix>p99-ms.
func (l latencies) report(b *testing.B, prefix string) {
	b.ReportMetric(ms(l.percentile(0.50)), prefix+"p50-ms")
	b.ReportMetric(ms(l.percentile(0.99)), prefix+"p99-ms")
}

// bareEcho runs echo hi once with os/exec and returns how long it took.
func bareEcho(b *testing.B) time.Duration {
	t0 := time.Now()
	out, err := exec.Command("echo", "hi").Output()
	d := time.Since(t0)
	if err != nil || string(out) != "hi\n" {
		b.Fatalf("echo: %q %v", out, err)
	}
	return d
}

// BenchmarkBareOSExec is the baseline: os/exec "echo hi" on the host.
func BenchmarkBareOSExec(b *testing.B) {
	var l latencies
	for b.Loop() {
		l = append(l, bareEcho(b))
	}
	l.report(b, "")
}

// httpDo sends one request and fails the benchmark unless the answer has
// status want (and contains contains, when set).
func httpDo(b *testing.B, client *http.Client, method, url, body string, want int, contains string) {
	req, _ := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want || !bytes.Contains(data, []byte(contains)) {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
}

// execEchoBody is the exec request of the exec benchmarks.
const execEchoBody = `{"cmd":["echo","hi"],"workdir":"/workspace","timeoutSeconds":5}`

// BenchmarkExecHTTP is an exec of "echo hi" over HTTP on a warm sandbox,
// interleaved with a bare os/exec of the same command so that the noise of
// a shared machine hits both alike. It reports the p50 and p99 of each
// (http-*, bare-*) and ratio-p50, the HTTP p50 over the bare p50.
func BenchmarkExecHTTP(b *testing.B) {
	e := benchEnv(b)
	e.createB(b, "bench")
	client := &http.Client{}
	url := e.url + "/v1/sandboxes/bench/exec"
	run := func() { httpDo(b, client, "POST", url, execEchoBody, 200, `"stdout":"hi\n"`) }
	run() // warm: waits for the setup, opens the connection
	var h, bare latencies
	for b.Loop() {
		t0 := time.Now()
		run()
		h = append(h, time.Since(t0))
		bare = append(bare, bareEcho(b))
	}
	b.StopTimer()
	h.report(b, "http-")
	bare.report(b, "bare-")
	if p := bare.percentile(0.5); p > 0 {
		b.ReportMetric(float64(h.percentile(0.5))/float64(p), "ratio-p50")
	}
}

// BenchmarkCreate times, each iteration, a create (PUT) of a new sandbox
// over HTTP on an otherwise idle server (create-*), then an ensure (PUT)
// of an existing, ready sandbox (ensure-*). Untimed, the new sandbox is
// made ready by an exec and deleted, so that sandboxes do not pile up.
func BenchmarkCreate(b *testing.B) {
	e := benchEnv(b)
	client := &http.Client{}
	const body = `{"ttlSeconds":600}`
	e.createB(b, "existing")
	httpDo(b, client, "POST", e.url+"/v1/sandboxes/existing/exec", execEchoBody, 200, "")
	var create, ensure latencies
	i := 0
	for b.Loop() {
		i++
		url := fmt.Sprintf("%s/v1/sandboxes/c%d", e.url, i)
		t0 := time.Now()
		httpDo(b, client, "PUT", url, body, 200, "")
		create = append(create, time.Since(t0))
		t0 = time.Now()
		httpDo(b, client, "PUT", e.url+"/v1/sandboxes/existing", body, 200, "")
		ensure = append(ensure, time.Since(t0))
		b.StopTimer()
		httpDo(b, client, "POST", url+"/exec", execEchoBody, 200, "")
		httpDo(b, client, "DELETE", url, "", 204, "")
		b.StartTimer()
	}
	b.StopTimer()
	create.report(b, "create-")
	ensure.report(b, "ensure-")
}
