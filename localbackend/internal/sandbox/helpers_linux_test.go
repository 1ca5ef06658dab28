package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func testEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace", "LANG=C.UTF-8"}
}

// newManager returns a Manager of the given tier, skipping (or failing
// under NOX_REQUIRE_ISOLATION=1) when the host cannot provide it.
func newManager(t testing.TB, tier Tier) *Manager {
	t.Helper()
	m, err := New(Options{Tier: tier, StateDir: t.TempDir()})
	if err != nil {
		// NOX_REQUIRE_ISOLATION=1 (CI) turns a missing namespace tier into
		// a failure; the fallback tiers stay best effort.
		required := os.Getenv("NOX_REQUIRE_ISOLATION") == "1" && (tier == TierAuto || tier == TierNamespaces)
		if errors.Is(err, ErrUnavailable) && !required {
			t.Skipf("tier %s unavailable: %v", tier, err)
		}
		t.Fatalf("New(%s): %v", tier, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// requireRoot skips tests that need cgroups or uid switching.
func requireCgroups(t testing.TB, m *Manager) {
	t.Helper()
	if m.Report().Cgroup == "" {
		if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" && os.Geteuid() == 0 {
			t.Fatal("no cgroups although running as root")
		}
		t.Skip("no cgroups on this host")
	}
}

func start(t testing.TB, m *Manager, key string, lim Limits) (*Sandbox, string) {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "ws")
	// Without a mount namespace (landlock, none-unsafe) the sandbox uid
	// uses the host path: its parents must be searchable.
	for d := filepath.Dir(ws); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := m.Start(context.Background(), Spec{Key: key, Workspace: ws, Hostname: "sbx", Limits: lim})
	if err != nil {
		t.Fatalf("Start(%s): %v", key, err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s, ws
}

type result struct {
	ExecResult
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit=%d timedOut=%v oom=%v stdout=%q stderr=%q", r.ExitCode, r.TimedOut, r.OOMKilled, r.stdout, r.stderr)
}

// lockedBuffer is a bytes.Buffer safe for the output goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func run(t testing.TB, s *Sandbox, timeout time.Duration, argv ...string) result {
	t.Helper()
	r, err := runErr(s, "", timeout, argv...)
	if err != nil {
		t.Fatalf("Exec(%q): %v", argv, err)
	}
	return r
}

func runErr(s *Sandbox, dir string, timeout time.Duration, argv ...string) (result, error) {
	var out, errb lockedBuffer
	r, err := s.Exec(context.Background(), ExecSpec{Argv: argv, Dir: dir, Env: testEnv(), Timeout: timeout, Stdout: &out, Stderr: &errb})
	return result{ExecResult: r, stdout: out.String(), stderr: errb.String()}, err
}

func sh(t testing.TB, s *Sandbox, script string) result {
	t.Helper()
	return run(t, s, 20*time.Second, "sh", "-c", script)
}

// procsOfUID lists host pids whose real uid is uid.
func procsOfUID(uid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	want := "Uid:\t" + strconv.Itoa(uid) + "\t"
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err == nil && strings.Contains(string(b), want) {
			out = append(out, pid)
		}
	}
	return out
}

// waitNoProcs waits until no process runs as uid.
func waitNoProcs(t testing.TB, uid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps := procsOfUID(uid)
		if len(ps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of uid %d survive: %v", uid, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftovers reports cgroups of this process that outlived the tests.
// (Processes are checked per test, by uid: other servers may run sandboxes
// on this host.)
func leftovers() error {
	var errs []error
	self, _ := selfCgroups()
	for _, c := range []string{"memory", "cpu", "pids"} {
		top := filepath.Join(cgroupRoot, c, self[c], cgroupTopName)
		ents, _ := os.ReadDir(top)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "m"+strconv.Itoa(os.Getpid())+"-") {
				errs = append(errs, fmt.Errorf("cgroup %s/%s", top, e.Name()))
			}
		}
	}
	return errors.Join(errs...)
}
