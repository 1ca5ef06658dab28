package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// processOps are the processes extension's operations, on process 1 of
// sandbox a.
var processOps = []struct {
	method, path string
	body         any
}{
	{"POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"sleep", "9"}}},
	{"GET", "/v1/sandboxes/a/processes", nil},
	{"GET", "/v1/sandboxes/a/processes/1", nil},
	{"DELETE", "/v1/sandboxes/a/processes/1", nil},
	{"GET", "/v1/sandboxes/a/processes/1/wait?timeoutSeconds=0", nil},
	{"GET", "/v1/sandboxes/a/processes/1/output?follow=false", nil},
	{"POST", "/v1/sandboxes/a/processes/1/stdin", "data"},
	{"POST", "/v1/sandboxes/a/processes/1/signal", map[string]any{"signal": "TERM"}},
	{"POST", "/v1/sandboxes/a/processes/1/resize", map[string]any{"rows": 24, "cols": 80}},
	{"GET", "/v1/sandboxes/a/processes/1/terminal", nil},
}

// A backend that does not implement driver.Processes, or does not list
// processes, has neither processes nor processes.terminal advertised (nor
// their limits), and the endpoints answer 404 "no such endpoint".
func TestProcessesAbsent(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, e *env) {
		resp, body := e.do("GET", "/v1/info", nil)
		var info noxapi.Info
		if err := json.Unmarshal(body, &info); err != nil || resp.StatusCode != 200 {
			t.Fatalf("info: %d %s %v", resp.StatusCode, body, err)
		}
		if slices.Contains(info.Extensions, api.ExtProcesses) || slices.Contains(info.Extensions, api.ExtProcessesTerminal) {
			t.Errorf("extensions %v advertise processes", info.Extensions)
		}
		if l := info.Limits; l.MaxProcessesPerSandbox != nil || l.MaxProcessWaitSeconds != nil || l.ProcessOutputBytes != nil {
			t.Errorf("process limits advertised: %s", body)
		}
		for _, op := range processOps {
			resp, body := e.do(op.method, op.path, op.body)
			expectError(t, resp, body, 404, "no such endpoint")
		}
	}
	t.Run("not implemented", func(t *testing.T) {
		t.Parallel()
		check(t, setup(t, &double{info: procInfo()}, server.Options{}))
	})
	t.Run("not listed", func(t *testing.T) {
		t.Parallel()
		e, _ := setupProcs(t, server.Options{}, func(in *driver.Info) { in.Extensions = fullInfo().Extensions })
		check(t, e)
	})
}

func TestProcessesInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		edit     func(*driver.Info)
		wait     int32
		stdin    int64 // 0: not advertised
		wantExts []string
	}{
		{"defaults", nil, 60, 0, []string{"processes", "processes.terminal"}},
		{"backend's wait and exec.stdin", func(in *driver.Info) {
			in.Limits.MaxProcessWait, in.Limits.MaxStdinBytes = 90*time.Second, 1000
			in.Extensions = append(in.Extensions, api.ExtExecStdin)
		}, 90, 1000, []string{"exec.stdin", "processes", "processes.terminal"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e, _ := setupProcs(t, server.Options{}, c.edit)
			resp, body := e.do("GET", "/v1/info", nil)
			var info noxapi.Info
			if err := json.Unmarshal(body, &info); err != nil || resp.StatusCode != 200 {
				t.Fatalf("info: %d %s %v", resp.StatusCode, body, err)
			}
			for _, x := range c.wantExts {
				if !slices.Contains(info.Extensions, x) {
					t.Errorf("extensions %v lack %s", info.Extensions, x)
				}
			}
			l := info.Limits
			if *l.MaxProcessesPerSandbox != 4 || *l.MaxProcessRecords != 16 || *l.ProcessOutputBytes != 1<<20 || *l.MaxProcessWaitSeconds != c.wait {
				t.Errorf("limits %s", body)
			}
			if c.stdin == 0 && l.MaxStdinBytes != nil || c.stdin != 0 && (l.MaxStdinBytes == nil || *l.MaxStdinBytes != c.stdin) {
				t.Errorf("maxStdinBytes in %s, want %d", body, c.stdin)
			}
		})
	}
}

// The server checks a start's meaning and applies its defaults before
// the backend sees it.
func TestStartProcess(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	bad := []struct {
		body any
		want string
	}{
		{map[string]any{}, "cmd"},
		{map[string]any{"cmd": []string{}}, "cmd"},
		{map[string]any{"cmd": []string{""}}, "cmd"},
		{map[string]any{"cmd": []string{"a", "b\x00"}}, "cmd: element 1"},
		{map[string]any{"cmd": []string{"a"}, "workdir": "rel"}, "workdir"},
		{map[string]any{"cmd": []string{"a"}, "env": map[string]string{"A=B": "1"}}, "env"},
		{map[string]any{"cmd": []string{"a"}, "timeoutSeconds": -1}, "timeoutSeconds"},
		{map[string]any{"cmd": []string{"a"}, "timeoutSeconds": 61}, "timeoutSeconds: must be between 0 (no timeout) and 60"},
		{map[string]any{"cmd": []string{"a"}, "pty": map[string]any{"rows": 0, "cols": 80}}, "rows"},
		{map[string]any{"cmd": []string{"a"}, "pty": map[string]any{"rows": 24, "cols": 1001}}, "cols"},
		{map[string]any{"cmd": []string{"a"}, "tag": strings.Repeat("t", 129)}, "tag"},
	}
	for _, c := range bad {
		resp, body := e.do("POST", "/v1/sandboxes/a/processes", c.body)
		expectError(t, resp, body, 400, c.want)
	}
	if n := len(d.startedRequests()); n != 0 {
		t.Fatalf("the backend saw %d invalid starts", n)
	}

	resp, body := e.do("POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"sleep", "9"}})
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	var rec noxapi.Process
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != "1" || rec.State != noxapi.Running || rec.ExitCode != nil || *rec.Workdir != "/workspace" || !reflect.DeepEqual(rec.Cmd, []string{"sleep", "9"}) || *rec.Pty || rec.Tag != nil {
		t.Errorf("record %s", body)
	}
	resp, body = e.do("POST", "/v1/sandboxes/a/processes", map[string]any{
		"cmd": []string{"sh"}, "workdir": "/workspace/a/../b/", "env": map[string]string{"A": "1"},
		"timeoutSeconds": 60, "stdin": true, "pty": map[string]any{"rows": 24, "cols": 80}, "tag": "web",
	})
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	got := d.startedRequests()
	want := []driver.ProcessRequest{
		{Argv: []string{"sleep", "9"}, Workdir: "/workspace"},
		{Argv: []string{"sh"}, Workdir: "/workspace/b", Env: map[string]string{"A": "1"}, Timeout: time.Minute, Stdin: true, PTY: &driver.TermSize{Rows: 24, Cols: 80}, Tag: "web"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests %+v, want %+v", got, want)
	}
}

// Backend errors are answered by category on every operation.
func TestProcessErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("sandbox %q: %w", "a", driver.ErrNotFound), 404, `sandbox "a" not found`},
		{fmt.Errorf("too many processes: %w", driver.ErrBusy), 503, "too many processes"},
		{errors.New("disk on fire"), 500, "internal error (request id "},
	}
	for _, c := range cases {
		e, d := setupProcs(t, server.Options{}, nil)
		d.double.err = c.err
		for _, op := range processOps[:len(processOps)-1] { // the terminal: TestTerminalErrors
			resp, body := e.do(op.method, op.path, op.body)
			expectError(t, resp, body, c.status, c.msg)
			if c.status == 503 && resp.Header.Get("Retry-After") != "1" {
				t.Errorf("%s %s: no Retry-After", op.method, op.path)
			}
		}
	}
	// Unknown process; ids the contract refuses.
	e, _ := setupProcs(t, server.Options{}, nil)
	for _, op := range processOps[2 : len(processOps)-1] {
		resp, body := e.do(op.method, op.path, op.body)
		expectError(t, resp, body, 404, `process "1" not found`)
		resp, body = e.do(op.method, strings.Replace(op.path, "/1", "/-x", 1), op.body)
		expectError(t, resp, body, 400, "processId")
		resp, body = e.do(op.method, strings.Replace(op.path, "/a/", "/-a/", 1), op.body)
		expectError(t, resp, body, 400, "sessionId")
	}
}

func TestProcessRecords(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	resp, body := e.do("GET", "/v1/sandboxes/a/processes", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"items":[]}` {
		t.Fatalf("empty list: %d %s", resp.StatusCode, body)
	}
	for _, tag := range []string{"web", "", "web"} {
		if resp, body := e.do("POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"x"}, "tag": tag}); resp.StatusCode != 201 {
			t.Fatalf("start: %d %s", resp.StatusCode, body)
		}
	}
	var list noxapi.ProcessList
	ids := func(path string) []string {
		t.Helper()
		resp, body := e.do("GET", path, nil)
		if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		var out []string
		for _, p := range list.Items {
			out = append(out, p.ID)
		}
		return out
	}
	if got := ids("/v1/sandboxes/a/processes"); !reflect.DeepEqual(got, []string{"1", "2", "3"}) {
		t.Errorf("list %v", got)
	}
	if got := ids("/v1/sandboxes/a/processes?tag=web"); !reflect.DeepEqual(got, []string{"1", "3"}) {
		t.Errorf("list ?tag=web %v", got)
	}

	// Signal: TERM ends the fake; an unknown one is refused.
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/1/signal", map[string]any{"signal": "SIGTERM"})
	expectError(t, resp, body, 400, "signal")
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/1/signal", map[string]any{"signal": "USR1"})
	var rec noxapi.Process
	if err := json.Unmarshal(body, &rec); err != nil || resp.StatusCode != 200 || rec.State != noxapi.Running {
		t.Fatalf("signal USR1: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/1/signal", map[string]any{"signal": "TERM"})
	if err := json.Unmarshal(body, &rec); err != nil || resp.StatusCode != 200 || rec.State != noxapi.Exited || *rec.ExitCode != 143 || *rec.Signal != "TERM" || rec.EndedAt == nil {
		t.Fatalf("signal TERM: %d %s", resp.StatusCode, body)
	}
	if got := d.proc(1).received(); !reflect.DeepEqual(got, []driver.Signal{driver.SIGUSR1, driver.SIGTERM}) {
		t.Errorf("signals %v", got)
	}

	// Kill answers the final record; killing again answers it unchanged.
	for range 2 {
		resp, body = e.do("DELETE", "/v1/sandboxes/a/processes/2", nil)
		if err := json.Unmarshal(body, &rec); err != nil || resp.StatusCode != 200 || rec.State != noxapi.Exited || *rec.ExitCode != 137 || *rec.Signal != "KILL" {
			t.Fatalf("kill: %d %s", resp.StatusCode, body)
		}
	}
	resp, body = e.do("GET", "/v1/sandboxes/a/processes/2", nil)
	if err := json.Unmarshal(body, &rec); err != nil || resp.StatusCode != 200 || rec.ID != "2" || *rec.ExitCode != 137 {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}

	// Resize: 409 without a terminal, 400 out of bounds, else 204.
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/3/resize", map[string]any{"rows": 24, "cols": 80})
	expectError(t, resp, body, 409, "no terminal")
	resp, body = e.do("POST", "/v1/sandboxes/a/processes", map[string]any{"cmd": []string{"sh"}, "pty": map[string]any{"rows": 24, "cols": 80}})
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/4/resize", map[string]any{"rows": 0, "cols": 80})
	expectError(t, resp, body, 400, "rows")
	resp, body = e.do("POST", "/v1/sandboxes/a/processes/4/resize", map[string]any{"rows": 50, "cols": 132})
	if resp.StatusCode != 204 {
		t.Fatalf("resize: %d %s", resp.StatusCode, body)
	}
	if got := d.proc(4).resized(); !reflect.DeepEqual(got, []driver.TermSize{{Rows: 50, Cols: 132}}) {
		t.Errorf("sizes %v", got)
	}
}
