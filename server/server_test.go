package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{Token: "s3cret"})
	e.token = ""
	resp, body := e.do("GET", "/healthz", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("healthz needs no token: %d %s", resp.StatusCode, body)
	}
	for _, p := range []struct{ method, path string }{{"GET", "/v1/info"}, {"GET", "/v1/sandboxes"}, {"PUT", "/v1/sandboxes/a"}, {"GET", "/v1/nope"}} {
		resp, body := e.do(p.method, p.path, nil)
		expectError(t, resp, body, 401, "bearer token")
	}
	e.token = "wrong"
	resp, body = e.do("GET", "/v1/info", nil)
	expectError(t, resp, body, 401, "bearer token")
	e.token = "s3cret"
	resp, body = e.do("GET", "/v1/info", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "auth.bearer") {
		t.Fatalf("info with token: %d %s", resp.StatusCode, body)
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	resp, body := e.do("GET", "/v1/nope", nil)
	expectError(t, resp, body, 404, "no such endpoint")
	resp, body = e.do("PATCH", "/v1/sandboxes/a", nil)
	expectError(t, resp, body, 405, "not allowed")
	resp, body = e.do("GET", "/", nil)
	expectError(t, resp, body, 404, "")
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	for _, c := range []struct{ sent, want string }{{"abc-123", "abc-123"}, {"bad id\twith spaces", ""}, {"", ""}} {
		req, _ := http.NewRequest("GET", e.url+"/healthz", nil)
		req.Header.Set("X-Request-Id", c.sent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-Id")
		if c.want != "" && got != c.want || c.want == "" && (got == "" || got == c.sent) {
			t.Errorf("sent %q: request id %q", c.sent, got)
		}
		if !strings.Contains(e.logs.String(), `"requestId":"`+got+`"`) {
			t.Errorf("no access log line for request %q", got)
		}
	}
}

func TestInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		backend []string
		token   string
		want    []string
	}{
		{"v1 backend", nil, "", []string{"info", "exec.stream", "upload.chunked", "metrics"}},
		{"every extension, contract order", []string{"exec.flags", "sandboxes.list", "sandboxes.get"}, "t", []string{"info", "sandboxes.get", "sandboxes.list", "exec.stream", "exec.flags", "auth.bearer", "upload.chunked", "metrics"}},
		{"server-owned names ignored", []string{"auth.bearer", "upload.chunked", "info", "exec.stream", "sandboxes.get"}, "", []string{"info", "sandboxes.get", "exec.stream", "upload.chunked", "metrics"}},
		{"sandboxes.usage when listed", []string{"sandboxes.usage"}, "", []string{"info", "exec.stream", "upload.chunked", "sandboxes.usage", "metrics"}},
		{"unknown names kept last", []string{"x.future", "exec.flags"}, "", []string{"info", "exec.stream", "exec.flags", "upload.chunked", "metrics", "x.future"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := fullInfo()
			in.Extensions = c.backend
			e := setup(t, &double{info: in}, server.Options{Token: c.token, MaxUploadBytes: 1000, StreamHeartbeat: 3 * time.Second})
			resp, body := e.do("GET", "/v1/info", nil)
			var got noxapi.Info
			if err := json.Unmarshal(body, &got); resp.StatusCode != 200 || err != nil {
				t.Fatalf("info: %d %s %v", resp.StatusCode, body, err)
			}
			if !reflect.DeepEqual(got.Extensions, c.want) {
				t.Errorf("extensions = %v, want %v", got.Extensions, c.want)
			}
			l := got.Limits
			if *l.MaxUploadBytes != 1000 || *l.StreamHeartbeatSeconds != 3 || *l.MaxTTLSeconds != 3600 || l.MaxOutputBytes != nil || l.MaxConcurrentExecs != nil {
				t.Errorf("limits = %s", body)
			}
			if got.Backend.Name != "double" || got.Isolation.Tier != "test" || strings.Join(got.Images, ",") != "default,python" {
				t.Errorf("info = %s", body)
			}
		})
	}
}

func TestIsolationHeader(t *testing.T) {
	t.Parallel()
	for _, iso := range []*driver.Isolation{nil, {Tier: "test", Isolated: true}, {Tier: "none-unsafe"}} {
		in := fullInfo()
		in.Isolation = iso
		e := setup(t, &double{info: in}, server.Options{})
		for _, p := range []string{"/healthz", "/v1/info", "/v1/nope"} {
			resp, _ := e.do("GET", p, nil)
			want := ""
			if iso != nil && !iso.Isolated {
				want = "none-unsafe"
			}
			if got := resp.Header.Get(server.IsolationHeader); got != want {
				t.Errorf("isolation %+v: %s: %s %q, want %q", iso, p, server.IsolationHeader, got, want)
			}
		}
	}
}

// A backend without sandboxes.get or sandboxes.list answers those
// endpoints as a server that does not have them.
func TestMissingExtensions(t *testing.T) {
	t.Parallel()
	in := fullInfo()
	in.Extensions = nil
	e := setup(t, &double{info: in}, server.Options{})
	for _, p := range []string{"/v1/sandboxes", "/v1/sandboxes?pageSize=0", "/v1/sandboxes/a", "/v1/sandboxes/-bad-id"} {
		resp, body := e.do("GET", p, nil)
		expectError(t, resp, body, 404, "no such endpoint: GET "+strings.Split(p, "?")[0])
	}
	// The other operations on those paths still work.
	if resp, body := e.do("PUT", "/v1/sandboxes/a", map[string]any{}); resp.StatusCode != 200 {
		t.Errorf("create: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do("DELETE", "/v1/sandboxes/a", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d %s", resp.StatusCode, body)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err        error
		status     int
		msg        string
		retryAfter string
	}{
		// A 404's message says "not found": clients show it as it is.
		{fmt.Errorf("sandbox %q: %w", "a", driver.ErrNotFound), 404, `{"error":"sandbox \"a\" not found"}`, ""},
		{fmt.Errorf("sandbox %q is being deleted: %w", "a", driver.ErrNotFound), 404, `{"error":"sandbox \"a\" is being deleted: not found"}`, ""},
		{fmt.Errorf("dest: bad: %w", driver.ErrInvalidArgument), 400, "dest: bad", ""},
		{fmt.Errorf("archive too big: %w", driver.ErrTooLarge), 413, "archive too big", ""},
		{fmt.Errorf("too many commands: %w", driver.ErrBusy), 503, "too many commands", "1"},
		{fmt.Errorf("being deleted: %w", driver.ErrUnavailable), 503, "being deleted", "1"},
		{errors.New("disk on fire"), 500, "internal error (request id ", ""},
	}
	for _, c := range cases {
		e := setup(t, &double{info: fullInfo(), err: c.err}, server.Options{})
		for _, op := range []struct {
			method, path string
			body         any
		}{
			{"PUT", "/v1/sandboxes/a", map[string]any{}},
			{"GET", "/v1/sandboxes/a", nil},
			{"GET", "/v1/sandboxes", nil},
			{"DELETE", "/v1/sandboxes/a", nil},
			{"POST", "/v1/sandboxes/a/touch", nil},
			{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"true"}}},
			{"POST", "/v1/sandboxes/a/exec/stream", map[string]any{"cmd": []string{"true"}}},
			{"GET", "/v1/sandboxes/a/files/download", nil},
		} {
			resp, body := e.do(op.method, op.path, op.body)
			if strings.HasPrefix(c.msg, "{") {
				if got := strings.TrimSpace(string(body)); resp.StatusCode != c.status || got != c.msg {
					t.Errorf("%s %s: %d %s, want %d %s", op.method, op.path, resp.StatusCode, got, c.status, c.msg)
				}
				continue
			}
			expectError(t, resp, body, c.status, c.msg)
			if sentinel := errors.Unwrap(c.err); sentinel != nil && strings.Contains(string(body), ": "+sentinel.Error()) {
				t.Errorf("%s %s: sentinel text not trimmed: %s", op.method, op.path, body)
			}
			if got := resp.Header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("%s %s: Retry-After %q, want %q", op.method, op.path, got, c.retryAfter)
			}
			if c.status == 500 {
				id := resp.Header.Get("X-Request-Id")
				if !strings.Contains(string(body), "request id "+id+")") || strings.Contains(string(body), "fire") {
					t.Errorf("500 body %s (request id %s)", body, id)
				}
				if !strings.Contains(e.logs.String(), "disk on fire") {
					t.Error("internal error not logged")
				}
			}
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := setup(t, &double{info: fullInfo(), err: fmt.Errorf("backend is closed: %w", driver.ErrUnavailable)}, server.Options{})
	resp, body := e.do("GET", "/healthz", nil)
	if resp.StatusCode != 503 || string(body) != "backend is closed" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
}

// The server checks meaning the contract cannot express, with messages
// naming the field, before the backend sees a request.
func TestValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	cases := []struct {
		method, path string
		body         any
		want         string
	}{
		{"PUT", "/v1/sandboxes/a", map[string]any{"ttlSeconds": 7200}, "ttlSeconds: must be between 1 and 3600"},
		{"PUT", "/v1/sandboxes/a", map[string]any{"image": "python:3"}, `image: unknown image "python:3"; available: default, python`},
		{"PUT", "/v1/sandboxes/a", map[string]any{"cpuLimit": "64"}, `cpuLimit: "64" exceeds the maximum 4`},
		{"PUT", "/v1/sandboxes/a", map[string]any{"memoryLimit": "0"}, "memoryLimit: must be greater than zero"},
		{"PUT", "/v1/sandboxes/a", map[string]any{"memoryLimit": "9Gi"}, `memoryLimit: "9Gi" exceeds the maximum 8Gi`},
		{"PUT", "/v1/sandboxes/a", map[string]any{"cpuLimit": "1m"}, `cpuLimit: "1m" is below the minimum 10m`},
		{"PUT", "/v1/sandboxes/a", map[string]any{"memoryLimit": "1Mi"}, `memoryLimit: "1Mi" is below the minimum 16Mi`},
		{"PUT", "/v1/sandboxes/a", map[string]any{"cpuLimit": "1e99"}, "cpuLimit"},
		{"PUT", "/v1/sandboxes/-a", map[string]any{}, "sessionId: must be 1 to 128 characters"},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{}}, "cmd"},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{""}}, "cmd: the program name (cmd[0]) must not be empty"},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"a", "b\x00"}}, "cmd: element 1 contains a NUL byte"},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"true"}, "timeoutSeconds": 61}, "timeoutSeconds: must be between 1 and 60"},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"true"}, "workdir": "sub"}, `workdir: "sub" must be an absolute path`},
		{"POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"true"}, "env": map[string]string{"A=B": "x"}}, `env: invalid variable "A=B"`},
		{"POST", "/v1/sandboxes/a/exec/stream", map[string]any{"cmd": []string{"true"}, "env": map[string]string{"A": "\x00"}}, `env: invalid variable "A"`},
		{"GET", "/v1/sandboxes?pageToken=not*base64", nil, "pageToken: malformed"},
		{"GET", "/v1/sandboxes?pageSize=0", nil, "pageSize"},
	}
	for _, c := range cases {
		resp, body := e.do(c.method, c.path, c.body)
		expectError(t, resp, body, 400, c.want)
	}
	if creates, execs, _ := e.d.requests(); len(creates) != 0 || len(execs) != 0 {
		t.Errorf("invalid requests reached the backend: %+v %+v", creates, execs)
	}
}

// The server applies the defaults the backend's Info reports.
func TestDefaults(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	e.do("PUT", "/v1/sandboxes/a", map[string]any{})
	e.do("PUT", "/v1/sandboxes/a", map[string]any{"ttlSeconds": 60, "image": "python", "cpuLimit": "500m", "memoryLimit": "1.5Gi", "ephemeralStorageLimit": "1G"})
	wantCreates := []driver.CreateRequest{
		{CPUMilli: 1000, MemoryBytes: 1 << 30, StorageBytes: 2 << 30},
		{TTL: time.Minute, Image: "python", CPUMilli: 500, MemoryBytes: 3 << 29, StorageBytes: 1e9},
	}
	if creates, _, _ := e.d.requests(); !reflect.DeepEqual(creates, wantCreates) {
		t.Errorf("creates = %+v, want %+v", creates, wantCreates)
	}
	e.do("POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"ls"}})
	e.do("POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"ls", "-l"}, "workdir": "/workspace/x/../y/", "timeoutSeconds": 5, "env": map[string]string{"K": "v"}})
	wantExecs := []driver.ExecRequest{
		{Argv: []string{"ls"}, Workdir: "/workspace", Timeout: 30 * time.Second},
		{Argv: []string{"ls", "-l"}, Workdir: "/workspace/y", Timeout: 5 * time.Second, Env: map[string]string{"K": "v"}},
	}
	if _, execs, _ := e.d.requests(); !reflect.DeepEqual(execs, wantExecs) {
		t.Errorf("execs = %+v, want %+v", execs, wantExecs)
	}
}

func TestExecFlags(t *testing.T) {
	t.Parallel()
	for _, flags := range []bool{true, false} {
		in := fullInfo()
		if !flags {
			in.Extensions = []string{api.ExtSandboxesGet}
		}
		e := setup(t, &double{info: in}, server.Options{})
		resp, body := e.do("POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"true"}})
		if resp.StatusCode != 200 || strings.Contains(string(body), "timedOut") != flags {
			t.Errorf("exec.flags %v: %d %s", flags, resp.StatusCode, body)
		}
	}
}

// Reading an upload past MaxUploadBytes is an ErrTooLarge error for the
// backend, answered 413.
func TestUploadLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{MaxUploadBytes: 10})
	resp, body := e.do("POST", "/v1/sandboxes/a/files/upload", strings.Repeat("x", 11))
	expectError(t, resp, body, 413, "body: exceeds the limit of 10 bytes")
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/a/files/upload", strings.NewReader(strings.Repeat("x", 11)))
	req.ContentLength = -1 // chunked: caught while reading
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if resp.StatusCode != 413 || b.Error != "archive exceeds the upload limit of 10 bytes" {
		t.Errorf("chunked upload: %d %q", resp.StatusCode, b.Error)
	}
	if _, _, uploads := e.d.requests(); len(uploads) != 1 || !errors.Is(uploads[0], driver.ErrTooLarge) {
		t.Errorf("backend read error = %v", uploads)
	}
}

// A backend out of storage for an upload (ErrInsufficientStorage) is
// answered 507 with its message.
func TestUploadInsufficientStorage(t *testing.T) {
	t.Parallel()
	e := setup(t, &double{info: fullInfo(), err: fmt.Errorf("no space left in the sandbox's ephemeral storage: %w", driver.ErrInsufficientStorage)}, server.Options{})
	resp, body := e.do("POST", "/v1/sandboxes/a/files/upload", "x")
	expectError(t, resp, body, 507, "no space left in the sandbox's ephemeral storage")
	if strings.Contains(string(body), driver.ErrInsufficientStorage.Error()) {
		t.Errorf("sentinel text not trimmed: %s", body)
	}
}

// readEvents reads a stream up to its exit or error event; comments have
// an empty name.
func readEvents(t *testing.T, resp *http.Response) []struct{ name, data string } {
	t.Helper()
	var evs []struct{ name, data string }
	sc := bufio.NewScanner(resp.Body)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ": "):
			evs = append(evs, struct{ name, data string }{"", line[2:]})
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			evs = append(evs, struct{ name, data string }{name, line[len("data: "):]})
			if name == "exit" || name == "error" {
				return evs
			}
		}
	}
	return evs
}

func TestExecStream(t *testing.T) {
	t.Parallel()
	d := &double{info: fullInfo(), wait: func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
		out(driver.Stdout, "one\n")
		time.Sleep(300 * time.Millisecond)
		out(driver.Stderr, "two\n")
		return driver.ExecResult{ExitCode: 5, Stdout: "one\n", Stderr: "two\n"}, nil
	}}
	e := setup(t, d, server.Options{StreamHeartbeat: 100 * time.Millisecond})
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/a/exec/stream", strings.NewReader(`{"cmd":["x"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var names []string
	evs := readEvents(t, resp)
	for _, ev := range evs {
		if len(names) == 0 || names[len(names)-1] != ev.name {
			names = append(names, ev.name)
		}
	}
	if got := strings.Join(names, ","); got != "stdout,,stderr,exit" {
		t.Errorf("events = %q (%+v)", got, evs)
	}
	if last := evs[len(evs)-1].data; !strings.Contains(last, `"exitCode":5`) || !strings.Contains(last, `"stderr":"two\n"`) {
		t.Errorf("exit = %s", last)
	}
}

func TestExecStreamError(t *testing.T) {
	t.Parallel()
	d := &double{info: fullInfo(), wait: func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
		out(driver.Stdout, "partial\n")
		return driver.ExecResult{}, errors.New("runtime failure")
	}}
	e := setup(t, d, server.Options{})
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/a/exec/stream", strings.NewReader(`{"cmd":["x"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readEvents(t, resp)
	if len(evs) != 2 || evs[0].name != "stdout" || evs[1].name != "error" || !strings.Contains(evs[1].data, `"error":"internal error (request id `) {
		t.Errorf("events = %+v", evs)
	}
}

// A client that goes away cancels the command.
func TestExecStreamDisconnect(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	d := &double{info: fullInfo(), wait: func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
		out(driver.Stdout, "started\n")
		<-ctx.Done()
		close(cancelled)
		return driver.ExecResult{}, ctx.Err()
	}}
	e := setup(t, d, server.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/v1/sandboxes/a/exec/stream", strings.NewReader(`{"cmd":["x"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "event: stdout\n" {
		t.Fatalf("first line %q", line)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the command was not cancelled when the client went away")
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	if _, err := server.New(&double{info: fullInfo()}, server.Options{MaxUploadBytes: -1}); err == nil {
		t.Error("negative MaxUploadBytes accepted")
	}
}
