package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/quirks"
	"github.com/noxrunner/nox/internal/testbackend"
)

// timeForms names every timestamp form of internal/quirks.
var timeForms = []struct {
	name string
	form quirks.TimeForm
}{
	{"rfc3339", quirks.TimeRFC3339},
	{"offset-and-z", quirks.TimeOffsetAndZ},
	{"no-zone", quirks.TimeNoZone},
	{"epoch", quirks.TimeEpochSeconds},
}

// TestFirstCommandsOnQuirkyBackends runs the commands a user runs first
// against backends with every departure of internal/quirks (each
// timestamp form; 201 and 204 answers; fractional numbers;
// Content-Length-only bodies; implicit create; no extensions): each exits
// 0 and does its work. Not parallel: see nox.
func TestFirstCommandsOnQuirkyBackends(t *testing.T) {
	local := t.TempDir()
	writeTestFile(t, filepath.Join(local, "hello.txt"), "hello\n")
	writeTestFile(t, filepath.Join(local, "data.txt"), "some data\n")
	writeTestFile(t, filepath.Join(local, "tree/sub/deep.txt"), "deep\n")
	t.Chdir(local)
	for _, tf := range timeForms {
		t.Run(tf.name, func(t *testing.T) {
			q := quirks.All(tf.form)
			_, url := newTestBackend(t, testbackend.Options{Quirks: &q})
			run := func(stdin string, want int, args ...string) result {
				t.Helper()
				r := nox(t, stdin, append([]string{"--base-url", url, "--no-color"}, args...)...)
				if r.code != want {
					t.Fatalf("nox %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
				}
				return r
			}
			expires := regexp.MustCompile(`expires 20\d\d-\d\d-\d\dT`)
			if r := run("", 0, "create", "q", "--ttl", "600"); !expires.MatchString(r.stdout) {
				t.Errorf("create: %q shows no expiry", r.stdout)
			}
			if r := run("", 0, "--json", "create", "q"); !strings.Contains(r.stdout, `"expiresAt": "20`) {
				t.Errorf("create --json: %q has no expiresAt", r.stdout)
			}
			run("", 0, "upload", "q", "hello.txt", "data.txt")
			run("", 0, "upload", "q", "--dir", "tree", "--dest", "/workspace/tree")
			if r := run("", 0, "exec", "q", "--", "cat", "hello.txt", "data.txt", "tree/sub/deep.txt"); r.stdout != "hello\nsome data\ndeep\n" {
				t.Errorf("exec: stdout %q", r.stdout)
			}
			if r := run("", 3, "sh", "q", "echo one > out.txt && cat out.txt; exit 3"); r.stdout != "one\n" {
				t.Errorf("sh: stdout %q", r.stdout)
			}
			if r := run("cd tree\npwd\ncat sub/deep.txt\n", 0, "shell", "q"); r.stdout != "/workspace/tree\ndeep\n" {
				t.Errorf("shell: stdout %q", r.stdout)
			}
			got := filepath.Join(t.TempDir(), "got")
			run("", 0, "download", "q", "--src", "/workspace/tree", "--extract", got)
			if b, err := os.ReadFile(filepath.Join(got, "sub/deep.txt")); err != nil || string(b) != "deep\n" {
				t.Errorf("download --extract: %q, %v", b, err)
			}
			// A touch answered without an expiry says nothing about it.
			if r := run("", 0, "touch", "q"); r.stdout != `touched sandbox "q"`+"\n" && !expires.MatchString(r.stdout) {
				t.Errorf("touch: stdout %q, want the expiry or nothing about it", r.stdout)
			}
			run("", 0, "delete", "q")
			// What a plain v1 backend lacks is said, not mistaken for a
			// missing sandbox.
			if r := run("", 1, "get", "q"); !strings.Contains(r.stderr, "does not support it (extension sandboxes.get)") {
				t.Errorf("get: stderr %q", r.stderr)
			}
		})
	}
}

// TestShellWhereTheCdProbeFails starts nox shell on a backend that maps
// working directories but not the paths in a command: checking
// --workdir /workspace fails there, and the shell warns and goes on in
// the backend's default directory.
func TestShellWhereTheCdProbeFails(t *testing.T) {
	q := quirks.Quirks{ArgvPathsUnmapped: true}
	_, url := newTestBackend(t, testbackend.Options{Quirks: &q})
	base := []string{"--base-url", url, "--no-color"}
	if r := nox(t, "", append(base, "create", "p")...); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	if r := nox(t, "", append(base, "sh", "p", "echo inside > f.txt")...); r.code != 0 {
		t.Fatalf("sh: %d %s", r.code, r.stderr)
	}
	r := nox(t, "cat f.txt\npwd\n", append(base, "shell", "p", "--workdir", "/workspace")...)
	if r.code != 0 || r.stdout != "inside\n/workspace\n" {
		t.Errorf("shell: exit %d, stdout %q, want 0 and the file and the directory", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "warning: shell: cannot check directory /workspace") || !strings.Contains(r.stderr, "default directory") {
		t.Errorf("shell: stderr %q lacks the warning", r.stderr)
	}
	// A missing sandbox still ends it.
	if r := nox(t, "pwd\n", append(base, "shell", "gone")...); r.code != exitError || !strings.Contains(r.stderr, "not found (404)") {
		t.Errorf("shell on a missing sandbox: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDebugShowsTheExchange checks that --debug prints each request and
// answer on stderr, and leaves stdout alone.
func TestDebugShowsTheExchange(t *testing.T) {
	q := quirks.Quirks{Create201: true}
	_, url := newTestBackend(t, testbackend.Options{Quirks: &q})
	r := nox(t, "", "--base-url", url, "--no-color", "--token", "tok", "--debug", "create", "dbg")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "created sandbox") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	for _, want := range []string{"> PUT " + url + "/v1/sandboxes/dbg", "> Content-Type: application/json", "> Authorization: Bearer ***",
		"> Content-Length: 2", "> {}", "< 201 Created", "< X-Request-Id: ", `< {"expiresAt":"20`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "tok") {
		t.Errorf("the token leaked into the debug output:\n%s", r.stderr)
	}
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
