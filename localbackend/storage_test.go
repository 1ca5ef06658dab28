package localbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// testStorageLimit fills a sandbox's workspace past its 64Mi limit and
// checks that the monitor kills the filler (exit 137 and a note), that
// uploads are refused until files are deleted, and that the server and
// another sandbox keep working.
func testStorageLimit(t *testing.T, e *testEnv) {
	e.create("fill", map[string]any{"ttlSeconds": 600, "ephemeralStorageLimit": "64Mi"})
	e.create("other", nil)
	// At most 40 x 16 MiB, then a sleep the timeout ends: a monitor that
	// does not work fails the test without filling the disk.
	filler := `i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=big$i bs=1M count=16 2>/dev/null; i=$((i+1)); done; sleep 60`
	t0 := time.Now()
	r := e.exec("fill", map[string]any{"cmd": []string{"sh", "-c", filler}, "timeoutSeconds": 30})
	if r.ExitCode != 137 || *r.TimedOut || !strings.Contains(r.Stderr, "nox: ephemeral storage limit 64Mi exceeded; processes killed") {
		t.Fatalf("filler after %v: %+v", time.Since(t0), r)
	}
	t.Logf("filler killed after %v", time.Since(t0))
	if r := e.exec("other", map[string]any{"cmd": []string{"echo", "ok"}}); r.ExitCode != 0 || r.Stdout != "ok\n" {
		t.Fatalf("other sandbox: %+v", r)
	}
	up := tarGz(t, []tarEntry{{name: "small.txt", body: "x"}})
	resp, body := e.do("POST", "/v1/sandboxes/fill/files/upload", up)
	expectError(t, resp, body, 507, "ephemeral storage limit 64Mi exceeded")
	// Deleting files works (shrinking is allowed) and makes room again.
	if r := e.exec("fill", map[string]any{"cmd": []string{"sh", "-c", "rm -f big*; echo done"}}); r.ExitCode != 0 || r.Stdout != "done\n" {
		t.Fatalf("rm: %+v", r)
	}
	if resp, body := e.do("POST", "/v1/sandboxes/fill/files/upload", up); resp.StatusCode != 200 {
		t.Fatalf("upload after rm: %d %s", resp.StatusCode, body)
	}
	// The sandbox stays usable, including writes below the limit.
	if r := e.exec("fill", map[string]any{"cmd": []string{"sh", "-c", "dd if=/dev/zero of=ok bs=1M count=8 2>/dev/null && cat small.txt"}}); r.ExitCode != 0 || r.Stdout != "x" {
		t.Fatalf("after rm: %+v", r)
	}
	time.Sleep(3 * e.b.cfg.StorageCheckInterval) // the monitor must leave it alone
	if r := e.exec("fill", map[string]any{"cmd": []string{"ls", "ok"}}); r.ExitCode != 0 {
		t.Fatalf("below the limit: %+v", r)
	}
	resp, body = e.do("GET", "/v1/sandboxes/fill", nil)
	var st struct {
		Limits struct{ Unenforced []string }
	}
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || slices.Contains(st.Limits.Unenforced, "ephemeralStorage") {
		t.Fatalf("status: %d %s %v", resp.StatusCode, body, err)
	}
	info := e.b.Info()
	if slices.Contains(info.Unenforced, "ephemeralStorage") || !slices.ContainsFunc(info.Notes, func(n string) bool { return strings.Contains(n, "enforced by monitoring") }) {
		t.Fatalf("info: %+v", info)
	}
}

func TestStorageLimitFake(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.StorageCheckInterval = 200 * time.Millisecond })
	testStorageLimit(t, e)
}

func TestRealStorageLimit(t *testing.T) {
	t.Parallel()
	e := realEnv(t, func(c *Config) {
		c.StorageCheckInterval = 200 * time.Millisecond
		c.StorageEnforcement = StorageEnforcementMonitor
	})
	e.t = t
	testStorageLimit(t, e)
}

func TestStorageMonitorDisabled(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.StorageCheckInterval = -1 })
	if !slices.Contains(e.b.Info().Unenforced, "ephemeralStorage") {
		t.Fatalf("info: %+v", e.b.Info())
	}
}

// The usage walk counts every entry for at least entryCharge, sparse
// files at their apparent size, stops above its cap, resumes across steps
// of a bounded number of entries, and measures trees deeper than
// PATH_MAX (finding: a deep directory switched the limit off).
func TestUsageWalk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		writeTestFile(t, dir+"/"+n, 1<<20)
	}
	used, capped, err := measureUsage(dir, 1000, 10<<20)
	if err != nil || capped || used < 3<<20 || used > 3<<20+4*entryCharge {
		t.Fatalf("uncapped: %d %v %v", used, capped, err)
	}
	used, capped, err = measureUsage(dir, 1000, 1<<20)
	if err != nil || !capped || used > 3<<20+entryCharge {
		t.Fatalf("capped: %d %v %v", used, capped, err)
	}
	// Empty files and sparse files are not free.
	sparse := t.TempDir()
	for i := range 100 {
		f, err := os.Create(filepath.Join(sparse, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := os.Truncate(filepath.Join(sparse, "0"), 1<<30); err != nil {
		t.Fatal(err)
	}
	used, _, err = measureUsage(sparse, 1000, 1<<62)
	if err != nil || used < 1<<30+99*entryCharge {
		t.Fatalf("sparse and empty files: %d %v", used, err)
	}
	// A tree deeper than PATH_MAX, walked 10 entries per step.
	deep := t.TempDir()
	fd, err := os.Open(deep)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("0", 250)
	for range 30 {
		if err := unix.Mkdirat(int(fd.Fd()), name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(int(fd.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fd.Close()
		fd = os.NewFile(uintptr(nfd), name)
	}
	big, err := unix.Openat(int(fd.Fd()), "big", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(big, 64<<20); err != nil {
		t.Fatal(err)
	}
	unix.Close(big)
	fd.Close()
	w := newUsageWalk(deep)
	defer w.close()
	steps := 0
	for {
		n, done, err := w.step(10, 1<<62)
		if err != nil {
			t.Fatalf("deep walk: %v", err)
		}
		steps++
		if n > 10 {
			t.Fatalf("visited %d entries in a step of 10", n)
		}
		if done {
			break
		}
	}
	if steps < 3 || w.used < 64<<20 {
		t.Fatalf("deep walk: %d bytes in %d steps", w.used, steps)
	}
	t.Cleanup(func() { _ = exec.Command("rm", "-rf", deep).Run() })
}

// writeTestFile writes n zero bytes (allocated: not a sparse file) to name.
func writeTestFile(t *testing.T, name string, n int) {
	t.Helper()
	if err := os.WriteFile(name, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDataDirReachable(t *testing.T) {
	t.Parallel()
	top := t.TempDir()
	closed := filepath.Join(top, "closed")
	data := filepath.Join(closed, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	for d := top; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkDataDirReachable(data, sandbox.TierLandlock, true)
	if err == nil || !strings.Contains(err.Error(), "not searchable") || !strings.Contains(err.Error(), closed) {
		t.Fatalf("closed parent: %v", err)
	}
	for _, tier := range []sandbox.Tier{sandbox.TierNamespaces, sandbox.TierRootNamespaces} {
		if err := checkDataDirReachable(data, tier, true); err != nil {
			t.Fatalf("%s: %v", tier, err)
		}
	}
	if err := checkDataDirReachable(data, sandbox.TierNoneUnsafe, false); err != nil {
		t.Fatalf("not root: %v", err)
	}
	if err := os.Chmod(closed, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := checkDataDirReachable(data, sandbox.TierNoneUnsafe, true); err != nil {
		t.Fatalf("searchable: %v", err)
	}
}

// asyncEnv is a fakeEnv whose setup ends when setup is closed, like the
// runtime's StartAsync.
type asyncEnv struct {
	*fakeEnv
	setup chan struct{}
}

func (a asyncEnv) Ready() bool {
	select {
	case <-a.setup:
		return true
	default:
		return false
	}
}

func (a asyncEnv) WaitReady(ctx context.Context) error {
	select {
	case <-a.setup:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a asyncEnv) Notes() []string { return nil }

func (a asyncEnv) Exec(ctx context.Context, x sandbox.ExecSpec) (sandbox.ExecResult, error) {
	if err := a.WaitReady(ctx); err != nil {
		return sandbox.ExecResult{}, err
	}
	return a.fakeEnv.Exec(ctx, x)
}

type asyncRuntime struct {
	*fakeRuntime
	setup chan struct{}
}

func (r asyncRuntime) Start(ctx context.Context, spec sandbox.Spec) (environment, error) {
	env, err := r.fakeRuntime.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return asyncEnv{env.(*fakeEnv), r.setup}, nil
}

// Create answers while the environment is still being set up: the sandbox
// is pending and the first exec waits for the setup.
func TestCreateAnswersBeforeSetup(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	c.applyDefaults()
	lim, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	setupDone := make(chan struct{})
	b, err := newBackend(c, lim, func() (runtime, error) { return asyncRuntime{&fakeRuntime{}, setupDone}, nil })
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, b, "")
	e.t = t
	e.create("async", nil)
	resp, body := e.do("GET", "/v1/sandboxes/async", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"state":"pending"`) {
		t.Fatalf("status during setup: %d %s", resp.StatusCode, body)
	}
	got := make(chan string, 1)
	go func() {
		r, data := e.do("POST", "/v1/sandboxes/async/exec", map[string]any{"cmd": []string{"echo", "hi"}})
		got <- fmt.Sprint(r.StatusCode, " ", string(data))
	}()
	select {
	case r := <-got:
		t.Fatalf("exec answered before the setup ended: %s", r)
	case <-time.After(100 * time.Millisecond):
	}
	close(setupDone)
	if r := <-got; !strings.HasPrefix(r, "200 ") || !strings.Contains(r, `"stdout":"hi\n"`) {
		t.Fatalf("exec: %s", r)
	}
	resp, body = e.do("GET", "/v1/sandboxes/async", nil)
	if !strings.Contains(string(body), `"state":"ready"`) {
		t.Fatalf("status after setup: %d %s", resp.StatusCode, body)
	}
}
