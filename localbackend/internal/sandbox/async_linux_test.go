package sandbox

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSandboxUserName(t *testing.T) {
	t.Parallel()
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("user"), Limits{})
	r := sh(t, s, `id -un; id -gn; getent passwd 1000 | cut -d: -f6; getent passwd 0 | cut -d: -f1; touch /workspace/f && ls -ln /workspace/f | awk '{print $3}'; echo x >> /etc/passwd 2>/dev/null || echo ro`)
	want := "sandbox\nsandbox\n/workspace\nroot\n1000\nro\n"
	if r.ExitCode != 0 || r.stdout != want {
		t.Fatalf("got %s, want stdout %q", r, want)
	}
}

func TestStartAsyncPendingThenExec(t *testing.T) {
	t.Parallel()
	m := newManager(t, TierAuto)
	ws := filepath.Join(t.TempDir(), "ws")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := key("async")
	s, err := m.StartAsync(ctx, Spec{Key: k, Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if !s.Alive() {
		t.Fatal("not alive after StartAsync")
	}
	// A second Start of the key returns the same sandbox, once ready.
	s2, err := m.Start(ctx, Spec{Key: k, Workspace: ws})
	if err != nil || s2 != s || !s.Ready() {
		t.Fatalf("Start after StartAsync: %v same=%v ready=%v", err, s2 == s, s.Ready())
	}
	if r := run(t, s, 10*time.Second, "echo", "hi"); r.stdout != "hi\n" {
		t.Fatalf("exec: %s", r)
	}
}

func TestStartAsyncSetupFailure(t *testing.T) {
	t.Parallel()
	m := newManager(t, TierAuto)
	if m.Report().Tier != TierNamespaces && m.Report().Tier != TierRootNamespaces {
		t.Skip("needs a mount namespace tier")
	}
	// sethostname(2) refuses more than 64 bytes: the init's setup fails.
	ctx := context.Background()
	s, err := m.StartAsync(ctx, Spec{Key: key("fail"), Workspace: filepath.Join(t.TempDir(), "ws"), Hostname: strings.Repeat("h", 100)})
	if err != nil {
		t.Fatal(err)
	}
	werr := s.WaitReady(ctx)
	if werr == nil || s.Ready() {
		t.Fatalf("WaitReady = %v, Ready = %v", werr, s.Ready())
	}
	_, err = s.Exec(ctx, ExecSpec{Argv: []string{"true"}})
	if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "sethostname") {
		t.Fatalf("Exec after failed setup: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Alive() {
		t.Fatal("sandbox still alive after its setup failed")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
