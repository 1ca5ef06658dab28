package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// statDouble is a double whose commands end as their argv says ("exit
// N", "timeout", "busy": refused), and which reports Stats and usage.
type statDouble struct{ *double }

var _ driver.Statter = statDouble{}

func (d statDouble) StartExec(ctx context.Context, id string, req driver.ExecRequest) (driver.Execution, error) {
	switch req.Argv[0] {
	case "busy":
		return nil, fmt.Errorf("at the limit of concurrent commands: %w", driver.ErrBusy)
	case "timeout":
		return execution{func(context.Context, func(driver.Stream, string)) (driver.ExecResult, error) {
			return driver.ExecResult{ExitCode: 137, TimedOut: true}, nil
		}}, nil
	case "exit":
		code, _ := strconv.Atoi(req.Argv[1])
		return execution{func(context.Context, func(driver.Stream, string)) (driver.ExecResult, error) {
			return driver.ExecResult{ExitCode: code}, nil
		}}, nil
	}
	return d.double.StartExec(ctx, id, req)
}

func (d statDouble) Get(ctx context.Context, id string) (driver.Sandbox, error) {
	s, err := d.double.Get(ctx, id)
	s.Usage = &driver.Usage{CPUSeconds: 1.5, MemoryBytes: 4096, Pids: -1, StorageBytes: 8192}
	return s, err
}

func (d statDouble) Stats(context.Context) (driver.Stats, error) {
	return driver.Stats{Sandboxes: 2, Processes: 1, PoolReady: 3, PoolCapacity: 4, Reaped: 5,
		Usage: map[string]driver.Usage{"s1": {CPUSeconds: 0.25, MemoryBytes: 1 << 20, Pids: 2, StorageBytes: -1}}}, nil
}

// scrape reads GET /metrics with e's token and parses it.
func scrape(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := e.do("GET", "/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return fams
}

// sample returns the value of the sample of family name with labels
// (name=value pairs), or -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	e := setupBackendOpts(t, statDouble{&double{info: fullInfo()}}, server.Options{Token: "tok"})

	exec := func(argv ...string) {
		t.Helper()
		resp, body := e.do("POST", "/v1/sandboxes/s1/exec", map[string]any{"cmd": argv})
		if resp.StatusCode != 200 {
			t.Fatalf("exec %v: %d %s", argv, resp.StatusCode, body)
		}
	}
	exec("exit", "0")
	exec("exit", "3")
	exec("timeout")
	if resp, body := e.do("POST", "/v1/sandboxes/s1/exec", map[string]any{"cmd": []string{"busy"}}); resp.StatusCode != 503 {
		t.Fatalf("busy exec: %d %s", resp.StatusCode, body)
	}
	upload := strings.Repeat("x", 1234)
	if resp, body := e.send("POST", "/v1/sandboxes/s1/files/upload", strings.NewReader(upload), map[string]string{"Authorization": "Bearer tok", "Content-Type": "application/x-tar"}); resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do("GET", "/v1/sandboxes/s1/files/download", nil); resp.StatusCode != 200 || string(body) != "archive" {
		t.Fatalf("download: %d %s", resp.StatusCode, body)
	}
	e.do("GET", "/nowhere", nil)

	fams := scrape(t, e)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nox_execs_total", []string{"result", "ok"}, 1},
		{"nox_execs_total", []string{"result", "nonzero"}, 1},
		{"nox_execs_total", []string{"result", "timeout"}, 1},
		{"nox_execs_total", []string{"result", "oom"}, 0},
		{"nox_exec_rejections_total", nil, 1},
		{"nox_upload_bytes_total", nil, 1234},
		{"nox_download_bytes_total", nil, float64(len("archive"))},
		{"nox_http_requests_total", []string{"operation", "execInSandbox", "code", "200"}, 3},
		{"nox_http_requests_total", []string{"operation", "execInSandbox", "code", "503"}, 1},
		{"nox_http_requests_total", []string{"operation", "uploadFiles", "code", "200"}, 1},
		{"nox_http_requests_total", []string{"operation", "other", "code", "404"}, 1},
		{"nox_http_request_duration_seconds", []string{"operation", "downloadFiles", "code", "200"}, 1},
		{"nox_sandboxes", nil, 2},
		{"nox_processes", nil, 1},
		{"nox_create_pool_ready", nil, 3},
		{"nox_create_pool_capacity", nil, 4},
		{"nox_sandboxes_reaped_total", nil, 5},
		{"nox_sandbox_cpu_seconds_total", []string{"session", "s1"}, 0.25},
		{"nox_sandbox_memory_bytes", []string{"session", "s1"}, 1 << 20},
		{"nox_sandbox_pids", []string{"session", "s1"}, 2},
		{"nox_sandbox_storage_bytes", []string{"session", "s1"}, -1}, // not measured: absent
	} {
		if got := sample(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Errorf("no Go or process collector in the scrape")
	}

	// A second scrape sees the first.
	if got := sample(scrape(t, e), "nox_http_requests_total", "operation", "getMetrics", "code", "200"); got != 1 {
		t.Errorf("getMetrics requests = %v, want 1", got)
	}
}

func TestMetricsNeedToken(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{Token: "tok"})
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}} {
		resp, body := e.send("GET", "/metrics", nil, hdr)
		expectError(t, resp, body, 401, "bearer token")
	}
	resp, body := e.send("GET", "/metrics", nil, map[string]string{"Authorization": "Bearer tok", "Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(string(body), "nox_http_requests_total") {
		t.Fatalf("scrape asking for protobuf: %d %q, want the text format", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := e.send("POST", "/metrics", nil, map[string]string{"Authorization": "Bearer tok"}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %d %s", resp.StatusCode, body)
	}
}

func TestMetricsNoStatter(t *testing.T) {
	t.Parallel()
	fams := scrape(t, setup(t, nil, server.Options{}))
	if fams["nox_sandboxes"] != nil {
		t.Errorf("nox_sandboxes served for a backend without driver.Statter")
	}
	if fams["nox_execs_total"] == nil {
		t.Errorf("nox_execs_total missing")
	}
}

func TestSandboxStatusUsage(t *testing.T) {
	t.Parallel()
	in := fullInfo()
	in.Extensions = append(in.Extensions, api.ExtSandboxesUsage)
	e := setupBackendOpts(t, statDouble{&double{info: in}}, server.Options{})
	var st noxapi.SandboxStatus
	getJSON(t, e, "/v1/sandboxes/s1", &st)
	u := st.Usage
	if u == nil || u.CPUSeconds == nil || *u.CPUSeconds != 1.5 || u.MemoryBytes == nil || *u.MemoryBytes != 4096 || u.Pids != nil || u.StorageBytes == nil || *u.StorageBytes != 8192 {
		t.Fatalf("usage = %+v, want cpu 1.5, memory 4096, no pids, storage 8192", u)
	}
}

// setupBackendOpts serves b with opts and a discarded log.
func setupBackendOpts(t *testing.T, b driver.Backend, opts server.Options) *env {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	h, err := server.New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, token: opts.Token, logs: &lockedBuffer{}}
}

// getJSON GETs path and decodes its 200 answer into v.
func getJSON(t *testing.T, e *env, path string, v any) {
	t.Helper()
	resp, body := e.do("GET", path, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatal(err)
	}
}
