package localbackend

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPortProxy is a GET of a small file from an HTTP server inside
// a sandbox (python3's http.server), through the server's port proxy
// (proxy-*), interleaved with the same GET sent straight to the sandbox's
// port over a connection from DialPort (direct-*), the path a client on
// the sandbox's own network would take. ratio-p50 is the proxy's p50 over
// the direct one. Each request opens a connection to the sandbox's port,
// as http.server closes it after every answer.
func BenchmarkPortProxy(b *testing.B) {
	e := benchEnv(b)
	e.createB(b, "bench")
	const port = 18080
	script := "mkdir -p /workspace/www && echo hello > /workspace/www/f && cd /workspace/www && exec python3 -m http.server --bind 127.0.0.1 " + strconv.Itoa(port)
	body := `{"cmd":["sh","-c",` + strconv.Quote(script) + `]}`
	httpDo(b, &http.Client{}, "POST", e.url+"/v1/sandboxes/bench/processes", body, http.StatusCreated, "")
	direct := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return driverBackend{e.b}.DialPort(ctx, "bench", port)
		},
	}}
	proxy := &http.Client{}
	proxyURL := e.url + "/v1/sandboxes/bench/ports/" + strconv.Itoa(port) + "/f"
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := direct.Get("http://sandbox/f")
		if err == nil {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Skipf("the server in the sandbox did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var p, d latencies
	for b.Loop() {
		t0 := time.Now()
		httpDo(b, proxy, "GET", proxyURL, "", 200, "hello")
		p = append(p, time.Since(t0))
		t0 = time.Now()
		httpDo(b, direct, "GET", "http://sandbox/f", "", 200, "hello")
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	p.report(b, "proxy-")
	d.report(b, "direct-")
	if m := d.percentile(0.5); m > 0 {
		b.ReportMetric(float64(p.percentile(0.5))/float64(m), "ratio-p50")
	}
}
