package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
