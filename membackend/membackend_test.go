package membackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
)

func newTest(t *testing.T, cfg Config) *Backend {
	t.Helper()
	cfg.Dir = t.TempDir()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func run(t *testing.T, b *Backend, id string, req driver.ExecRequest, out func(driver.Stream, string)) driver.ExecResult {
	t.Helper()
	ctx := context.Background()
	if req.Workdir == "" {
		req.Workdir = "/workspace"
	}
	if req.Timeout == 0 {
		req.Timeout = 10 * time.Second
	}
	e, err := b.StartExec(ctx, id, req)
	if err != nil {
		t.Fatalf("StartExec: %v", err)
	}
	res, err := e.Wait(ctx, out)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return res
}

func TestExecRewritesSandboxPaths(t *testing.T) {
	t.Parallel()
	b := newTest(t, Config{})
	if _, err := b.Create(context.Background(), "s", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	res := run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "echo x > /workspace/f && pwd && cat /workspace/f && echo $HOME"}}, nil)
	if want := "/workspace\nx\n/workspace\n"; res.Stdout != want || res.ExitCode != 0 {
		t.Fatalf("got exit %d stdout %q stderr %q, want %q", res.ExitCode, res.Stdout, res.Stderr, want)
	}
}

func TestExecEndings(t *testing.T) {
	t.Parallel()
	b := newTest(t, Config{Limits: driver.Limits{MaxOutputBytes: 4}})
	if _, err := b.Create(context.Background(), "s", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		req       driver.ExecRequest
		exit      int
		stdout    string
		truncated bool
		timedOut  bool
	}{
		{"exit code", driver.ExecRequest{Argv: []string{"sh", "-c", "exit 3"}}, 3, "", false, false},
		{"not found", driver.ExecRequest{Argv: []string{"no-such-program"}}, 127, "", false, false},
		{"capped", driver.ExecRequest{Argv: []string{"echo", "abcdefgh"}}, 0, "abcd", true, false},
		{"timeout", driver.ExecRequest{Argv: []string{"sleep", "10"}, Timeout: 100 * time.Millisecond}, 124, "", false, true},
		{"signal", driver.ExecRequest{Argv: []string{"sh", "-c", "kill -9 $$"}}, 137, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, b, "s", tt.req, nil)
			if res.ExitCode != tt.exit || res.Stdout != tt.stdout || res.StdoutTruncated != tt.truncated || res.TimedOut != tt.timedOut {
				t.Errorf("got %+v", res)
			}
		})
	}
}

func TestStreamedOutputSplitsOnCharacters(t *testing.T) {
	t.Parallel()
	b := newTest(t, Config{})
	if _, err := b.Create(context.Background(), "s", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	res := run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", `printf '\303'; sleep 0.1; printf '\251\n'`}}, func(s driver.Stream, chunk string) {
		if s == driver.Stdout {
			got.WriteString(chunk)
		}
	})
	if got.String() != "é\n" || res.Stdout != "é\n" {
		t.Fatalf("streamed %q, result %q; want %q", got.String(), res.Stdout, "é\n")
	}
}

func TestCompleteUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		from int
		want int
	}{
		{"", 0, 0},
		{"ab", 0, 2},
		{"a\xc3", 0, 1},
		{"a\xc3\xa9", 0, 3},
		{"\xe2\x82", 0, 0},
		{"\xe2\x82\xac", 0, 3},
		{"\xff", 0, 1},
		{"ab\xc3", 2, 2},
	}
	for _, tt := range tests {
		if got := completeUTF8([]byte(tt.in), tt.from); got != tt.want {
			t.Errorf("completeUTF8(%q, %d) = %d, want %d", tt.in, tt.from, got, tt.want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newTest(t, Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	if _, err := b.Create(ctx, "a", driver.CreateRequest{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "b", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	page, more, err := b.List(ctx, "", 1)
	if err != nil || more != true || len(page) != 1 || page[0].ID != "a" {
		t.Fatalf("List = %v, %v, %v", page, more, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := b.Get(ctx, "a"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get of an expired sandbox: %v, want ErrNotFound", err)
	}
	exp, err := b.Touch(ctx, "b")
	if err != nil || !exp.Equal(now.Add(900*time.Second)) {
		t.Fatalf("Touch = %v, %v", exp, err)
	}
	if err := b.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "b"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
}
