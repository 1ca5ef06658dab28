package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// BenchmarkOutputReplay measures the server's replay of 1 MiB of kept
// output (256 chunks of 4 KiB) as Server-Sent Events, over the scripted
// double: the HTTP layer's cost, without a backend's.
func BenchmarkOutputReplay(b *testing.B) {
	e, d := setupProcs(b, server.Options{}, nil)
	resp, body := e.do("POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"x"}})
	if resp.StatusCode != 201 {
		b.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	p := d.proc(1)
	chunk := strings.Repeat("0123456789abcdef", 256)
	for range 256 {
		p.emit(driver.Stdout, chunk)
	}
	p.exit(0, "")
	b.SetBytes(256 * int64(len(chunk)))
	for b.Loop() {
		resp, err := http.Get(e.url + "/v1/sandboxes/a/processes/1/output")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n < 1<<20 {
			b.Fatalf("read %d bytes", n)
		}
	}
}

// BenchmarkFirstOutput measures, through the reference backend, the time
// from a startProcess request to the first output event of its stream:
// start `echo hi`, open the output, read one event.
func BenchmarkFirstOutput(b *testing.B) {
	e := setupMem(b)
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		resp, data := e.do("POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"echo", "hi"}})
		var rec noxapi.Process
		if err := json.Unmarshal(data, &rec); err != nil || resp.StatusCode != 201 {
			b.Fatalf("start: %d %s", resp.StatusCode, data)
		}
		out, err := http.Get(e.url + "/v1/sandboxes/a/processes/" + rec.ID + "/output")
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out.Body)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: output") {
		}
		worst = max(worst, time.Since(start))
		out.Body.Close()
		e.do("DELETE", "/v1/sandboxes/a/processes/"+rec.ID, nil)
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}
