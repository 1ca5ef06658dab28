package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/sdk"
)

// The process commands run here against the reference test backend
// (membackend behind package server), whose processes are host
// processes. nox runs in this process (the nox helper) except where a
// second, concurrent nox is needed: then it runs as a subprocess, the
// test binary installed as nox in $PATH by testscript.Main.

// mustNox runs nox in process and fails the test unless it exits with
// want.
func mustNox(t *testing.T, want int, stdin string, args ...string) result {
	t.Helper()
	r := nox(t, stdin, args...)
	if r.code != want {
		t.Fatalf("nox %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// noxProcess starts nox as a subprocess against baseURL.
func noxProcess(t *testing.T, baseURL string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("nox")
	if err != nil {
		t.Fatalf("nox is not in $PATH (testscript.Main puts it there): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOXRUNNER_BASE_URL="+baseURL, "NO_COLOR=1")
	return cmd
}

// readUntil reads r until what it read contains want, and returns it;
// it fails the test when r ends first.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading until %q: %v; read %q", want, err, got)
		}
	}
	return string(got)
}

// backends returns the base URLs of the reference test backend and, where
// it isolates sandboxes here, of the local backend served on loopback.
func backends(t *testing.T) map[string]string {
	t.Helper()
	_, mem := newTestBackend(t, testbackend.Options{})
	urls := map[string]string{"mem": mem}
	if ok, why := localUsable(t); !ok {
		t.Logf("local backend unavailable: %s", why)
		return urls
	}
	b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := b.Close(); err != nil {
			t.Errorf("closing the local backend: %v", err)
		}
	})
	urls["local"] = srv.URL
	return urls
}

// TestProcessCommands runs start, logs (followed from another nox
// process), stdin, wait, ps, kill and logs' offsets and streams, against
// the reference backend and the local one.
func TestProcessCommands(t *testing.T) {
	for kind, url := range backends(t) {
		t.Run(kind, func(t *testing.T) { processCommands(t, url) })
	}
}

func processCommands(t *testing.T, url string) {
	base := []string{"--base-url", url}
	run := func(want int, stdin string, args ...string) result {
		t.Helper()
		return mustNox(t, want, stdin, append(base, args...)...)
	}
	run(0, "", "create", "procs")

	// start prints the id of a process that outlives it.
	r := run(0, "", "start", "procs", "--tag", "job", "--stdin", "sh", "-c", "echo before; read x; echo after $x; exit 5")
	pid := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(pid) {
		t.Fatalf("start printed %q, want a process id", r.stdout)
	}

	// Another nox follows the output: what was printed before it
	// attached, then after.
	follow := noxProcess(t, url, "logs", "procs", pid, "-f")
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill() })
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil || line != "before\n" {
		t.Fatalf("logs -f printed %q, %v; want before", line, err)
	}
	run(0, "go\n", "stdin", "procs", pid)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "after go\n" {
		t.Errorf("logs -f then printed %q, %v; want after go", rest, err)
	}
	if err := follow.Wait(); err != nil {
		t.Errorf("logs -f: %v", err)
	}

	r = run(5, "", "wait", "procs", pid)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("wait printed %q, %q", r.stdout, r.stderr)
	}
	r = run(5, "", "--json", "wait", "procs", pid)
	var rec map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || rec["sessionId"] != "procs" || rec["exitCode"] != 5.0 || rec["state"] != "exited" {
		t.Errorf("wait --json printed %s (%v)", r.stdout, err)
	}
	if r := run(0, "", "logs", "procs", pid); r.stdout != "before\nafter go\n" {
		t.Errorf("logs printed %q", r.stdout)
	}
	if r := run(0, "", "logs", "procs", pid, "--from", "7"); r.stdout != "after go\n" {
		t.Errorf("logs --from 7 printed %q", r.stdout)
	}
	r = run(0, "", "--json", "logs", "procs", pid, "--from", "7")
	if !strings.Contains(r.stdout, `{"offset":7,"stream":"stdout","data":"after go\n"}`) {
		t.Errorf("logs --json printed %q", r.stdout)
	}

	// Stdout and stderr stay apart, byte for byte.
	pid2 := strings.TrimSpace(run(0, "", "start", "procs", "--", "sh", "-c", `printf 'out\000\377'; printf 'err\n' >&2`).stdout)
	run(0, "", "wait", "procs", pid2)
	if r := run(0, "", "logs", "procs", pid2); r.stdout != "out\x00\xff" || r.stderr != "err\n" {
		t.Errorf("logs printed stdout %q, stderr %q", r.stdout, r.stderr)
	}

	// ps lists them.
	r = run(0, "", "ps", "procs")
	for _, want := range []string{"PROC", pid + " ", "exited 5", "job", "sh -c echo before"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ps does not show %q:\n%s", want, r.stdout)
		}
	}
	r = run(0, "", "--json", "ps", "procs", "--tag", "job")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["id"] != pid {
		t.Errorf("ps --json --tag job printed %s (%v)", r.stdout, err)
	}

	// kill sends a signal, or kills the tree.
	sleeper := strings.TrimSpace(run(0, "", "start", "procs", "sleep", "60").stdout)
	if r := run(0, "", "kill", "procs", sleeper, "--signal", "term"); !strings.Contains(r.stdout, "sent SIGTERM") {
		t.Errorf("kill --signal term printed %q", r.stdout)
	}
	if r := run(143, "", "wait", "procs", sleeper); !strings.Contains(r.stderr, "killed by SIGTERM") {
		t.Errorf("wait after TERM printed %q", r.stderr)
	}
	tree := strings.TrimSpace(run(0, "", "start", "procs", "sh", "-c", "sleep 60 & sleep 60").stdout)
	if r := run(0, "", "kill", "procs", tree); !strings.Contains(r.stdout, "killed by SIGKILL (exit 137)") {
		t.Errorf("kill printed %q", r.stdout)
	}

	// Mistakes.
	if r := run(1, "", "logs", "procs", "99"); !strings.Contains(r.stderr, `sandbox "procs": process "99" not found (404)`) {
		t.Errorf("logs of an unknown process: %q", r.stderr)
	}
	if r := run(1, "", "ps", "nosuch"); !strings.Contains(r.stderr, `sandbox "nosuch" not found (404)`) {
		t.Errorf("ps of an unknown sandbox: %q", r.stderr)
	}
	run(2, "", "kill", "procs", tree, "--signal", "bogus")
	run(2, "", "wait", "procs")
	run(2, "", "start", "procs")
	if r := run(1, "", "attach", "procs", tree); !strings.Contains(r.stderr, "no terminal") {
		t.Errorf("attach to a process without a terminal: %q", r.stderr)
	}
	if r := run(1, "", "--local-inprocess", "--data-dir", t.TempDir(), "start", "procs", "sleep", "1"); !strings.Contains(r.stderr, "use --local") {
		t.Errorf("start --local-inprocess: %q", r.stderr)
	}
}

// TestStartOutlivesNox starts a web server with nox start, and checks
// that it serves once nox has returned, until nox kill ends it.
func TestStartOutlivesNox(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3 here")
	}
	_, url := newTestBackend(t, testbackend.Options{})
	base := []string{"--base-url", url}
	mustNox(t, 0, "", append(base, "create", "web")...)
	r := mustNox(t, 0, "", append(base, "start", "web", "--tag", "web", "--", "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "0")...)
	pid := strings.TrimSpace(r.stdout)
	// The port it chose is in its output; a new nox follows it.
	follow := noxProcess(t, url, "logs", "web", pid, "-f")
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	banner := readUntil(t, out, ") ...")
	port := regexp.MustCompile(`port (\d+)`).FindStringSubmatch(banner)
	if port == nil {
		t.Fatalf("no port in %q", banner)
	}
	resp, err := http.Get("http://127.0.0.1:" + port[1] + "/")
	if err != nil {
		t.Fatalf("the server started by nox start does not answer: %v", err)
	}
	resp.Body.Close()
	if r := mustNox(t, 0, "", append(base, "kill", "web", pid)...); !strings.Contains(r.stdout, "killed") {
		t.Errorf("kill printed %q", r.stdout)
	}
	if err := follow.Wait(); err != nil {
		t.Errorf("logs -f after the kill: %v", err)
	}
}

// TestExecForwardsStdin checks that exec and sh forward a piped stdin,
// and refuse it clearly on a backend without exec.stdin.
func TestExecForwardsStdin(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	base := []string{"--base-url", url}
	mustNox(t, 0, "", append(base, "create", "in")...)
	if r := mustNox(t, 0, "hi\n", append(base, "exec", "in", "--", "sh", "-c", "read x; echo got $x")...); r.stdout != "got hi\n" {
		t.Errorf("exec stdout %q", r.stdout)
	}
	if r := mustNox(t, 0, "a\nb\n", append(base, "sh", "in", "wc -l")...); strings.TrimSpace(r.stdout) != "2" {
		t.Errorf("sh stdout %q", r.stdout)
	}
	if r := mustNox(t, 0, "hi\n", append(base, "exec", "in", "--no-stdin", "--", "cat")...); r.stdout != "" {
		t.Errorf("exec --no-stdin stdout %q", r.stdout)
	}

	// A backend without exec.stdin.
	exts := []string{"sandboxes.get", "sandboxes.list", "exec.flags", "files.ops"}
	_, old := newTestBackend(t, testbackend.Options{Backend: membackend.Config{Extensions: exts}})
	base = []string{"--base-url", old}
	mustNox(t, 0, "", append(base, "create", "in")...)
	r := mustNox(t, 1, "hi\n", append(base, "exec", "in", "--", "cat")...)
	for _, want := range []string{"exec.stdin", "--no-stdin"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("exec with stdin on a backend without exec.stdin: %q does not say %q", r.stderr, want)
		}
	}
	mustNox(t, 0, "", append(base, "exec", "in", "--", "true")...)
	mustNox(t, 0, "hi\n", append(base, "exec", "in", "-n", "--", "true")...)
}

func TestParseSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want sdk.Signal
	}{
		{"TERM", sdk.SIGTERM}, {"SIGTERM", sdk.SIGTERM}, {"term", sdk.SIGTERM}, {"sigterm", sdk.SIGTERM},
		{"15", sdk.SIGTERM}, {"9", sdk.SIGKILL}, {"int", sdk.SIGINT}, {"2", sdk.SIGINT}, {"HUP", sdk.SIGHUP},
		{"28", sdk.SIGWINCH}, {"usr1", sdk.SIGUSR1}, {"10", sdk.SIGUSR1},
		{"", ""}, {"SEGV", ""}, {"11", ""}, {"SIG", ""}, {"-15", ""},
	} {
		got, err := parseSignal(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("parseSignal(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// Every signal of the contract has its number.
	for _, sig := range sdk.Signals() {
		if _, ok := signalNumbers[sig]; !ok {
			t.Errorf("no number for %s", sig)
		}
		if n, err := parseSignal(fmt.Sprint(signalNumbers[sig])); n != sig || err != nil {
			t.Errorf("parseSignal(%d) = %q, %v", signalNumbers[sig], n, err)
		}
	}
}
