package server_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// setupMem serves the reference backend with sandbox a created.
func setupMem(t testing.TB) *env {
	t.Helper()
	return setupMemWith(t, membackend.Config{})
}

// setupMemWith is setupMem with the backend's configuration given.
func setupMemWith(t testing.TB, cfg membackend.Config) *env {
	t.Helper()
	cfg.Dir = t.TempDir()
	b, err := membackend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{StreamHeartbeat: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL}
	if resp, body := e.do("PUT", "/v1/sandboxes/a", map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return e
}

// startMem starts a process and returns its record.
func startMem(t *testing.T, e *env, body map[string]any) noxapi.Process {
	t.Helper()
	resp, data := e.do("POST", "/v1/sandboxes/a/processes", body)
	var rec noxapi.Process
	if err := json.Unmarshal(data, &rec); err != nil || resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, data)
	}
	return rec
}

// record decodes a Process answer with status 200.
func record(t *testing.T, e *env, method, path string, body any) noxapi.Process {
	t.Helper()
	resp, data := e.do(method, path, body)
	var rec noxapi.Process
	if err := json.Unmarshal(data, &rec); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return rec
}

// End to end through the reference backend: the extensions advertised,
// exec with stdin, a process fed through stdin, output followed across
// reconnects, signal and kill, and a terminal that knows its size.
func TestMembackendProcesses(t *testing.T) {
	t.Parallel()
	e := setupMem(t)
	var info noxapi.Info
	if _, body := e.do("GET", "/v1/info", nil); json.Unmarshal(body, &info) != nil {
		t.Fatalf("info %s", body)
	}
	for _, x := range []string{api.ExtExecStdin, api.ExtProcesses, api.ExtProcessesTerminal} {
		if !slices.Contains(info.Extensions, x) {
			t.Errorf("extensions %v lack %s", info.Extensions, x)
		}
	}
	if *info.Limits.MaxStdinBytes != 512<<10 || *info.Limits.MaxProcessWaitSeconds != 60 {
		t.Errorf("limits %+v", info.Limits)
	}

	t.Run("exec stdin", func(t *testing.T) {
		t.Parallel()
		for _, b := range []map[string]any{{"stdin": "hi\n"}, {"stdin": "aGkK", "stdinEncoding": "base64"}} {
			b["cmd"] = []string{"cat"}
			resp, body := e.do("POST", "/v1/sandboxes/a/exec", b)
			var res noxapi.ExecResult
			if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != 200 || res.Stdout != "hi\n" {
				t.Errorf("exec %v: %d %s", b, resp.StatusCode, body)
			}
		}
	})

	t.Run("stdin round trip", func(t *testing.T) {
		t.Parallel()
		rec := startMem(t, e, map[string]any{"cmd": []string{"sh", "-c", "read x; echo got $x"}, "stdin": true, "tag": "rt"})
		path := "/v1/sandboxes/a/processes/" + rec.ID
		resp, body := e.send("POST", path+"/stdin?close=true", strings.NewReader("hello\n"), nil)
		stdinResult(t, resp, body, noxapi.StdinResult{Written: 6, Closed: true})
		if rec = record(t, e, "GET", path+"/wait", nil); rec.State != noxapi.Exited || *rec.ExitCode != 0 {
			t.Fatalf("wait: %+v", rec)
		}
		s := openOutputOf(t, e, rec.ID, "?follow=false", nil)
		if ev := s.nextEvent(); ev.name != "output" || !strings.Contains(ev.data, `"data":"got hello\n"`) {
			t.Errorf("output %+v", ev)
		}
		exitEvent(t, s.nextEvent(), 0)
	})

	t.Run("follow across reconnects", func(t *testing.T) {
		t.Parallel()
		rec := startMem(t, e, map[string]any{"cmd": []string{"sh", "-c", "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.05; done"}})
		var got strings.Builder
		lastID := ""
		for done := false; !done; {
			hdr := map[string]string{}
			if lastID != "" {
				hdr["Last-Event-ID"] = lastID
			}
			s := openOutputOf(t, e, rec.ID, "", hdr)
			ev := s.nextEvent() // one event per connection
			switch ev.name {
			case "output":
				var c noxapi.ProcessOutputChunk
				if err := json.Unmarshal([]byte(ev.data), &c); err != nil || c.Offset != int64(got.Len()) {
					t.Fatalf("chunk %s after %d bytes", ev.data, got.Len())
				}
				got.WriteString(*c.Data)
				lastID = ev.id
			case "exit":
				done = true
			default:
				t.Fatalf("event %+v", ev)
			}
			s.resp.Body.Close()
		}
		if want := "line1\nline2\nline3\nline4\nline5\nline6\n"; got.String() != want {
			t.Errorf("followed %q, want %q", got.String(), want)
		}
	})

	t.Run("signal and kill", func(t *testing.T) {
		t.Parallel()
		rec := startMem(t, e, map[string]any{"cmd": []string{"sleep", "60"}})
		path := "/v1/sandboxes/a/processes/" + rec.ID
		record(t, e, "POST", path+"/signal", map[string]any{"signal": "TERM"})
		if rec = record(t, e, "GET", path+"/wait?timeoutSeconds=10", nil); rec.State != noxapi.Exited || *rec.ExitCode != 143 || *rec.Signal != "TERM" {
			t.Errorf("after TERM: %+v", rec)
		}
		rec = startMem(t, e, map[string]any{"cmd": []string{"sleep", "60"}})
		if rec = record(t, e, "DELETE", "/v1/sandboxes/a/processes/"+rec.ID, nil); rec.State != noxapi.Exited || *rec.ExitCode != 137 {
			t.Errorf("kill: %+v", rec)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		rec := startMem(t, e, map[string]any{"cmd": []string{"sh"}, "pty": map[string]any{"rows": 24, "cols": 80}})
		c := mustDial(t, e.url, rec.ID, "?hangup=true", nil)
		c.send(websocket.MessageBinary, "tty; stty size\n")
		c.waitOutput("/dev/pts/")
		c.waitOutput("24 80")
		c.send(websocket.MessageText, `{"type":"resize","rows":40,"cols":100}`)
		c.send(websocket.MessageBinary, "stty size; exit 3\n")
		c.waitOutput("40 100")
		for {
			m := c.next()
			if m.typ == websocket.MessageText {
				var v struct{ Process noxapi.Process }
				if err := json.Unmarshal([]byte(m.data), &v); err != nil || *v.Process.ExitCode != 3 {
					t.Fatalf("exit message %s", m.data)
				}
				break
			}
			if m.err != nil {
				t.Fatalf("no exit message: %v", m.err)
			}
		}
		c.expectClose(websocket.StatusNormalClosure)
	})
}

// waitOutput reads binary messages until the output after the previous
// match holds want.
func (c *termClient) waitOutput(want string) {
	c.t.Helper()
	for {
		if i := strings.Index(c.pending, want); i >= 0 {
			c.pending = c.pending[i+len(want):]
			return
		}
		m := c.next()
		if m.err != nil || m.typ != websocket.MessageBinary {
			c.t.Fatalf("output %q, then %+v; want %q", c.pending, m, want)
		}
		c.pending += m.data
	}
}
