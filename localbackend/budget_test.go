package localbackend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHostLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		files                  map[string]string
		wantPids, wantOpenFile int64
	}{
		{"this kind of host", map[string]string{"kernel/pid_max": "32768\n", "kernel/threads-max": "192726\n", "fs/file-max": "2466116\n"}, 16384, 1233058},
		{"threads-max smaller", map[string]string{"kernel/pid_max": "4194304", "kernel/threads-max": "63000", "fs/file-max": "9223372036854775807"}, 31500, -1},
		{"unknown", map[string]string{}, -1, -1},
		{"garbage", map[string]string{"kernel/pid_max": "lots", "fs/file-max": "-3"}, -1, -1},
	} {
		dir := t.TempDir()
		for name, data := range tc.files {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		h := readHostLimits(dir)
		if got := h.pidsBudget(); got != tc.wantPids {
			t.Errorf("%s: pids budget %d, want %d", tc.name, got, tc.wantPids)
		}
		if got := h.openFilesBudget(); got != tc.wantOpenFile {
			t.Errorf("%s: open-files budget %d, want %d", tc.name, got, tc.wantOpenFile)
		}
	}
	if c := DefaultConfig(); c.HostPidsBudget == 0 || c.HostOpenFilesBudget == 0 {
		t.Errorf("DefaultConfig left a host budget undecided: %d %d", c.HostPidsBudget, c.HostOpenFilesBudget)
	}
}

// TestHostBudgets: sandboxes are admitted while the sum of their limits
// fits the host budgets; beyond, a create is 503 with Retry-After and a
// message naming the budget, and leaves nothing behind.
func TestHostBudgets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"pids", func(c *Config) { c.Pids, c.HostPidsBudget, c.HostOpenFilesBudget = 100, 250, -1 }, "process budget"},
		{"open files", func(c *Config) { c.OpenFiles, c.HostOpenFilesBudget, c.HostPidsBudget = 1000, 2500, -1 }, "open-file budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tc.mod)
			e.t = t
			e.create("b1", nil)
			e.create("b2", nil)
			resp, body := e.do("PUT", "/v1/sandboxes/b3", map[string]any{"ttlSeconds": 600})
			expectError(t, resp, body, 503, tc.want)
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if _, err := e.b.store.get("b3"); err == nil {
				t.Error("a create refused for the budget left a sandbox behind")
			}
			// Existing sandboxes keep working.
			if r := e.exec("b1", map[string]any{"cmd": []string{"true"}}); r.ExitCode != 0 {
				t.Errorf("exec in an admitted sandbox: %+v", r)
			}
			if resp, body := e.do("DELETE", "/v1/sandboxes/b1", nil); resp.StatusCode != 204 {
				t.Fatalf("delete: %d %s", resp.StatusCode, body)
			}
			e.create("b3", nil)
			ir, err := e.client.GetInfoWithResponse(t.Context())
			if err != nil || ir.JSON200 == nil || ir.JSON200.Limits == nil {
				t.Fatalf("info: %v", err)
			}
			l := ir.JSON200.Limits
			if tc.name == "pids" && (l.HostPidsBudget == nil || *l.HostPidsBudget != 250 || l.HostOpenFilesBudget != nil) ||
				tc.name == "open files" && (l.HostOpenFilesBudget == nil || *l.HostOpenFilesBudget != 2500 || l.OpenFiles == nil || *l.OpenFiles != 1000) {
				t.Errorf("info limits %s", ir.Body)
			}
		})
	}
}

func TestBudgetConfig(t *testing.T) {
	t.Parallel()
	c := Config{Pids: 2000, HostPidsBudget: 1000}
	c.applyDefaults()
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "field Pids") {
		t.Errorf("Pids above the budget: %v", err)
	}
}

func TestRealOpenFiles(t *testing.T) {
	e := realEnv(t, func(c *Config) { c.OpenFiles = 1234 })
	e.t = t
	e.create("nofile", nil)
	if r := e.exec("nofile", map[string]any{"cmd": []string{"sh", "-c", "ulimit -n"}}); r.Stdout != "1234\n" {
		t.Errorf("ulimit -n in the sandbox: %+v, want 1234", r)
	}
}

// TestConcurrentCreatesOverBudget: creates that pass the budget check
// together and lose the race for the budget when their environments start
// leave no sandbox behind, like a create refused up front.
func TestConcurrentCreatesOverBudget(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	c.Pids, c.HostPidsBudget, c.HostOpenFilesBudget = 100, 250, -1
	e := start(t, c, &fakeRuntime{startDelay: 100 * time.Millisecond})
	e.t = t
	const n = 6
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.do("PUT", fmt.Sprintf("/v1/sandboxes/c%d", i), map[string]any{"ttlSeconds": 600})
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	created := 0
	for i, code := range codes {
		_, err := e.b.store.get(fmt.Sprintf("c%d", i))
		switch code {
		case 200:
			created++
			if err != nil {
				t.Errorf("c%d: created, then gone: %v", i, err)
			}
		case 503:
			if err == nil {
				t.Errorf("c%d: refused for the budget, yet it exists", i)
			}
		default:
			t.Errorf("c%d: status %d", i, code)
		}
	}
	if created != 2 {
		t.Errorf("%d sandboxes created, want the budget's 2 (statuses %v)", created, codes)
	}
}
