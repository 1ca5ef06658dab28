package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// TestLocalAcrossInvocations runs separate nox --local invocations on one
// data directory, as a user would, against the real local backend.
func TestLocalAcrossInvocations(t *testing.T) {
	dataDir := needLocal(t)
	local := []string{"--local", "--data-dir", dataDir}
	step := func(stdin string, want int, args ...string) result {
		t.Helper()
		r := nox(t, stdin, append(local, args...)...)
		if r.code != want {
			t.Fatalf("nox %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), r.code, want, r.stderr)
		}
		return r
	}
	step("", 0, "create", "demo", "--wait")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.sh"), []byte("echo hello from $(pwd)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("", 0, "upload", "demo", filepath.Join(src, "hello.sh"))
	if r := step("", 0, "exec", "demo", "--", "sh", "hello.sh"); r.stdout != "hello from /workspace\n" {
		t.Errorf("exec stdout = %q", r.stdout)
	}
	step("", 3, "sh", "demo", "echo partial; exit 3")
	// --local-test is the Python CLI's name for --local.
	if r := nox(t, "", "--local-test", "--data-dir", dataDir, "ls"); r.code != 0 || !strings.Contains(r.stdout, "demo") {
		t.Errorf("nox --local-test ls: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := step("", 0, "ls"); !strings.Contains(r.stdout, "demo") {
		t.Errorf("ls does not list demo: %q", r.stdout)
	}
	if r := step("", 0, "--json", "get", "demo"); !strings.Contains(r.stdout, `"sessionId": "demo"`) {
		t.Errorf("get --json: %q", r.stdout)
	}
	if r := step("mkdir -p sub/dir\ncd sub/dir\npwd\necho $((6*7)) | cat\n", 0, "shell", "demo"); !strings.Contains(r.stdout, "/workspace/sub/dir\n42\n") {
		t.Errorf("shell stdout = %q", r.stdout)
	}
	out := t.TempDir()
	step("", 0, "download", "demo", "--extract", out)
	if b, err := os.ReadFile(filepath.Join(out, "hello.sh")); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("downloaded hello.sh: %q, %v", b, err)
	}
	step("", 0, "delete", "demo")
	if r := step("", 1, "get", "demo"); !strings.Contains(r.stderr, `sandbox "demo" not found (404)`) {
		t.Errorf("get after delete: %q", r.stderr)
	}
	if r := step("", 0, "info"); !strings.Contains(r.stdout, "nox-local") {
		t.Errorf("info: %q", r.stdout)
	}
}

// TestServeShutsDownGracefully serves the local backend on a free port,
// uses it, and cancels the context as SIGINT or SIGTERM would.
func TestServeShutsDownGracefully(t *testing.T) {
	dataDir := needLocal(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"nox", "--data-dir", dataDir, "serve", "--listen", "127.0.0.1:0"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	url := ""
	var banner []string
	for sc.Scan() {
		banner = append(banner, sc.Text())
		if u, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "listening on"); ok {
			url = strings.TrimSpace(u)
		}
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "auth") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		t.Fatalf("no address in the banner %q; stderr %s", banner, stderr.String())
	}
	if !strings.Contains(strings.Join(banner, "\n"), "isolation") {
		t.Errorf("banner without the isolation tier: %q", banner)
	}
	cl, err := sdk.New(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if _, err := cl.Create(ctx, "served", sdk.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after the context ended; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of the context ending")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("no shutdown log on stderr:\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
