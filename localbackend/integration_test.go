package localbackend

import (
	"archive/tar"
	"bufio"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// realEnv starts a backend on the real sandbox runtime (tier auto). It
// skips when the host provides no isolation, unless NOX_REQUIRE_ISOLATION=1.
func realEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	c := testConfig(t)
	// Tiers without a mount namespace reach the workspace by its host path
	// under the sandbox uid: the temp dir's parents must be searchable.
	for d := c.DataDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if mod != nil {
		mod(&c)
	}
	b, err := New(c)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) && os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
			t.Skipf("no isolation on this host: %v", err)
		}
		t.Fatalf("New: %v", err)
	}
	return serve(t, b, c.Token)
}

func TestRealRuntime(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	t.Logf("tier %+v", e.b.Info())
}

// The tests below run through the real runtime (namespaces, cgroups...).

func TestRealExec(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("rx", nil)
	r := e.exec("rx", map[string]any{"cmd": []string{"sh", "-c", "pwd; env | sort"}, "env": map[string]string{"MY_VAR": "x"}})
	if r.ExitCode != 0 {
		t.Fatalf("exec: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if lines[0] != "/workspace" {
		t.Errorf("pwd = %q", lines[0])
	}
	env := strings.Join(lines[1:], " ")
	for _, want := range []string{"HOME=/workspace", "LANG=C.UTF-8", "TMPDIR=/tmp", "MY_VAR=x", "PATH=" + defaultPath} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s: %s", want, env)
		}
	}
	for _, leak := range []string{"GOPATH", "GOCACHE", "USER=", "SSH_", "NOX_"} {
		if strings.Contains(env, leak) {
			t.Errorf("server environment leaked (%s): %s", leak, env)
		}
	}
	if r := e.exec("rx", map[string]any{"cmd": []string{"no-such-cmd"}}); r.ExitCode != 127 {
		t.Errorf("not found: %+v", r)
	}
	if r := e.exec("rx", map[string]any{"cmd": []string{"sleep", "5"}, "timeoutSeconds": 1}); r.ExitCode != 124 || !*r.TimedOut {
		t.Errorf("timeout: %+v", r)
	}
	if r := e.exec("rx", map[string]any{"cmd": []string{"sh", "-c", "echo hi > /tmp/x && cat /tmp/x"}}); r.Stdout != "hi\n" {
		t.Errorf("private /tmp: %+v", r)
	}
	for _, wd := range []string{"/workspace/nope", "/nonexistent", "/etc/hostname"} {
		resp, body := e.do("POST", "/v1/sandboxes/rx/exec", map[string]any{"cmd": []string{"true"}, "workdir": wd})
		expectError(t, resp, body, 400, "workdir")
	}
	if r := e.exec("rx", map[string]any{"cmd": []string{"pwd"}, "workdir": "/tmp"}); r.Stdout != "/tmp\n" {
		t.Errorf("workdir /tmp: %+v", r)
	}
	e.exec("rx", map[string]any{"cmd": []string{"ln", "-s", "/etc", "etc"}})
	if r := e.exec("rx", map[string]any{"cmd": []string{"sh", "-c", "pwd -P"}, "workdir": "/workspace/etc"}); r.Stdout != "/etc\n" {
		t.Errorf("workdir through a link: %+v", r)
	}
	st, err := e.b.store.get("rx")
	if err != nil || st.state != "ready" {
		t.Errorf("state = %+v %v", st, err)
	}
}

func TestRealFiles(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("rf", nil)
	ents := []tarEntry{
		{name: "d/", typ: tar.TypeDir, mode: 0o755},
		{name: "d/f.txt", body: "content\n", mode: 0o644},
		{name: "d/l", typ: tar.TypeSymlink, link: "f.txt"},
	}
	resp, body := e.do("POST", "/v1/sandboxes/rf/files/upload", tarGz(t, ents))
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	// The sandbox owns (and can change) what was uploaded.
	if r := e.exec("rf", map[string]any{"cmd": []string{"sh", "-c", "cat d/l && echo more >> d/f.txt && cat d/f.txt"}}); r.Stdout != "content\ncontent\nmore\n" {
		t.Errorf("sandbox view of upload: %+v", r)
	}
	// Sandboxed code plants symlinks to the host's root and secrets.
	if r := e.exec("rf", map[string]any{"cmd": []string{"sh", "-c", "ln -s / root && ln -s /etc/hostname leak && ln -s ../../.. up"}}); r.ExitCode != 0 {
		t.Fatalf("ln: %+v", r)
	}
	outside := t.TempDir()
	marker := filepath.Join(outside, "evil.txt")
	for _, c := range []struct{ name string }{{"root" + marker}, {"up/evil.txt"}} {
		resp, body := e.do("POST", "/v1/sandboxes/rf/files/upload", tarGz(t, []tarEntry{{name: c.name, body: "x"}}))
		if resp.StatusCode != 200 && resp.StatusCode != 400 {
			t.Errorf("upload through planted symlink %s: %d %s", c.name, resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("upload followed a planted symlink out of the workspace")
	}
	box := e.b.store.boxDir(sandboxKey("rf"))
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(box)), "evil.txt")); err == nil {
		t.Fatal("upload followed ../../.. out of the workspace")
	}
	// Download stores links, never follows them.
	resp, body = e.do("GET", "/v1/sandboxes/rf/files/download?src=/workspace/leak", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("download link: %d %s", resp.StatusCode, body)
	}
	if h := readTarGz(t, body)["leak"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Uname != "" {
		t.Errorf("download of a symlink = %+v", h)
	}
	// Uploading a directory over a planted link replaced the link; plant again.
	e.exec("rf", map[string]any{"cmd": []string{"sh", "-c", "rm -rf root && ln -s / root"}})
	resp, body = e.do("GET", "/v1/sandboxes/rf/files/download?src=/workspace/root/etc", nil)
	if resp.StatusCode == 200 {
		t.Errorf("download through a planted symlink succeeded: %v", keys(readTarGz(t, body)))
	}
	resp, body = e.do("POST", "/v1/sandboxes/rf/files/upload?dest=/workspace/root/tmp", tarGz(t, []tarEntry{{name: "evil.txt", body: "x"}}))
	expectError(t, resp, body, 400, "dest")
	if _, err := os.Stat("/tmp/evil.txt"); err == nil {
		t.Error("upload with dest through a planted link wrote to the host")
	}
	// A fifo (or socket) in the workspace is skipped, never opened.
	if r := e.exec("rf", map[string]any{"cmd": []string{"mkfifo", "d/fifo"}}); r.ExitCode != 0 {
		t.Fatalf("mkfifo: %+v", r)
	}
	resp, body = e.do("GET", "/v1/sandboxes/rf/files/download?src=/workspace/d", nil)
	got := readTarGz(t, body)
	if got["fifo"] != nil {
		t.Error("download archived a fifo")
	}
	if resp.StatusCode != 200 || got["f.txt"] == nil || got["f.txt"].Uname != "content\nmore\n" {
		t.Errorf("download: %d %v", resp.StatusCode, keys(got))
	}
}

func TestRealRestartAndExpiry(t *testing.T) {
	c := testConfig(t)
	for d := c.DataDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o711)
	}
	b1, err := New(c)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) && os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
			t.Skipf("no isolation: %v", err)
		}
		t.Fatal(err)
	}
	e1 := serve(t, b1, "")
	e1.t = t
	e1.create("rp", nil)
	e1.create("short", map[string]any{"ttlSeconds": 1})
	e1.exec("rp", map[string]any{"cmd": []string{"sh", "-c", "echo kept > k"}})
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	e2 := serve(t, b2, "")
	e2.t = t
	if st, err := b2.store.get("rp"); err != nil || st.state != "stopped" {
		t.Errorf("after restart: %+v %v", st, err)
	}
	if r := e2.exec("rp", map[string]any{"cmd": []string{"cat", "k"}}); r.Stdout != "kept\n" {
		t.Errorf("after restart: %+v", r)
	}
	waitFor(t, func() bool { _, err := b2.store.get("short"); return err != nil })
}

func TestRealStreamAndOOM(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("rs", map[string]any{"ttlSeconds": 60, "memoryLimit": "64Mi"})
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/rs/exec/stream", strings.NewReader(`{"cmd":["sh","-c","echo a; sleep 0.3; echo b >&2"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	evs := readEvents(t, bufio.NewScanner(resp.Body), "exit")
	resp.Body.Close()
	var names []string
	for _, ev := range evs {
		if ev.name != "" {
			names = append(names, ev.name)
		}
	}
	if strings.Join(names, ",") != "stdout,stderr,exit" {
		t.Errorf("events = %v", names)
	}
	if slices.Contains(e.b.Info().Unenforced, "memory") {
		t.Skip("memory limits unenforced here")
	}
	r := e.exec("rs", map[string]any{"cmd": []string{"sh", "-c", "head -c 300000000 /dev/zero | tail"}, "timeoutSeconds": 30})
	if r.ExitCode != 137 || !*r.OomKilled || !strings.Contains(r.Stderr, "memory limit") {
		t.Errorf("oom: %+v", r)
	}
}
