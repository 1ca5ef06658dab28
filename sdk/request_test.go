package sdk

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// bodyRecorder is a backend that records the JSON body of every create and
// exec request and answers with canned successes.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, basePath)
	w.Header().Set("Content-Type", "application/json")
	if path == "/v1/info" {
		io.WriteString(w, `{"apiVersion":"v1","backend":{"name":"rec","version":"0"},"extensions":["info","exec.stream"]}`)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad JSON"}`)
		return
	}
	b.mu.Lock()
	b.bodies = append(b.bodies, body)
	b.mu.Unlock()
	const result = `{"exitCode":0,"stdout":"","stderr":"","durationMs":1}`
	switch {
	case r.Method == http.MethodPut:
		io.WriteString(w, `{"podName":"p","expiresAt":"2030-01-02T03:04:05Z"}`)
	case strings.HasSuffix(path, "/exec/stream"):
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: exit\ndata: "+result+"\n\n")
	default:
		io.WriteString(w, result)
	}
}

// take returns the bodies recorded since the last call.
func (b *bodyRecorder) take() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.bodies
	b.bodies = nil
	return out
}

// TestOptionalFieldsNotSent checks that zero optional fields stay out of
// the request, so the backend's defaults apply, and that set ones are
// sent.
func TestOptionalFieldsNotSent(t *testing.T) {
	t.Parallel()
	rec := &bodyRecorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+basePath, WithoutRetry())
	assertNoErr(t, err)
	ctx := context.Background()
	env := map[string]string{"K": "v"}
	full := ExecRequest{Cmd: []string{"ls"}, Workdir: "/workspace/src", Env: env, Timeout: 1500 * time.Millisecond}
	for _, tc := range []struct {
		name string
		call func() error
		want string // the body sent
	}{
		{"create zero", func() error { _, err := c.Create(ctx, "s", CreateOptions{}); return err },
			`{}`},
		{"create negative ttl", func() error { _, err := c.Create(ctx, "s", CreateOptions{TTL: -time.Second}); return err },
			`{}`},
		{"create set", func() error {
			_, err := c.Create(ctx, "s", CreateOptions{TTL: 90 * time.Second, Image: "img", CPU: "1", Memory: "1Gi", Storage: "2Gi"})
			return err
		}, `{"ttlSeconds":90,"image":"img","cpuLimit":"1","memoryLimit":"1Gi","ephemeralStorageLimit":"2Gi"}`},
		{"create ttl rounded up", func() error { _, err := c.Create(ctx, "s", CreateOptions{TTL: 1500 * time.Millisecond}); return err },
			`{"ttlSeconds":2}`},
		{"exec zero", func() error { _, err := c.Exec(ctx, "s", ExecRequest{Cmd: []string{"ls"}}); return err },
			`{"cmd":["ls"]}`},
		{"exec set", func() error { _, err := c.Exec(ctx, "s", full); return err },
			`{"cmd":["ls"],"workdir":"/workspace/src","env":{"K":"v"},"timeoutSeconds":2}`},
		{"stream zero", func() error {
			_, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"ls"}}, StreamOptions{})
			return err
		}, `{"cmd":["ls"]}`},
		{"stream set", func() error { _, err := c.ExecStream(ctx, "s", full, StreamOptions{}); return err },
			`{"cmd":["ls"],"workdir":"/workspace/src","env":{"K":"v"},"timeoutSeconds":2}`},
		{"shell zero", func() error { _, err := c.Shell(ctx, "s", "echo hi", ShellOptions{}); return err },
			`{"cmd":["sh","-c","echo hi"]}`},
		{"shell set", func() error {
			_, err := c.Shell(ctx, "s", "echo hi", ShellOptions{Shell: "bash", Workdir: "/tmp", Env: env, Timeout: 5 * time.Second})
			return err
		}, `{"cmd":["bash","-c","echo hi"],"workdir":"/tmp","env":{"K":"v"},"timeoutSeconds":5}`},
	} {
		if err := tc.call(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var want map[string]any
		assertNoErr(t, json.Unmarshal([]byte(tc.want), &want))
		got := rec.take()
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s: sent %v, want one body %v", tc.name, got, want)
		}
	}
}

// TestExecBudget checks what a command adds to the client's timeout: its
// own timeout, else the default the backend advertised, else the
// contract's.
func TestExecBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		info *Info
		req  ExecRequest
		want time.Duration
	}{
		{"timeout sent", &Info{Limits: Limits{DefaultTimeout: time.Minute}}, ExecRequest{Timeout: 1500 * time.Millisecond}, 2 * time.Second},
		{"no info yet", nil, ExecRequest{}, DefaultExecTimeout},
		{"advertised default", &Info{Limits: Limits{DefaultTimeout: time.Minute}}, ExecRequest{}, time.Minute},
		{"nothing advertised", &Info{}, ExecRequest{}, DefaultExecTimeout},
		{"plain v1", &Info{APIVersion: "v1", PlainV1: true}, ExecRequest{}, DefaultExecTimeout},
	} {
		c, err := New("http://nox.invalid")
		assertNoErr(t, err)
		if tc.info != nil {
			c.setInfo(tc.info)
		}
		assertEq(t, tc.name, c.execExtra(tc.req), tc.want)
	}
}

func TestShellCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		shell string
		want  string // the argv joined by "|", or "" for an error
	}{
		{"", "sh|-c|echo hi"},
		{"sh", "sh|-c|echo hi"},
		{"bash", "bash|-c|echo hi"},
		{"zsh", ""},
		{"/bin/sh", ""},
	} {
		argv, err := ShellCommand(tc.shell, "echo hi")
		if tc.want == "" {
			assertIs(t, err, ErrInvalidArgument)
			continue
		}
		assertNoErr(t, err)
		assertEq(t, tc.shell, strings.Join(argv, "|"), tc.want)
	}
	assertEq(t, "Shells()[0]", Shells()[0], DefaultShell)
}
