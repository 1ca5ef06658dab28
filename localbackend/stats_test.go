package localbackend

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// status GETs sandbox id's status.
func (e *testEnv) status(id string) noxapi.SandboxStatus {
	e.t.Helper()
	resp, body := e.do("GET", "/v1/sandboxes/"+id, nil)
	var st noxapi.SandboxStatus
	if err := json.Unmarshal(body, &st); resp.StatusCode != 200 || err != nil {
		e.t.Fatalf("get %s: %d %s", id, resp.StatusCode, body)
	}
	return st
}

// TestRealUsage: a sandbox that wrote 50 MB and burnt some CPU shows it
// in its status and in the backend's Stats.
func TestRealUsage(t *testing.T) {
	e := realEnv(t, func(c *Config) { c.StorageCheckInterval = 100 * time.Millisecond })
	e.t = t
	e.create("ru", map[string]any{"resources": map[string]any{"ephemeralStorage": "200Mi"}})
	r := e.exec("ru", map[string]any{"cmd": []string{"sh", "-c", "head -c 50M /dev/zero > f; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"}})
	if r.ExitCode != 0 {
		t.Fatalf("exec: %+v", r)
	}
	// On an image the file system says at once; the monitor needs a tick.
	var u *noxapi.SandboxUsage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		u = e.status("ru").Usage
		if u != nil && u.StorageBytes != nil && *u.StorageBytes >= 50<<20 || time.Now().After(deadline) {
			break
		}
	}
	if u == nil {
		t.Fatal("no usage in the status")
	}
	js, _ := json.Marshal(u)
	t.Logf("usage %s (storage on an image: %v)", js, e.b.store.onImage(e.box("ru").meta.Key))
	if u.StorageBytes == nil || *u.StorageBytes < 50<<20 {
		t.Errorf("storageBytes = %v, want >= 50M", u.StorageBytes)
	}
	if u.CPUSeconds == nil || *u.CPUSeconds <= 0 {
		t.Errorf("cpuSeconds = %v, want > 0", u.CPUSeconds)
	}
	if u.MemoryBytes == nil || *u.MemoryBytes <= 0 {
		t.Errorf("memoryBytes = %v, want > 0", u.MemoryBytes)
	}
	st, err := driverBackend{e.b}.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sandboxes != 1 || st.Usage["ru"].StorageBytes < 50<<20 {
		t.Errorf("stats = %+v, want 1 sandbox using >= 50M", st)
	}
}

// TestUsageFake: on the fake runtime (no cgroups) only storage is
// measured, by the monitor; a stopped sandbox still shows its storage.
func TestUsageFake(t *testing.T) {
	e := setup(t, func(c *Config) { c.StorageCheckInterval = 20 * time.Millisecond })
	e.create("uf", map[string]any{"resources": map[string]any{"ephemeralStorage": "10Mi"}})
	if r := e.exec("uf", map[string]any{"cmd": []string{"sh", "-c", "head -c 100000 /dev/zero > f"}}); r.ExitCode != 0 {
		t.Fatalf("exec: %+v", r)
	}
	var u *noxapi.SandboxUsage
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The monitor's last complete measurement may predate the file.
		u = e.status("uf").Usage
		if u != nil && u.StorageBytes != nil && *u.StorageBytes >= 100000 || time.Now().After(deadline) {
			break
		}
	}
	if u == nil || u.StorageBytes == nil || *u.StorageBytes < 100000 || u.CPUSeconds != nil || u.MemoryBytes != nil || u.Pids != nil {
		js, _ := json.Marshal(u)
		t.Fatalf("usage = %s, want storage >= 100000 only", js)
	}
	resp, body := e.do("GET", "/v1/sandboxes", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"usage":{"storageBytes":`) {
		t.Errorf("list: %d %s, want usage", resp.StatusCode, body)
	}
	st, err := driverBackend{e.b}.Stats(context.Background())
	if err != nil || st.Sandboxes != 1 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
}

func TestStatsReaped(t *testing.T) {
	e := setup(t, nil)
	e.create("short", map[string]any{"ttlSeconds": 1})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := driverBackend{e.b}.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Reaped == 1 && st.Sandboxes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v, want the sandbox reaped", st)
		}
	}
}
