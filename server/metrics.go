package server

// The metrics extension: GET /metrics in the Prometheus text format, from
// a registry of the server's own (never the process-wide default one).

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// statsTimeout bounds the backend's Stats call of one scrape.
const statsTimeout = 2 * time.Second

// The results of nox_execs_total.
const (
	execOK = iota
	execNonzero
	execTimeout
	execOOM
	execError
	numExecResults
)

var execResultNames = [numExecResults]string{"ok", "nonzero", "timeout", "oom", "error"}

// durationBuckets are nox_http_request_duration_seconds's buckets: from a
// millisecond (info, stat) to minutes (long commands, streams).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// metrics are one server's metrics.
type metrics struct {
	reg        *prometheus.Registry
	routes     *routeTable
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	execs      [numExecResults]prometheus.Counter
	rejections prometheus.Counter
	uploaded   prometheus.Counter
	downloaded prometheus.Counter
	scrape     http.Handler
}

// opMetrics are the request metrics of one operation, by status code:
// the counter and histogram children are looked up once per code, then
// read from a copy-on-write map (a request costs an atomic load and a map
// read, not the label hashing of WithLabelValues).
type opMetrics struct {
	id string
	m  *metrics
	// upload: the request body is counted in nox_upload_bytes_total;
	// download: the 2xx response body in nox_download_bytes_total.
	upload, download bool

	codes atomic.Pointer[map[int]codeMetrics]
	mu    sync.Mutex // serialises additions to codes
}

// codeMetrics are the children of one operation and status code.
type codeMetrics struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

// newMetrics returns the metrics of a server on b, which reports its own
// figures at each scrape when it is a driver.Statter.
func newMetrics(b driver.Backend, log *slog.Logger) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nox_http_requests_total",
		Help: "HTTP requests answered, by operation (the contract's operationId; other: none) and status code (0: the connection was cut before a status was sent).",
	}, []string{"operation", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nox_http_request_duration_seconds",
		Help:    "Time from a request's arrival to the end of its response, by operation and status code.",
		Buckets: durationBuckets,
	}, []string{"operation", "code"})
	execs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nox_execs_total",
		Help: "Commands run by exec and exec/stream, by how they ended: ok (exit code 0), nonzero, timeout, oom, error (no result: cancelled or failed).",
	}, []string{"result"})
	for i, name := range execResultNames {
		m.execs[i] = execs.WithLabelValues(name)
	}
	m.rejections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nox_exec_rejections_total",
		Help: "Commands refused with 503 because the backend was at its limit of concurrent commands.",
	})
	m.uploaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nox_upload_bytes_total",
		Help: "Bytes of upload and writeFile request bodies received.",
	})
	m.downloaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nox_download_bytes_total",
		Help: "Bytes of download and readFile response bodies sent (2xx answers).",
	})
	m.reg.MustRegister(m.requests, m.duration, execs, m.rejections, m.uploaded, m.downloaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s, ok := b.(driver.Statter); ok {
		m.reg.MustRegister(newBackendCollector(s, log))
	}
	m.routes = newRouteTable(func(id string) *opMetrics {
		return &opMetrics{id: id, m: m, upload: id == "uploadFiles" || id == "writeFile", download: id == "downloadFiles" || id == "readFile"}
	})
	m.scrape = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m
}

// begin starts counting request r: it returns its operation's metrics,
// and counts an upload's body as it is read. Without metrics (nil) it
// counts nothing.
func (m *metrics) begin(r *http.Request) *opMetrics {
	if m == nil {
		return nil
	}
	op := m.routes.lookup(r.Method, r.URL.Path)
	if op.upload && r.Body != nil && r.Body != http.NoBody {
		r.Body = &countedBody{ReadCloser: r.Body, c: m.uploaded}
	}
	return op
}

// end counts the response of a request begun with begin: its status
// (0: none was sent), how long it took and its body's size.
func (op *opMetrics) end(status int, d time.Duration, bytes int64) {
	if op == nil {
		return
	}
	c := op.forCode(status)
	c.count.Inc()
	c.dur.Observe(d.Seconds())
	if op.download && status >= 200 && status < 300 {
		op.m.downloaded.Add(float64(bytes))
	}
}

// forCode returns the children of status, creating them on first use.
func (op *opMetrics) forCode(status int) codeMetrics {
	if p := op.codes.Load(); p != nil {
		if c, ok := (*p)[status]; ok {
			return c
		}
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	old := op.codes.Load()
	if old != nil {
		if c, ok := (*old)[status]; ok {
			return c
		}
	}
	code := strconv.Itoa(status)
	c := codeMetrics{count: op.m.requests.WithLabelValues(op.id, code), dur: op.m.duration.WithLabelValues(op.id, code)}
	next := make(map[int]codeMetrics, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[status] = c
	op.codes.Store(&next)
	return c
}

// countedBody counts the bytes read from a request body.
type countedBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}

// execEnded counts a command's end: its result, or the error of its wait.
func (m *metrics) execEnded(res driver.ExecResult, err error) {
	r := execOK
	switch {
	case err != nil:
		r = execError
	case res.TimedOut:
		r = execTimeout
	case res.OOMKilled:
		r = execOOM
	case res.ExitCode != 0:
		r = execNonzero
	}
	m.execs[r].Inc()
}

// execRefused counts a command the backend refused for lack of room.
func (m *metrics) execRefused(err error) {
	if errors.Is(err, driver.ErrBusy) {
		m.rejections.Inc()
	}
}

// serve answers GET (and HEAD) /metrics in the text format, whatever
// the client's Accept header asks for (the contract declares text/plain);
// other requests go to next.
func (m *metrics) serve(next http.Handler) http.Handler {
	format := string(expfmt.NewFormat(expfmt.TypeTextPlain))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Set("Accept", format)
		m.scrape.ServeHTTP(w, &r2)
	})
}

// GetMetrics is the contract's entry for GET /metrics, which metrics.serve
// answers before the router: a request never reaches it.
func (h *handlers) GetMetrics(ctx context.Context, req noxapi.GetMetricsRequestObject) (noxapi.GetMetricsResponseObject, error) {
	return errorResponse{status: http.StatusNotFound, msg: "no such endpoint"}, nil
}
