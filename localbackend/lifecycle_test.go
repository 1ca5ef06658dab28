package localbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func TestRestartPersistence(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	rt1 := &fakeRuntime{}
	e1 := start(t, c, rt1)
	e1.t = t
	e1.create("persist", map[string]any{"ttlSeconds": 600, "memoryLimit": "512Mi"})
	resp, body := e1.do("POST", "/v1/sandboxes/persist/files/upload", tarGz(t, []tarEntry{{name: "data.txt", body: "survives"}}))
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	e1.exec("persist", map[string]any{"cmd": []string{"sh", "-c", "echo more > more.txt"}})
	// Simulate a crash: no Close (no final flush); release only the lock.
	e1.b.store.stopReaper()
	<-e1.b.store.reaperDone
	e1.b.store.unlock()

	e2 := start(t, c, &fakeRuntime{})
	e2.t = t
	st, err := e2.b.store.get("persist")
	if err != nil {
		t.Fatal(err)
	}
	if st.state != "stopped" || st.meta.TTLSeconds != 600 || st.meta.MemoryBytes != 512<<20 {
		t.Errorf("after restart: %+v", st)
	}
	r := e2.exec("persist", map[string]any{"cmd": []string{"cat", "data.txt", "more.txt"}})
	if r.Stdout != "survivesmore\n" {
		t.Errorf("files after restart: %+v", r)
	}
	if st, _ := e2.b.store.get("persist"); st.state != "ready" {
		t.Errorf("state after use = %s", st.state)
	}
	if cr := e2.create("persist", nil); cr.PodName != "sandbox-persist" {
		t.Errorf("podName changed: %s", cr.PodName)
	}
	// Metadata is JSON under an opaque key; the id is not a path. Close
	// first: the flusher writes temporary files into meta/ while it runs.
	if err := e2.b.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(c.DataDir, "meta"))
	if len(ents) != 1 || ents[0].Name() != sandboxKey("persist")+".json" {
		t.Errorf("meta dir = %v", ents)
	}
	data, _ := os.ReadFile(filepath.Join(c.DataDir, "meta", sandboxKey("persist")+".json"))
	if !bytes.Contains(data, []byte(`"sessionId": "persist"`)) {
		t.Errorf("meta = %s", data)
	}
}

func TestCloseKeepsWorkspaces(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	e1 := start(t, c, &fakeRuntime{})
	e1.t = t
	e1.create("keep", nil)
	e1.exec("keep", map[string]any{"cmd": []string{"sh", "-c", "echo x > f"}})
	if err := e1.b.Close(); err != nil {
		t.Fatal(err)
	}
	resp, _ := e1.do("GET", "/healthz", nil)
	if resp.StatusCode != 503 {
		t.Errorf("healthz after Close: %d", resp.StatusCode)
	}
	e2 := start(t, c, &fakeRuntime{})
	e2.t = t
	if r := e2.exec("keep", map[string]any{"cmd": []string{"cat", "f"}}); r.Stdout != "x\n" {
		t.Errorf("after Close and reopen: %+v", r)
	}
}

func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("short", map[string]any{"ttlSeconds": 1})
	e.create("long", map[string]any{"ttlSeconds": 600})
	ws := e.b.store.workspacePath(sandboxKey("short"))
	created := time.Now()
	waitFor(t, func() bool { _, err := e.b.store.get("short"); return err != nil })
	if d := time.Since(created); d > 5*time.Second {
		t.Errorf("reaped %v after a create with a 1 s TTL, want within a couple of seconds of expiry", d)
	}
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("workspace of an expired sandbox still exists: %v", err)
	}
	if _, err := e.b.store.get("long"); err != nil {
		t.Errorf("long-lived sandbox reaped: %v", err)
	}

	// Not reaped while a command runs, even past its TTL.
	e.create("busy", map[string]any{"ttlSeconds": 1})
	r := e.exec("busy", map[string]any{"cmd": []string{"sleep", "2"}})
	if r.ExitCode != 0 {
		t.Errorf("exec during expiry: %+v", r)
	}
	if _, err := e.b.store.get("busy"); err != nil {
		t.Errorf("reaped right after a running command: %v", err)
	}
}

func TestExpiredAtStartup(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	e1 := start(t, c, &fakeRuntime{})
	e1.t = t
	e1.create("old", map[string]any{"ttlSeconds": 1})
	e1.b.Close()
	time.Sleep(1100 * time.Millisecond)
	c.ReaperInterval = time.Hour // only the startup pass can reap it
	e2 := start(t, c, &fakeRuntime{})
	if _, err := e2.b.store.get("old"); err == nil {
		t.Error("expired sandbox survived startup")
	}
}

func TestDeleteKillsCommands(t *testing.T) {
	t.Parallel()
	deleteDuringExec(t, setup(t, nil))
}

// deleteDuringExec deletes a sandbox while a plain and a streamed command
// run in it: both end as normal results (exit code 137, the output so
// far, a note on stderr), not as errors.
func deleteDuringExec(t *testing.T, e *testEnv) {
	e.create("del", nil)
	// Each command leaves a marker once "before" is in its pipe, so the
	// test deletes only after both printed, however loaded the machine.
	cmd := map[string]any{"cmd": []string{"sh", "-c", "echo before; : > printed.$$; sleep 30"}}
	plain, stream := make(chan []byte, 1), make(chan []byte, 1)
	go func() {
		resp, body := e.do("POST", "/v1/sandboxes/del/exec", cmd)
		if resp.StatusCode != 200 {
			t.Errorf("exec during delete: %d %s", resp.StatusCode, body)
		}
		plain <- body
	}()
	go func() {
		resp, body := e.do("POST", "/v1/sandboxes/del/exec/stream", cmd)
		if resp.StatusCode != 200 {
			t.Errorf("streamed exec during delete: %d %s", resp.StatusCode, body)
		}
		stream <- body
	}()
	waitFor(t, func() bool {
		_, list := e.do("GET", "/v1/sandboxes/del/fs/list?path=/workspace", nil)
		return strings.Count(string(list), `"name":"printed.`) == 2
	})
	resp, body := e.do("DELETE", "/v1/sandboxes/del", nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	for _, ch := range []chan []byte{plain, stream} {
		select {
		case body := <-ch:
			for _, want := range []string{`"exitCode":137`, "before", "sandbox was deleted"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("answer %s lacks %s", body, want)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("exec still running after delete")
		}
	}
	if _, err := os.Stat(e.b.store.boxDir(sandboxKey("del"))); !os.IsNotExist(err) {
		t.Errorf("sandbox dir remains: %v", err)
	}
}

func TestWorkspaceRel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/workspace": ".", "/workspace/": ".", "/workspace/a/b": "a/b", "/workspace/a/../b": "b", "/workspace//x/.": "x",
	} {
		if got, err := workspaceRel("dest", in); err != nil || got != want {
			t.Errorf("workspaceRel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "workspace", "/workspace/..", "/workspace/../etc", "/tmp", "/workspacex", "/", "/workspace/\x00"} {
		if got, err := workspaceRel("dest", bad); err == nil {
			t.Errorf("workspaceRel(%q) = %q, want error", bad, got)
		} else if !strings.HasPrefix(err.Error(), "dest: ") {
			t.Errorf("error %q does not name the field", err)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(tarGz(f, []tarEntry{{name: "a/b.txt", body: "x"}, {name: "l", typ: '2', link: "a"}, {name: "l/c", body: "y"}}))
	f.Add(tarBytes(f, []tarEntry{{name: "../x", body: "x"}}, false))
	f.Add(tarBytes(f, []tarEntry{{name: "d/", typ: '5'}, {name: "d/h", typ: '1', link: "d"}, {name: "s", typ: '2', link: "/workspace/d"}}, false))
	f.Add(tarBytes(f, []tarEntry{{name: "s", typ: '2', link: "d/../.."}, {name: "s/x", body: "x"}}, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		stage := filepath.Join(base, "stage")
		if err := os.Mkdir(stage, 0o755); err != nil {
			t.Fatal(err)
		}
		sentinel := filepath.Join(base, "outside")
		if err := os.WriteFile(sentinel, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(stage)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		_, _ = extractTar(context.Background(), bytes.NewReader(data), root, "/workspace", extractLimits{maxEntries: 100})
		ents, _ := os.ReadDir(base)
		if len(ents) != 2 {
			t.Fatalf("extraction wrote outside its root: %v", ents)
		}
		if b, _ := os.ReadFile(sentinel); string(b) != "x" {
			t.Fatal("sentinel outside the root changed")
		}
		// Every symlink created must point inside the root.
		_ = filepath.WalkDir(stage, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type()&os.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				if !filepath.IsAbs(l) {
					rel, _ := filepath.Rel(stage, filepath.Join(filepath.Dir(p), l))
					if rel == ".." || strings.HasPrefix(rel, "../") {
						t.Fatalf("symlink %s -> %s escapes", p, l)
					}
				} else if l != "/workspace" && !strings.HasPrefix(l, "/workspace/") {
					t.Fatalf("absolute symlink %s -> %s", p, l)
				}
			}
			return nil
		})
	})
}

// TestMetadataWriteFailure: a touch or a create changing the TTL whose
// metadata cannot be written fails and leaves the sandbox as it was;
// once writes work again a touch is durable across a restart.
func TestMetadataWriteFailure(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	e := start(t, c, &fakeRuntime{})
	e.t = t
	e.create("md", map[string]any{"ttlSeconds": 600})
	before, err := e.b.store.get("md")
	if err != nil {
		t.Fatal(err)
	}
	// Break the metadata directory: every write into it fails.
	metaDir := filepath.Join(c.DataDir, "meta")
	if err := os.Rename(metaDir, metaDir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // a touch would move lastActiveAt
	resp, body := e.do("POST", "/v1/sandboxes/md/touch", nil)
	expectError(t, resp, body, 500, "internal error")
	resp, body = e.do("PUT", "/v1/sandboxes/md", map[string]any{"ttlSeconds": 900})
	expectError(t, resp, body, 500, "internal error")
	after, err := e.b.store.get("md")
	if err != nil {
		t.Fatal(err)
	}
	if !after.meta.LastActiveAt.Equal(before.meta.LastActiveAt) || after.meta.TTLSeconds != 600 {
		t.Errorf("failed writes changed the sandbox: lastActiveAt %v -> %v, ttl %d -> %d",
			before.meta.LastActiveAt, after.meta.LastActiveAt, before.meta.TTLSeconds, after.meta.TTLSeconds)
	}

	if err := os.Remove(metaDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(metaDir+".away", metaDir); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do("POST", "/v1/sandboxes/md/touch", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("touch after repair: %d %s", resp.StatusCode, body)
	}
	var touched noxapi.TouchResult
	if err := json.Unmarshal(body, &touched); err != nil || touched.ExpiresAt == nil {
		t.Fatalf("touch answer %s: %v", body, err)
	}
	// Durable at once: a crash right after (no flush) keeps it.
	c.ReaperInterval = time.Hour
	e.b.store.stopReaper()
	<-e.b.store.reaperDone
	e.b.store.mu.Lock()
	e.b.store.closed = true // no final flush: as after kill -9
	e.b.store.mu.Unlock()
	e.b.store.unlock()
	e2 := start(t, c, &fakeRuntime{})
	st, err := e2.b.store.get("md")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.meta.expiresAt(); !got.Equal(*touched.ExpiresAt) {
		t.Errorf("after a restart the sandbox expires at %v, the touch answered %v", got, *touched.ExpiresAt)
	}
}

// TestExpiryCutsDownloads: a download read slowly does not keep its
// sandbox past its TTL; the expiry cuts it (and a delete does likewise).
func TestExpiryCutsDownloads(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for _, tc := range []struct {
		id     string
		delete bool
	}{{"expire", false}, {"delete", true}} {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			e.create(tc.id, map[string]any{"ttlSeconds": 2})
			if r := e.exec(tc.id, map[string]any{"cmd": []string{"sh", "-c", "head -c 32000000 /dev/urandom > big"}}); r.ExitCode != 0 {
				t.Fatalf("exec: %+v", r)
			}
			lastActive := time.Now()
			resp, err := http.Get(e.url + "/v1/sandboxes/" + tc.id + "/files/download?src=/workspace/big")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("download: %d", resp.StatusCode)
			}
			if tc.delete {
				go func() {
					time.Sleep(300 * time.Millisecond)
					e.do("DELETE", "/v1/sandboxes/"+tc.id, nil)
				}()
			}
			// Read 4 KiB every 50 ms (32 MB would take 400 s) until the
			// sandbox is gone.
			buf := make([]byte, 4096)
			for {
				if _, err := e.b.store.get(tc.id); err != nil {
					break
				}
				if time.Since(lastActive) > 10*time.Second {
					t.Fatal("the sandbox still exists 10s after its last activity (TTL 2s) while its download is read")
				}
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					t.Fatalf("download failed before the sandbox went: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if took := time.Since(lastActive); !tc.delete && took > 4*time.Second {
				t.Errorf("the sandbox went %s after its last activity, want about TTL (2s) + the reaper interval", took)
			}
			// What the connection still holds arrives, then the cut.
			if n, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Errorf("the download ended cleanly (%d more bytes) although its sandbox went", n)
			}
		})
	}
}
