package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// startFake starts a process through e and returns its fake.
func startFake(t *testing.T, e *env, d *procDouble, body map[string]any) *fakeProc {
	t.Helper()
	if body == nil {
		body = map[string]any{"cmd": []string{"x"}}
	}
	resp, data := e.do("POST", "/v1/sandboxes/a/processes", body)
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, data)
	}
	var rec noxapi.Process
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return d.procs[len(d.procs)-1]
}

// waitRecord sends a wait and returns the record and how long it took.
func waitRecord(t *testing.T, url string) (noxapi.Process, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("wait: %d %s %v", resp.StatusCode, body, err)
	}
	var rec noxapi.Process
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	return rec, took
}

func TestWaitProcess(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, func(in *driver.Info) { in.Limits.MaxProcessWait = time.Second })
	p := startFake(t, e, d, nil)
	base := e.url + "/v1/sandboxes/a/processes/1/wait"

	// timeoutSeconds=0 answers at once; the cap (1 s here) bounds a
	// longer wait, which answers the running record.
	if rec, took := waitRecord(t, base+"?timeoutSeconds=0"); rec.State != noxapi.Running {
		t.Errorf("timeoutSeconds=0: %+v after %s", rec, took)
	}
	rec, took := waitRecord(t, base+"?timeoutSeconds=30")
	t.Logf("a wait capped at 1s answered after %s", took)
	if rec.State != noxapi.Running || took > 20*time.Second {
		t.Errorf("capped wait: %+v after %s", rec, took)
	}

	// A process that ends during the wait: its final record.
	go func() {
		for p.activeWaiters() == 0 {
			time.Sleep(time.Millisecond)
		}
		p.exit(3, "")
	}()
	rec, _ = waitRecord(t, base)
	if rec.State != noxapi.Exited || *rec.ExitCode != 3 {
		t.Errorf("wait: %+v", rec)
	}

	// A client that goes away does not affect the process.
	q := startFake(t, e, d, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/sandboxes/a/processes/2/wait", nil)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if in := q.Info(); in.State != driver.ProcessRunning || len(q.received()) != 0 {
		t.Errorf("after the waiter went away: %+v, signals %v", in, q.received())
	}
}

// A wait writes nothing until it ends: a server's WriteTimeout shorter
// than the wait must not cut it, with or without the stall deadlines.
func TestWaitOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	for _, stall := range []time.Duration{-1, 300 * time.Millisecond} {
		d := newProcDouble()
		h, err := server.New(d, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Config.WriteTimeout = 200 * time.Millisecond
		srv.Start()
		defer srv.Close()
		e := &env{t: t, d: d.double, url: srv.URL}
		startFake(t, e, d, nil)
		rec, took := waitRecord(t, srv.URL+"/v1/sandboxes/a/processes/1/wait?timeoutSeconds=1")
		if rec.State != noxapi.Running {
			t.Errorf("stall %s: %+v", stall, rec)
		}
		t.Logf("stall %s: a 1s wait under a 200ms WriteTimeout answered after %s", stall, took)
	}
}
