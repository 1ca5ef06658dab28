package localbackend

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// fsURL is the files API URL of op for sandbox id and path p.
func fsURL(id, op, p string) string {
	return "/v1/sandboxes/" + id + "/fs/" + op + "?path=" + url.QueryEscape(p)
}

// TestFilesOverHTTP drives the files API through the server, with every
// answer checked against the contract: info advertises both extensions
// and their limits, a write and read round trip, and a write over the
// storage limit is 507 without a host path.
func TestFilesOverHTTP(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	resp, body := e.do("GET", "/v1/info", nil)
	var info noxapi.Info
	if err := json.Unmarshal(body, &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("info: %d %s", resp.StatusCode, body)
	}
	if !slices.Contains(info.Extensions, api.ExtFilesOps) || !slices.Contains(info.Extensions, api.ExtFilesWatch) {
		t.Fatalf("extensions %v", info.Extensions)
	}
	if l := info.Limits; l.MaxWatchesPerSandbox == nil || *l.MaxWatchesPerSandbox != 8 || l.MaxWatchQueue == nil || *l.MaxWatchQueue != 4096 || l.MaxWatchDirs == nil || *l.MaxWatchDirs != 8192 || l.MaxListPageSize == nil || *l.MaxListPageSize != 1000 {
		t.Fatalf("limits %+v", l)
	}
	e.create("h", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "1Mi"})
	resp, body = e.do("PUT", fsURL("h", "file", "out/x.txt")+"&parents=true", []byte("hello"))
	if resp.StatusCode != 201 || resp.Header.Get("ETag") == "" {
		t.Fatalf("write: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("GET", fsURL("h", "file", "/workspace/out/x.txt"), nil)
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("read: %d %q", resp.StatusCode, body)
	}
	resp, body = e.do("PUT", fsURL("h", "file", "big"), make([]byte, 2<<20))
	expectError(t, resp, body, http.StatusInsufficientStorage, "no space left")
	if strings.Contains(string(body), e.b.store.dataDir) {
		t.Fatalf("507 names a host path: %s", body)
	}
	resp, body = e.do("GET", fsURL("h", "stat", "/etc/passwd"), nil)
	expectError(t, resp, body, 400, "/etc/passwd")
}

// TestRealFilesAPI runs the files API against the real runtime: what it
// writes belongs to the sandbox's user (the command in the sandbox can
// change it), and a watch sees a command's file within 200 ms.
func TestRealFilesAPI(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	e.create("rf", nil)
	resp, body := e.do("PUT", fsURL("rf", "file", "sub/f.txt")+"&parents=true&mode=0640", []byte("from the API"))
	if resp.StatusCode != 201 {
		t.Fatalf("write: %d %s", resp.StatusCode, body)
	}
	r := e.exec("rf", map[string]any{"cmd": []string{"sh", "-c", "cat sub/f.txt && echo more >> sub/f.txt && mkdir sub/own && stat -c '%a %u' sub/f.txt"}, "workdir": "/workspace"})
	if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "from the API") || !strings.Contains(r.Stdout, "640 ") {
		t.Fatalf("the sandbox's user cannot use the file: %+v", r)
	}
	ws := e.b.store.workspacePath(sandboxKey("rf"))
	root, _ := os.Lstat(ws)
	for _, rel := range []string{"sub", "sub/f.txt"} {
		fi, err := os.Lstat(filepath.Join(ws, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Sys().(*syscall.Stat_t).Uid != root.Sys().(*syscall.Stat_t).Uid {
			t.Errorf("%s owned by %d, the workspace by %d", rel, fi.Sys().(*syscall.Stat_t).Uid, root.Sys().(*syscall.Stat_t).Uid)
		}
	}
	// Watch over HTTP (SSE): ready, then the command's file.
	req, _ := http.NewRequest("GET", e.url+fsURL("rf", "watch", "/workspace"), nil)
	wresp, err := http.DefaultClient.Do(req)
	if err != nil || wresp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", wresp, err)
	}
	defer wresp.Body.Close()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(wresp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(want string, within time.Duration) {
		t.Helper()
		timeout := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q within %v", want, within)
			}
		}
	}
	waitLine("event: ready", 5*time.Second)
	e.exec("rf", map[string]any{"cmd": []string{"sh", "-c", "echo x > by-exec.txt"}, "workdir": "/workspace"})
	t0 := time.Now()
	waitLine(`"path":"/workspace/by-exec.txt"`, 5*time.Second)
	t.Logf("create reported %v after the exec ended", time.Since(t0))
}

// TestRealFilesQuota: on a sandbox's own image the kernel refuses a write
// beyond the limit (ENOSPC): 507 without a host path, the target as it
// was and no temporary file left taking space.
func TestRealFilesQuota(t *testing.T) {
	t.Parallel()
	e := quotaEnv(t, nil)
	e.create("fq", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "16Mi"})
	resp, body := e.do("PUT", fsURL("fq", "file", "keep"), []byte("kept"))
	if resp.StatusCode != 201 {
		t.Fatalf("write: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("PUT", fsURL("fq", "file", "keep"), make([]byte, 32<<20))
	expectError(t, resp, body, http.StatusInsufficientStorage, "no space left")
	if strings.Contains(string(body), e.b.store.dataDir) {
		t.Fatalf("507 names a host path: %s", body)
	}
	resp, body = e.do("GET", fsURL("fq", "file", "keep"), nil)
	if resp.StatusCode != 200 || string(body) != "kept" {
		t.Fatalf("target after a failed write: %d %q", resp.StatusCode, body)
	}
	if left := tempLeft(t, e.b.store.workspacePath(sandboxKey("fq"))); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// The space is back: a write that fits succeeds.
	resp, body = e.do("PUT", fsURL("fq", "file", "fits"), make([]byte, 4<<20))
	if resp.StatusCode != 201 {
		t.Fatalf("write after the failure: %d %s", resp.StatusCode, body)
	}
}
