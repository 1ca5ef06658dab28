package localbackend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

func TestExec(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxOutputBytes = 1000; c.MaxExecTimeout = time.Minute })
	e.create("ex", nil)
	cases := []struct {
		name  string
		req   map[string]any
		check func(t *testing.T, r noxapi.ExecResult)
	}{
		{"echo", map[string]any{"cmd": []string{"echo", "hi"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.ExitCode != 0 || r.Stdout != "hi\n" || r.Stderr != "" || *r.TimedOut || *r.StdoutTruncated {
				t.Errorf("%+v", r)
			}
		}},
		{"exit code and stderr", map[string]any{"cmd": []string{"sh", "-c", "echo oops >&2; exit 3"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.ExitCode != 3 || r.Stderr != "oops\n" {
				t.Errorf("%+v", r)
			}
		}},
		{"not found", map[string]any{"cmd": []string{"no-such-command-xyz"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.ExitCode != 127 {
				t.Errorf("%+v", r)
			}
		}},
		{"argv not shell", map[string]any{"cmd": []string{"echo", "$HOME;", "|", "x"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.Stdout != "$HOME; | x\n" {
				t.Errorf("%+v", r)
			}
		}},
		{"clean env", map[string]any{"cmd": []string{"sh", "-c", "echo $HOME $LANG $TMPDIR $MY_VAR; env | wc -l"}, "env": map[string]string{"MY_VAR": "v1"}}, func(t *testing.T, r noxapi.ExecResult) {
			// sh adds PWD, SHLVL, _ ; the server passes PATH HOME LANG TMPDIR MY_VAR.
			lines := strings.Split(r.Stdout, "\n")
			if lines[0] != "/workspace C.UTF-8 /tmp v1" {
				t.Errorf("%+v", r)
			}
		}},
		{"timeout", map[string]any{"cmd": []string{"sleep", "10"}, "timeoutSeconds": 1}, func(t *testing.T, r noxapi.ExecResult) {
			if r.ExitCode != 124 || !*r.TimedOut || r.DurationMs < 900 || r.DurationMs > 5000 {
				t.Errorf("%+v", r)
			}
		}},
		{"truncated", map[string]any{"cmd": []string{"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; head -c 3000 /dev/zero >&2"}}, func(t *testing.T, r noxapi.ExecResult) {
			if len(r.Stdout) != 1000 || !*r.StdoutTruncated || !*r.StderrTruncated || !strings.HasPrefix(r.Stdout, "xxx") {
				t.Errorf("stdout %d truncated %v %v", len(r.Stdout), *r.StdoutTruncated, *r.StderrTruncated)
			}
		}},
		{"invalid utf8", map[string]any{"cmd": []string{"printf", "a\\377b\\303\\251"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.Stdout != "a\uFFFDbé" {
				t.Errorf("%q", r.Stdout)
			}
		}},
		{"workdir", map[string]any{"cmd": []string{"sh", "-c", "mkdir -p sub && echo ok"}, "workdir": "/workspace"}, func(t *testing.T, r noxapi.ExecResult) {
			if r.Stdout != "ok\n" {
				t.Errorf("%+v", r)
			}
		}},
		{"oom", map[string]any{"cmd": []string{"__oom"}}, func(t *testing.T, r noxapi.ExecResult) {
			if r.ExitCode != 137 || !*r.OomKilled || !strings.Contains(r.Stderr, "memory limit (1Gi)") {
				t.Errorf("%+v", r)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, e.exec("ex", c.req))
		})
	}
	bad := []struct {
		name string
		body any
		want string
	}{
		{"no cmd", map[string]any{}, "cmd"},
		{"empty cmd", map[string]any{"cmd": []string{}}, "cmd"},
		{"empty program", map[string]any{"cmd": []string{""}}, "cmd"},
		{"string cmd", map[string]any{"cmd": "ls -l"}, "cmd"},
		{"timeout zero", map[string]any{"cmd": []string{"true"}, "timeoutSeconds": 0}, "timeoutSeconds"},
		{"timeout over max", map[string]any{"cmd": []string{"true"}, "timeoutSeconds": 61}, "timeoutSeconds: must be between 1 and 60"},
		{"missing workdir", map[string]any{"cmd": []string{"true"}, "workdir": "/workspace/nope"}, `workdir: "/workspace/nope" does not exist`},
		{"relative workdir", map[string]any{"cmd": []string{"true"}, "workdir": "sub"}, "workdir"},
		{"bad env name", map[string]any{"cmd": []string{"true"}, "env": map[string]string{"A=B": "x"}}, "env"},
		{"env not string", map[string]any{"cmd": []string{"true"}, "env": map[string]any{"A": 1}}, "env.A"},
		{"malformed", `{"cmd":["x"`, "body"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do("POST", "/v1/sandboxes/ex/exec", c.body)
			expectError(t, resp, body, 400, c.want)
		})
	}
	// Concurrent commands in one sandbox: each announces itself and waits
	// until all four have, which only works when they run at the same time.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			script := fmt.Sprintf("touch .ready%d; for _ in $(seq 200); do [ $(ls .ready* 2>/dev/null | wc -l) -ge 4 ] && exit 0; sleep 0.05; done; exit 9", i)
			if r := e.exec("ex", map[string]any{"cmd": []string{"sh", "-c", script}, "timeoutSeconds": 30}); r.ExitCode != 0 {
				t.Errorf("concurrent exec %d did not see the other three run: %+v", i, r)
			}
		})
	}
	wg.Wait()
}

func TestExecConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxConcurrentExecs = 1; c.ExecQueueWait = 100 * time.Millisecond })
	e.create("busy", nil)
	done := make(chan noxapi.ExecResult)
	go func() { done <- e.exec("busy", map[string]any{"cmd": []string{"sleep", "1"}}) }()
	waitFor(t, func() bool { st, _ := e.b.store.get("busy"); return st.runningExecs == 1 })
	resp, body := e.do("POST", "/v1/sandboxes/busy/exec", map[string]any{"cmd": []string{"true"}})
	expectError(t, resp, body, 503, "too many concurrent commands")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	resp, body = e.do("POST", "/v1/sandboxes/busy/exec/stream", map[string]any{"cmd": []string{"true"}})
	expectError(t, resp, body, 503, "too many concurrent commands")
	// Unknown sandboxes are still 404 while busy.
	resp, body = e.do("POST", "/v1/sandboxes/other/exec", map[string]any{"cmd": []string{"true"}})
	expectError(t, resp, body, 404, "other")
	<-done
	if r := e.exec("busy", map[string]any{"cmd": []string{"true"}}); r.ExitCode != 0 {
		t.Errorf("after the slot freed: %+v", r)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sseEvent is one parsed Server-Sent Event ("" name: a comment).
type parsedEvent struct{ name, data string }

func readEvents(t *testing.T, sc *bufio.Scanner, stopAt string) []parsedEvent {
	t.Helper()
	var evs []parsedEvent
	var cur parsedEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				evs = append(evs, cur)
				if cur.name == stopAt {
					return evs
				}
			}
			cur = parsedEvent{}
		case strings.HasPrefix(line, ":"):
			evs = append(evs, parsedEvent{name: "", data: strings.TrimSpace(line[1:])})
		case strings.HasPrefix(line, "event: "):
			cur.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			if cur.data != "" {
				t.Errorf("multi-line data in event %s", cur.name)
			}
			cur.data = line[len("data: "):]
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	return evs
}

func TestExecStream(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.StreamHeartbeat = 150 * time.Millisecond })
	e.create("st", nil)
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/st/exec/stream",
		strings.NewReader(`{"cmd":["sh","-c","echo one; sleep 0.4; echo two >&2; printf 'caf\\303'; sleep 0.1; printf '\\251\\n'; exit 5"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs := readEvents(t, bufio.NewScanner(resp.Body), "exit")
	var stdout, stderr strings.Builder
	heartbeats := 0
	for i, ev := range evs {
		switch ev.name {
		case "":
			if ev.data == "heartbeat" {
				heartbeats++
			}
		case "stdout", "stderr":
			var c noxapi.OutputChunk
			if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
				t.Fatalf("chunk %q: %v", ev.data, err)
			}
			if strings.ContainsRune(c.Data, '\uFFFD') {
				t.Errorf("chunk split a character: %q", c.Data)
			}
			if ev.name == "stdout" {
				stdout.WriteString(c.Data)
			} else {
				stderr.WriteString(c.Data)
			}
		case "exit":
			if i != len(evs)-1 {
				t.Error("exit is not last")
			}
			var r noxapi.ExecResult
			if err := json.Unmarshal([]byte(ev.data), &r); err != nil {
				t.Fatal(err)
			}
			if r.ExitCode != 5 || r.Stdout != "one\ncafé\n" || r.Stderr != "two\n" {
				t.Errorf("exit = %+v", r)
			}
		default:
			t.Errorf("unexpected event %q", ev.name)
		}
	}
	if len(evs) == 0 || evs[len(evs)-1].name != "exit" {
		t.Fatalf("no exit event: %+v", evs)
	}
	if stdout.String() != "one\ncafé\n" || stderr.String() != "two\n" {
		t.Errorf("streamed stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if heartbeats == 0 {
		t.Error("no heartbeat during a 0.5 s silence with a 150 ms heartbeat")
	}
	// Errors before the stream are JSON.
	r2, body := e.do("POST", "/v1/sandboxes/nope/exec/stream", map[string]any{"cmd": []string{"true"}})
	expectError(t, r2, body, 404, "nope")
	r2, body = e.do("POST", "/v1/sandboxes/st/exec/stream", map[string]any{"cmd": []string{}})
	expectError(t, r2, body, 400, "cmd")
}

func TestExecStreamDisconnect(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("dc", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	marker := e.b.store.workspacePath(sandboxKey("dc")) + "/finished"
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/v1/sandboxes/dc/exec/stream",
		strings.NewReader(`{"cmd":["sh","-c","echo started; sleep 2; touch finished"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	if evs := readEvents(t, sc, "stdout"); len(evs) == 0 || evs[len(evs)-1].name != "stdout" {
		t.Fatalf("no stdout event: %+v", evs)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool { st, _ := e.b.store.get("dc"); return st.runningExecs == 0 })
	time.Sleep(2500 * time.Millisecond)
	if _, err := readFileIfExists(marker); err == nil {
		t.Error("the command kept running after the client disconnected")
	}
}

func TestNoneUnsafeHeader(t *testing.T) {
	t.Parallel()
	rt := &fakeRuntime{report: &sandbox.Report{Tier: sandbox.TierNoneUnsafe, Isolated: false, Notes: []string{"no isolation"}}}
	e := start(t, testConfig(t), rt)
	e.t = t
	for _, p := range []string{"/healthz", "/v1/info", "/v1/nope"} {
		resp, body := e.do("GET", p, nil)
		if resp.Header.Get(IsolationHeader) != "none-unsafe" {
			t.Errorf("%s: no %s header", p, IsolationHeader)
		}
		if p == "/v1/info" && !strings.Contains(string(body), `"isolated":false`) {
			t.Errorf("info: %s", body)
		}
	}
	if i := e.b.Info(); i.Isolated || i.Tier != "none-unsafe" {
		t.Errorf("Info = %+v", i)
	}
}

func TestRuntimeFailures(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxJSONBodyBytes, c.MaxStdinBytes = 1024, 512 })
	e.create("fail", nil)
	resp, body := e.do("POST", "/v1/sandboxes/fail/exec", map[string]any{"cmd": []string{"__fail"}})
	expectError(t, resp, body, 500, "internal error")
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/fail/exec/stream", strings.NewReader(`{"cmd":["__fail"]}`))
	req.Header.Set("Content-Type", "application/json")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	evs := readEvents(t, bufio.NewScanner(r2.Body), "error")
	r2.Body.Close()
	if len(evs) < 2 || evs[0].name != "stdout" || evs[len(evs)-1].name != "error" || !strings.Contains(evs[len(evs)-1].data, `"error":`) {
		t.Errorf("events = %+v", evs)
	}
	// JSON bodies are small: an exec body may hold MaxJSONBodyBytes plus
	// room for the largest stdin (6 bytes a byte, escaped), 4 KiB here.
	big := map[string]any{"cmd": []string{strings.Repeat("x", 8192)}}
	resp, body = e.do("POST", "/v1/sandboxes/fail/exec", big)
	expectError(t, resp, body, 400, "body: exceeds")
	data, _ := json.Marshal(big)
	req, _ = http.NewRequest("POST", e.url+"/v1/sandboxes/fail/exec", io.MultiReader(bytes.NewReader(data)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1 // chunked: caught while reading
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b3, _ := io.ReadAll(r3.Body)
	r3.Body.Close()
	expectError(t, r3, b3, 400, "body: exceeds")
}

// TestExecFairAdmission: one sandbox running as many commands as it may
// (plain and streamed) leaves the backend's other slots to its
// neighbours; its own extra commands get 503 with Retry-After.
func TestExecFairAdmission(t *testing.T) {
	t.Parallel()
	const perSandbox = 4
	e := setup(t, func(c *Config) {
		c.MaxConcurrentExecs, c.MaxConcurrentExecsPerSandbox, c.ExecQueueWait = 8, perSandbox, 300*time.Millisecond
	})
	e.create("hog", nil)
	e.create("neighbour", nil)
	const hogs = 8 // every backend slot
	statuses := make(chan int, hogs)
	var wg sync.WaitGroup
	for i := range hogs {
		path := "/v1/sandboxes/hog/exec"
		if i%4 == 0 {
			path += "/stream"
		}
		wg.Go(func() {
			resp, body := e.do("POST", path, map[string]any{"cmd": []string{"sleep", "2"}})
			if resp.StatusCode == 503 && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "per sandbox")) {
				t.Errorf("hog's extra command: 503 %s, Retry-After %q; want the per-sandbox limit named and Retry-After", body, resp.Header.Get("Retry-After"))
			}
			statuses <- resp.StatusCode
		})
	}
	waitFor(t, func() bool { st, _ := e.b.store.get("hog"); return st.runningExecs >= perSandbox })
	time.Sleep(50 * time.Millisecond) // let the others queue
	start := time.Now()
	resp, body := e.do("POST", "/v1/sandboxes/neighbour/exec", map[string]any{"cmd": []string{"true"}})
	if resp.StatusCode != 200 {
		t.Fatalf("neighbour's exec while the hog runs %d commands: %d %s", hogs, resp.StatusCode, body)
	}
	if took := time.Since(start); took > time.Second { // the queue wait is 2s
		t.Errorf("neighbour's exec waited %s for a slot", took)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] != perSandbox || count[503] != hogs-perSandbox {
		t.Errorf("hog's %d commands answered %v, want %d x 200 and %d x 503", hogs, count, perSandbox, hogs-perSandbox)
	}
	var info noxapi.Info
	_, data := e.do("GET", "/v1/info", nil)
	if err := json.Unmarshal(data, &info); err != nil || info.Limits.MaxConcurrentExecsPerSandbox == nil || *info.Limits.MaxConcurrentExecsPerSandbox != 4 {
		t.Errorf("info limits %s: want maxConcurrentExecsPerSandbox 4", data)
	}
}

func TestExecsPerSandboxDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ perSandbox, total, want int }{
		{0, 64, 16}, {0, 8, 4}, {0, 2, 2}, {32, 8, 8}, {3, 64, 3},
	} {
		c := Config{MaxConcurrentExecs: tc.total, MaxConcurrentExecsPerSandbox: tc.perSandbox}
		c.applyDefaults()
		if c.MaxConcurrentExecsPerSandbox != tc.want {
			t.Errorf("%d per sandbox of %d: got %d, want %d", tc.perSandbox, tc.total, c.MaxConcurrentExecsPerSandbox, tc.want)
		}
	}
}
