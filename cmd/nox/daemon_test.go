package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// skewVersion is the version of nox-skew, the test binary run as nox of
// another version.
const skewVersion = "0.0.0-skew"

// stopTestDaemon stops the local daemon of dataDir, if one runs.
func stopTestDaemon(t *testing.T, dataDir string) {
	t.Helper()
	files, err := daemonFilesOf(dataDir)
	if err != nil {
		return
	}
	hc := unixHTTPClient(files.socket)
	defer hc.CloseIdleConnections()
	ctx := context.WithoutCancel(t.Context())
	st, err := probeDaemon(ctx, hc, false)
	if err != nil {
		return
	}
	if err := stopDaemon(ctx, hc, st); err != nil {
		t.Errorf("stopping the local daemon of %s: %v", dataDir, err)
	}
}

// testDaemonStatus returns nox daemon status --json for dataDir.
func testDaemonStatus(t *testing.T, dataDir string) map[string]any {
	t.Helper()
	r := mustNox(t, 0, "", "--data-dir", dataDir, "--json", "daemon", "status")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("daemon status --json: %v: %q", err, r.stdout)
	}
	return st
}

// waitGone waits until process pid no longer runs.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %s", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonSharedByConcurrentCalls starts two nox --local commands at once
// on a fresh data dir: they start one daemon, which both use, on a socket
// only its owner can open.
func TestDaemonSharedByConcurrentCalls(t *testing.T) {
	dataDir := needLocal(t)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := noxProcess(t, "", "--local", "--data-dir", dataDir, "ls")
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil {
			t.Errorf("nox --local ls #%d: %v\n%s", i, errs[i], outs[i])
		}
	}
	files, _ := daemonFilesOf(dataDir)
	log, err := os.ReadFile(files.log)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte("nox daemon listening")); n != 1 {
		t.Errorf("%d daemons started, want 1; log:\n%s", n, log)
	}
	st := testDaemonStatus(t, dataDir)
	if st["running"] != true || st["version"] != noxVersion() || st["socket"] != files.socket {
		t.Errorf("status = %v", st)
	}
	// The socket is the trust boundary: mode 0600 in a directory of mode 0700.
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{files.socket, os.ModeSocket | 0o600}, {files.dir, os.ModeDir | 0o700}, {files.log, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModeType | os.ModePerm); got != c.mode {
			t.Errorf("%s: mode %s, want %s", c.path, got, c.mode)
		}
	}
	// A second call reuses the daemon.
	mustNox(t, 0, "", "--local", "--data-dir", dataDir, "ls")
	if st2 := testDaemonStatus(t, dataDir); st2["pid"] != st["pid"] {
		t.Errorf("daemon pid changed from %v to %v", st["pid"], st2["pid"])
	}
}

// TestDaemonKeepsStartedProcesses starts a process with nox start --local
// and reads its output from later calls: it lives in the daemon.
func TestDaemonKeepsStartedProcesses(t *testing.T) {
	dataDir := needLocal(t)
	local := []string{"--local", "--data-dir", dataDir}
	mustNox(t, 0, "", append(local, "create", "bg", "--wait")...)
	pid := strings.TrimSpace(mustNox(t, 0, "", append(local, "start", "bg", "--", "sh", "-c", "echo started; exec sleep 60")...).stdout)
	if pid == "" {
		t.Fatal("nox start printed no process id")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := mustNox(t, 0, "", append(local, "logs", "bg", pid)...)
		if strings.Contains(r.stdout, "started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nox logs never showed the process's output: %q", r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := mustNox(t, 0, "", append(local, "ps", "bg")...); !strings.Contains(r.stdout, "running") {
		t.Errorf("nox ps does not show the process running: %q", r.stdout)
	}
	if st := testDaemonStatus(t, dataDir); st["runningProcesses"] != 1.0 || st["sandboxes"] != 1.0 {
		t.Errorf("status: %v, want 1 sandbox and 1 running process", st)
	}
	mustNox(t, 0, "", append(local, "kill", "bg", pid)...)
	// --local-inprocess still refuses: the process would end with nox.
	mustNox(t, 0, "", "--data-dir", dataDir, "daemon", "stop")
	if r := mustNox(t, 1, "", "--local-inprocess", "--data-dir", dataDir, "start", "bg", "true"); !strings.Contains(r.stderr, "use --local") {
		t.Errorf("start --local-inprocess: %q", r.stderr)
	}
	if r := mustNox(t, 0, "", "--local-inprocess", "--data-dir", dataDir, "ls"); !strings.Contains(r.stdout, "bg") {
		t.Errorf("ls --local-inprocess: %q", r.stdout)
	}
	if st := testDaemonStatus(t, dataDir); st["running"] != false {
		t.Errorf("--local-inprocess started a daemon: %v", st)
	}
}

// TestDaemonIdleExit runs a daemon with a short idle exit: a running
// process keeps it up, and it exits once idle, removing its socket.
func TestDaemonIdleExit(t *testing.T) {
	dataDir := needLocal(t)
	t.Setenv("NOX_DAEMON_IDLE_EXIT", "1s")
	local := []string{"--local", "--data-dir", dataDir}
	mustNox(t, 0, "", append(local, "create", "idle", "--wait")...)
	mustNox(t, 0, "", append(local, "start", "idle", "--", "sleep", "3")...)
	st := testDaemonStatus(t, dataDir)
	pid := int(st["pid"].(float64))
	time.Sleep(2 * time.Second)
	if !processAlive(pid) {
		t.Fatal("the daemon exited while a process was running")
	}
	waitGone(t, pid, 15*time.Second)
	files, _ := daemonFilesOf(dataDir)
	if _, err := os.Stat(files.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after the idle exit: %v", err)
	}
	if log, _ := os.ReadFile(files.log); !bytes.Contains(log, []byte("idle for 1s")) {
		t.Errorf("the log does not say why the daemon exited:\n%s", log)
	}
	// The next call starts a new one.
	if r := mustNox(t, 0, "", append(local, "ls")...); !strings.Contains(r.stdout, "idle") {
		t.Errorf("ls after the idle exit: %q", r.stdout)
	}
}

// TestDaemonVersionSkew runs a daemon of another nox version: nox --local
// asks it to exit and starts its own.
func TestDaemonVersionSkew(t *testing.T) {
	dataDir := needLocal(t)
	files, err := daemonFilesOf(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(files.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("nox")
	if err != nil {
		t.Fatalf("nox is not in $PATH (testscript.Main puts it there): %v", err)
	}
	var log syncBuffer
	old := &exec.Cmd{Path: bin, Args: []string{"nox-skew", "--data-dir", dataDir, "serve", "--socket", files.socket},
		Stdout: &log, Stderr: &log, SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- old.Wait() }()
	hc := unixHTTPClient(files.socket)
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := probeDaemon(t.Context(), hc, false)
		if err == nil {
			if st.Version != skewVersion {
				t.Fatalf("old daemon reports version %q, want %q", st.Version, skewVersion)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old daemon did not answer: %v\n%s", err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustNox(t, 0, "", "--local", "--data-dir", dataDir, "ls")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the old daemon exited with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old daemon still runs")
	}
	if st := testDaemonStatus(t, dataDir); st["version"] != noxVersion() || int(st["pid"].(float64)) == old.Process.Pid {
		t.Errorf("status after the skew: %v", st)
	}
}

// TestDaemonRecovers checks that a daemon killed with SIGKILL (leaving its
// socket file) is replaced by the next call, and that a daemon whose
// socket file was removed exits, as nothing could reach it any more.
func TestDaemonRecovers(t *testing.T) {
	dataDir := needLocal(t)
	local := []string{"--local", "--data-dir", dataDir}
	mustNox(t, 0, "", append(local, "ls")...)
	pid := int(testDaemonStatus(t, dataDir)["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid, 10*time.Second)
	mustNox(t, 0, "", append(local, "ls")...)
	st := testDaemonStatus(t, dataDir)
	pid2 := int(st["pid"].(float64))
	if pid2 == pid {
		t.Fatalf("the killed daemon's pid %d still answers", pid)
	}
	if err := os.Remove(st["socket"].(string)); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid2, 10*time.Second)
}

// TestDaemonEndpointMethods checks GET and DELETE /daemon, and that other
// methods are refused with the ones allowed.
func TestDaemonEndpointMethods(t *testing.T) {
	d := &daemon{stop: make(chan string, 1)}
	for _, c := range []struct {
		method string
		want   int
	}{{http.MethodPost, http.StatusMethodNotAllowed}, {http.MethodPut, http.StatusMethodNotAllowed}, {http.MethodDelete, http.StatusAccepted}} {
		w := httptest.NewRecorder()
		d.ServeHTTP(w, httptest.NewRequest(c.method, "http://nox-local.invalid/daemon", nil))
		if w.Code != c.want || w.Header().Get(versionHeader) != noxVersion() {
			t.Errorf("%s /daemon: %d %v, want %d with %s", c.method, w.Code, w.Header(), c.want, versionHeader)
		}
		if c.want == http.StatusMethodNotAllowed && (w.Header().Get("Allow") != "GET, DELETE" || !strings.Contains(w.Body.String(), `"error"`)) {
			t.Errorf("%s /daemon: Allow %q, body %q", c.method, w.Header().Get("Allow"), w.Body.String())
		}
	}
	select {
	case why := <-d.stop:
		if !strings.Contains(why, "DELETE /daemon") {
			t.Errorf("stop reason %q", why)
		}
	default:
		t.Error("DELETE /daemon did not ask the daemon to stop")
	}
}
