package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// key returns a sandbox key unique to this run, so host uids do not collide
// with other servers' sandboxes.
func key(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

func TestReport(t *testing.T) {
	m := newManager(t, TierAuto)
	r := m.Report()
	t.Logf("report: %+v", r)
	if r.Tier == TierNoneUnsafe || !r.Isolated {
		t.Fatalf("auto picked %s", r.Tier)
	}
	if os.Getenv("NOX_REQUIRE_ISOLATION") == "1" && r.Tier != TierNamespaces && r.Tier != TierRootNamespaces {
		t.Fatalf("isolation required, got tier %s", r.Tier)
	}
}

func TestEscapeBattery(t *testing.T) {
	m := newManager(t, TierNamespaces)
	a, _ := start(t, m, key("esc-a"), Limits{Pids: 128})
	b, wsB := start(t, m, key("esc-b"), Limits{})
	if r := sh(t, b, "echo secret-b > /workspace/secret && echo ok"); r.stdout != "ok\n" {
		t.Fatalf("write own workspace: %v", r)
	}

	// A listener on the host's loopback: the sandbox must not reach it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("reached\n"))
			c.Close()
		}
	}()
	// A leaked fd: not close-on-exec in the server.
	leak, err := syscall.Open("/etc", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	t.Setenv("NOX_TEST_SERVER_SECRET", "hunter2")
	c, _ := start(t, m, key("esc-c"), Limits{})

	hostFile := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(hostFile, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, script string
		check        func(r result) error
	}{
		{"write /etc", "echo x > /etc/pwned", failed},
		{"write /usr", "touch /usr/pwned", failed},
		{"write /", "touch /pwned", failed},
		{"write /proc/sys", "echo x > /proc/sys/kernel/hostname", failed},
		{"read shadow", "cat /etc/shadow", failed},
		{"remount", "mount -o remount,rw /usr", failed},
		{"mount tmpfs", "mount -t tmpfs x /tmp", failed},
		{"unshare", "unshare -Ur true", failed},
		{"other workspace by host path", "cat " + wsB + "/secret", failed},
		{"host file by path", "cat " + hostFile, failed},
		{"find other secret", "find / -path /proc -prune -o -path /usr -prune -o -name secret -print 2>/dev/null; echo searched", func(r result) error {
			if !strings.HasSuffix(r.stdout, "searched\n") || strings.Contains(r.stdout, "secret") {
				return fmt.Errorf("found: %s", r.stdout)
			}
			return nil
		}},
		{"tcp to host loopback", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3", port), func(r result) error {
			if r.ExitCode == 0 || strings.Contains(r.stdout, "reached") {
				return fmt.Errorf("connected: %v", r)
			}
			return nil
		}},
		{"tcp outside", "exec 3<>/dev/tcp/1.1.1.1/80", failed},
		{"only lo", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", func(r result) error {
			if r.stdout != "lo\n" {
				return fmt.Errorf("interfaces: %q", r.stdout)
			}
			return nil
		}},
		{"server pid invisible", fmt.Sprintf("kill -0 %d || ls /proc/%d", os.Getpid(), os.Getpid()), failed},
		{"signal init", "kill -TERM 1; kill -KILL 1; sleep 0.1; kill -0 1 && echo alive", func(r result) error {
			if !strings.Contains(r.stdout, "alive") {
				return fmt.Errorf("init gone: %v", r)
			}
			return nil
		}},
		{"init memory", "cat /proc/1/environ", failed},
		{"ptrace", "perl -e 'require \"syscall.ph\"; exit(syscall(101, 16, 1, 0, 0) == -1 ? 3 : 0)'", func(r result) error {
			if r.ExitCode != 3 {
				return fmt.Errorf("ptrace attach allowed: %v", r)
			}
			return nil
		}},
		{"env", "env | sort", func(r result) error {
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				k, _, _ := strings.Cut(l, "=")
				switch k {
				case "HOME", "LANG", "PATH", "PWD", "SHLVL", "_": // ours and bash's
				default:
					return fmt.Errorf("unexpected variable %q", l)
				}
			}
			return nil
		}},
		{"fds", "ls /proc/self/fd", func(r result) error {
			if r.stdout != "0\n1\n2\n3\n" { // 3 is ls's own directory fd
				return fmt.Errorf("fds: %q", r.stdout)
			}
			return nil
		}},
		{"identity", "id -u; hostname; cat /proc/self/status | grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):'", func(r result) error {
			want := "1000\nsbx\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
			if r.stdout != want {
				return fmt.Errorf("got %q", r.stdout)
			}
			return nil
		}},
		{"tmp writable", "echo t > /tmp/x && cat /tmp/x && touch /workspace/y && mkdir -p /workspace/d/e", func(r result) error {
			if r.ExitCode != 0 || r.stdout != "t\n" {
				return fmt.Errorf("%v", r)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			r := run(t, c, 10*time.Second, "bash", "-c", tc.script)
			if err := tc.check(r); err != nil {
				t.Errorf("%s: %v", tc.script, err)
			}
		})
	}
	for _, p := range []string{"/etc/pwned", "/usr/pwned", "/pwned"} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s created on the host", p)
		}
	}
	// The workspace is owned by the sandbox's host uid.
	uid, _ := c.HostOwner()
	if os.Geteuid() == 0 && !m.uidRange.contains(uid) {
		t.Errorf("host uid %d outside the sandbox range", uid)
	}
	_ = a
	t.Run("workdir", func(t *testing.T) {
		for _, dir := range []string{"/nonexistent", "relative", "/workspace/../etc/passwd"} {
			if _, err := runErr(c, dir, time.Second, "true"); !errors.Is(err, ErrNoWorkdir) {
				t.Errorf("Dir %q: err = %v, want ErrNoWorkdir", dir, err)
			}
		}
		if r, err := runErr(c, "/workspace/d/e", time.Second, "pwd"); err != nil || r.stdout != "/workspace/d/e\n" {
			t.Errorf("Dir /workspace/d/e: %v %v", r, err)
		}
	})
}

func failed(r result) error {
	if r.ExitCode == 0 {
		return fmt.Errorf("succeeded: %v", r)
	}
	return nil
}

func TestExitCodes(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, ws := start(t, m, key("exit"), Limits{})
	if err := os.WriteFile(filepath.Join(ws, "noexec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(ws, "noexec.sh"), s.uid, s.gid); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv    []string
		timeout time.Duration
		want    int
	}{
		{[]string{"true"}, 0, 0},
		{[]string{"false"}, 0, 1},
		{[]string{"sh", "-c", "exit 42"}, 0, 42},
		{[]string{"sleep", "10"}, 300 * time.Millisecond, 124},
		{[]string{"./noexec.sh"}, 0, 126},
		{[]string{"/workspace"}, 0, 126},
		{[]string{"no-such-command"}, 0, 127},
		{[]string{"/workspace/missing"}, 0, 127},
		{[]string{"sh", "-c", "no-such-command"}, 0, 127},
		{[]string{"sh", "-c", "kill -9 $$"}, 0, 137},
		{[]string{"sh", "-c", "kill -TERM $$"}, 0, 143},
	} {
		r := run(t, s, tc.timeout, tc.argv...)
		if r.ExitCode != tc.want || r.TimedOut != (tc.want == 124) || r.OOMKilled {
			t.Errorf("%q: %v, want exit %d", tc.argv, r, tc.want)
		}
	}
}

// cmdlines lists the command lines of the processes inside a sandbox.
func cmdlines(t *testing.T, s *Sandbox) string {
	t.Helper()
	return sh(t, s, `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`).stdout
}

func TestTimeoutKillsTreeButNotEarlierBackground(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("tree"), Limits{Pids: 256})
	if r := sh(t, s, "sleep 1000 >/dev/null 2>&1 &"); r.ExitCode != 0 {
		t.Fatalf("background: %v", r)
	}
	t0 := time.Now()
	script := "setsid sleep 1001 & (sleep 1002 >/dev/null 2>&1 &) ; nohup sleep 1003 >/dev/null 2>&1 & setsid sh -c 'trap \"\" TERM HUP; sleep 1004' & sleep 1005"
	escapees := []string{"1001", "1002", "1003", "1004", "1005"}
	if m.Report().Cgroup != "" {
		// A new session whose leader exits at once: only a cgroup finds it.
		script = "setsid sh -c 'sleep 1008 >/dev/null 2>&1 &'; " + script
		escapees = append(escapees, "1008")
	}
	r := run(t, s, 700*time.Millisecond, "sh", "-c", script)
	if r.ExitCode != 124 || !r.TimedOut {
		t.Fatalf("got %v, want 124", r)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
	ps := cmdlines(t, s)
	if !strings.Contains(ps, "sleep 1000") {
		t.Errorf("the earlier background process died:\n%s", ps)
	}
	for _, n := range escapees {
		if strings.Contains(ps, "sleep "+n) {
			t.Errorf("sleep %s survived the timeout:\n%s", n, ps)
		}
	}
	// Context cancellation kills the tree too, and is reported as an error.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := s.Exec(ctx, ExecSpec{Argv: []string{"sh", "-c", "setsid sleep 1006 & sleep 1007"}, Dir: "/workspace", Env: testEnv()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled exec: err = %v", err)
	}
	if ps := cmdlines(t, s); strings.Contains(ps, "sleep 100") && !strings.Contains(ps, "sleep 1000") || strings.Contains(ps, "sleep 1006") || strings.Contains(ps, "sleep 1007") {
		t.Errorf("after cancel:\n%s", ps)
	}
}

func TestBackgroundLivesUntilStop(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, ws := start(t, m, key("bg"), Limits{})
	t0 := time.Now()
	// The background process keeps stdout open: Exec still returns.
	r := sh(t, s, "(while :; do date +%s%N > /workspace/tick; sleep 0.05; done) & echo started")
	if r.ExitCode != 0 || r.stdout != "started\n" {
		t.Fatalf("%v", r)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("exec with a background process took %v", d)
	}
	read := func() string { b, _ := os.ReadFile(filepath.Join(ws, "tick")); return string(b) }
	first := read()
	time.Sleep(300 * time.Millisecond)
	if read() == first {
		t.Fatal("the background loop is not running")
	}
	if r := sh(t, s, "echo again"); r.stdout != "again\n" {
		t.Fatalf("second exec: %v", r)
	}
	uid, _ := s.HostOwner()
	if os.Geteuid() == 0 && len(procsOfUID(uid)) == 0 {
		t.Fatal("no processes of the sandbox uid on the host")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Alive() {
		t.Fatal("Alive after Stop")
	}
	if os.Geteuid() == 0 {
		waitNoProcs(t, uid)
	}
	last := read()
	time.Sleep(200 * time.Millisecond)
	if read() != last {
		t.Fatal("the background loop survived Stop")
	}
	if _, err := runErr(s, "", time.Second, "true"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Exec after Stop: %v", err)
	}
}

func TestLimits(t *testing.T) {
	m := newManager(t, TierNamespaces)
	requireCgroups(t, m)
	other, _ := start(t, m, key("neighbour"), Limits{})

	t.Run("forkbomb", func(t *testing.T) {
		s, _ := start(t, m, key("bomb"), Limits{Pids: 64, CPUMilli: 500})
		done := make(chan result)
		go func() {
			done <- run(t, s, 3*time.Second, "perl", "-e", "fork while 1")
		}()
		time.Sleep(500 * time.Millisecond)
		// The neighbour and the host keep working during the bomb.
		if r := sh(t, other, "echo ok"); r.stdout != "ok\n" {
			t.Errorf("neighbour during the bomb: %v", r)
		}
		if err := exec.Command("true").Run(); err != nil {
			t.Errorf("host fork during the bomb: %v", err)
		}
		r := <-done
		if r.ExitCode != 124 {
			t.Errorf("bomb: %v", r)
		}
		// The sandbox itself recovers.
		if r := sh(t, s, "echo alive"); r.stdout != "alive\n" {
			t.Errorf("after the bomb: %v", r)
		}
	})
	t.Run("memory", func(t *testing.T) {
		s, _ := start(t, m, key("hog"), Limits{MemoryBytes: 64 << 20})
		r := run(t, s, 20*time.Second, "perl", "-e", `my @a; push @a, "x" x (8<<20) for 1..64; print "survived\n"`)
		if r.ExitCode != 137 || !r.OOMKilled {
			t.Errorf("hog: %v", r)
		}
		r = run(t, s, 20*time.Second, "sh", "-c", `perl -e 'my @a; push @a, "x" x (8<<20) for 1..64'; echo rc=$?`)
		if r.stdout != "rc=137\n" {
			t.Errorf("hog in a shell: %v", r)
		}
		if r := sh(t, s, "echo fine"); r.stdout != "fine\n" || r.OOMKilled {
			t.Errorf("after the hog: %v", r)
		}
		// Many processes smaller than the init: the OOM killer must still
		// pick among the commands only.
		r = run(t, s, 20*time.Second, "sh", "-c", `for i in $(seq 80); do perl -e '$x = "a" x (1<<19); sleep 2' & done; wait; echo done`)
		if !s.Alive() || r.stdout != "done\n" {
			t.Errorf("many small processes: %v, init alive %v", r, s.Alive())
		}
	})
	t.Run("tmpfull", func(t *testing.T) {
		s, _ := start(t, m, key("tmp"), Limits{TmpBytes: 4 << 20})
		r := sh(t, s, "dd if=/dev/zero of=/tmp/big bs=1M count=16 2>&1; echo rc=$?")
		if !strings.Contains(r.stdout, "No space left") {
			t.Errorf("filling /tmp: %v", r)
		}
	})
	t.Run("flood", func(t *testing.T) {
		s, _ := start(t, m, key("flood"), Limits{})
		t0 := time.Now()
		r, err := s.Exec(context.Background(), ExecSpec{Argv: []string{"head", "-c", "1G", "/dev/zero"}, Dir: "/workspace", Env: testEnv(), Timeout: 30 * time.Second, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("flood: %+v %v", r, err)
		}
		t.Logf("1 GiB of output in %v", time.Since(t0))
		if d := time.Since(t0); d > 15*time.Second {
			t.Errorf("flood took %v", d)
		}
	})
}

func TestConcurrentExecs(t *testing.T) {
	m := newManager(t, TierNamespaces)
	var boxes []*Sandbox
	for i := range 2 {
		s, _ := start(t, m, key(fmt.Sprintf("conc%d", i)), Limits{Pids: 128})
		boxes = append(boxes, s)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := boxes[i%2]
			for j := range 8 {
				want := fmt.Sprintf("%d-%d", i, j)
				r, err := runErr(s, "", 10*time.Second, "sh", "-c", "echo "+want+"; echo err >&2; exit "+strconv.Itoa(j))
				if err != nil || r.stdout != want+"\n" || r.stderr != "err\n" || r.ExitCode != j {
					t.Errorf("%s: %v %v", want, r, err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestRestartKeepsWorkspace(t *testing.T) {
	dir := t.TempDir()
	m1, err := New(Options{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		if os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	spec := Spec{Key: key("restart"), Workspace: filepath.Join(dir, "ws")}
	s1, err := m1.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s1, "echo kept > /workspace/f && echo tmp > /tmp/t"); r.ExitCode != 0 {
		t.Fatalf("%v", r)
	}
	if s, err := m1.Start(context.Background(), spec); err != nil || s != s1 {
		t.Fatalf("ensure of a running sandbox: %v %v", s == s1, err)
	}
	if err := s1.Stop(); err != nil {
		t.Fatal(err)
	}
	s2, err := m1.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r := sh(t, s2, "cat /workspace/f; cat /tmp/t 2>/dev/null || echo fresh-tmp"); r.stdout != "kept\nfresh-tmp\n" {
		t.Fatalf("after Stop+Start: %v", r)
	}
	// A server restart: a new Manager builds a fresh environment.
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if s2.Alive() {
		t.Fatal("sandbox alive after Close")
	}
	m2 := newManager(t, TierAuto)
	s3, err := m2.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Stop()
	if r := sh(t, s3, "cat /workspace/f && echo more >> /workspace/f"); r.stdout != "kept\n" || r.ExitCode != 0 {
		t.Fatalf("after restart: %v", r)
	}
}

// TestServerDeathKillsSandbox kills a server process (this test binary in
// helper mode) with SIGKILL and checks that its sandboxes die with it.
func TestServerDeathKillsSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs per-sandbox uids (root) to find the processes")
	}
	newManager(t, TierNamespaces) // skip when unavailable
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$", "-test.v")
	cmd.Env = append(os.Environ(), "NOX_SANDBOX_HELPER_WS="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var uid int
	buf := make([]byte, 4096)
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(got, "READY ") && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if _, rest, ok := strings.Cut(got, "READY "); ok {
		uid, _ = strconv.Atoi(strings.Fields(rest)[0])
	}
	if uid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not start: %q", got)
	}
	if len(procsOfUID(uid)) < 2 {
		t.Fatalf("expected the init and a background process of uid %d", uid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitNoProcs(t, uid)
}

// TestHelperServer is the server of TestServerDeathKillsSandbox.
func TestHelperServer(t *testing.T) {
	ws := os.Getenv("NOX_SANDBOX_HELPER_WS")
	if ws == "" {
		t.Skip("helper for TestServerDeathKillsSandbox")
	}
	m, err := New(Options{Tier: TierNamespaces, StateDir: filepath.Join(ws, "state")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Start(context.Background(), Spec{Key: key("orphan"), Workspace: filepath.Join(ws, "ws")})
	if err != nil {
		t.Fatal(err)
	}
	sh(t, s, "sleep 1000 >/dev/null 2>&1 &")
	uid, _ := s.HostOwner()
	fmt.Printf("READY %d\n", uid)
	time.Sleep(30 * time.Second) // killed before
}

func TestTierRootNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	m := newManager(t, TierRootNamespaces)
	s, ws := start(t, m, key("rootns"), Limits{Pids: 64})
	uid, _ := s.HostOwner()
	r := sh(t, s, "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; echo x > /workspace/f; echo y > /etc/pwned")
	want := fmt.Sprintf("%d\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n", uid)
	if r.stdout != want || r.ExitCode == 0 {
		t.Errorf("got %v, want stdout %q and a failure", r, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ws, "f"), &st); err != nil || int(st.Uid) != uid {
		t.Errorf("workspace file: %v uid %d", err, st.Uid)
	}
	if r := run(t, s, 300*time.Millisecond, "sh", "-c", "setsid sleep 100 & sleep 100"); r.ExitCode != 124 {
		t.Errorf("timeout: %v", r)
	}
}

func TestTierLandlock(t *testing.T) {
	m := newManager(t, TierLandlock)
	s, ws := start(t, m, key("ll"), Limits{})
	other := t.TempDir()
	if err := os.Chmod(other, 0o755); err != nil {
		t.Fatal(err)
	}
	r := sh(t, s, "pwd; echo x > f; echo y > /tmp/ll-pwned; echo z > "+other+"/pwned; echo done")
	if r.stdout != ws+"\ndone\n" {
		t.Errorf("got %v", r)
	}
	if _, err := os.Stat("/tmp/ll-pwned"); err == nil {
		os.Remove("/tmp/ll-pwned")
		t.Error("wrote the host's /tmp")
	}
	if _, err := os.Stat(filepath.Join(ws, "f")); err != nil {
		t.Errorf("workspace write: %v", err)
	}
	if r := run(t, s, time.Second, "no-such"); r.ExitCode != 127 {
		t.Errorf("127: %v", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	secret := filepath.Join(other, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{
		fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", ln.Addr().(*net.TCPAddr).Port),
		"cat " + secret,
		fmt.Sprintf("kill -0 %d", os.Getpid()),
	} {
		if r := run(t, s, 5*time.Second, "bash", "-c", script); r.ExitCode == 0 {
			t.Errorf("%s: %v", script, r)
		}
	}
	if r := run(t, s, 300*time.Millisecond, "sleep", "10"); r.ExitCode != 124 {
		t.Errorf("124: %v", r)
	}
}

func TestTierNoneUnsafe(t *testing.T) {
	m := newManager(t, TierNoneUnsafe)
	if m.Report().Isolated {
		t.Fatal("none-unsafe reports isolation")
	}
	s, ws := start(t, m, key("none"), Limits{Pids: 64})
	if r := sh(t, s, "pwd; echo x > f"); r.stdout != ws+"\n" || r.ExitCode != 0 {
		t.Errorf("%v", r)
	}
	if r := run(t, s, 300*time.Millisecond, "sh", "-c", "sleep 100 & sleep 100"); r.ExitCode != 124 {
		t.Errorf("124: %v", r)
	}
	if r := sh(t, s, "sleep 1000 >/dev/null 2>&1 &"); r.ExitCode != 0 {
		t.Errorf("%v", r)
	}
	uid, _ := s.HostOwner()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		waitNoProcs(t, uid)
	}
}

func TestNoCgroupsFallback(t *testing.T) {
	m, err := New(Options{Tier: TierNamespaces, StateDir: t.TempDir(), NoCgroups: true})
	if err != nil {
		if os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer m.Close()
	if r := m.Report(); r.Cgroup != "" || len(r.Unenforced) != 4 {
		t.Errorf("report: %+v", r)
	}
	s, _ := start(t, m, key("nocg"), Limits{Pids: 64})
	sh(t, s, "sleep 1000 >/dev/null 2>&1 &")
	r := run(t, s, 500*time.Millisecond, "sh", "-c", "sleep 1001 & setsid sleep 1002 & sleep 1003")
	if r.ExitCode != 124 {
		t.Fatalf("timeout: %v", r)
	}
	time.Sleep(50 * time.Millisecond)
	ps := cmdlines(t, s)
	if !strings.Contains(ps, "sleep 1000") {
		t.Errorf("earlier background process died:\n%s", ps)
	}
	for _, n := range []string{"1001", "1002", "1003"} {
		if strings.Contains(ps, "sleep "+n) {
			t.Errorf("sleep %s survived:\n%s", n, ps)
		}
	}
	if r := run(t, s, 0, "sh", "-c", "kill -9 $$"); r.ExitCode != 137 || r.OOMKilled {
		t.Errorf("137: %v", r)
	}
}

func TestRootFS(t *testing.T) {
	m := newManager(t, TierNamespaces)
	ws := filepath.Join(t.TempDir(), "ws")
	s, err := m.Start(context.Background(), Spec{Key: key("rootfs"), Workspace: ws, RootFS: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	r := sh(t, s, "test -d /var && test -d /workspace && ! touch /var/pwned 2>/dev/null && ! test -e /sys/kernel && ! test -e /.rootfs && ! grep -q rootfs /proc/self/mountinfo && echo ok")
	if r.stdout != "ok\n" {
		t.Errorf("%v", r)
	}
}

// TestTinyTimeouts: a timeout that fires before the init has forked the
// command must still kill it, and never the init.
func TestTinyTimeouts(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("tiny"), Limits{Pids: 128})
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := runErr(s, "", time.Duration(i%3)*time.Millisecond+time.Microsecond, "sleep", "30")
			if err != nil || r.ExitCode != 124 {
				t.Errorf("%d: %v %v", i, r, err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if !s.Alive() {
		t.Fatal("the init died")
	}
	if ps := cmdlines(t, s); strings.Contains(ps, "sleep 30") {
		t.Errorf("survivors:\n%s", ps)
	}
}

// timedWriter records when the first byte arrived.
type timedWriter struct {
	mu    sync.Mutex
	first time.Time
	b     []byte
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() {
		w.first = time.Now()
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func TestStreamingStdinAndFileSize(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("stream"), Limits{StorageBytes: 4 << 20})
	var w timedWriter
	t0 := time.Now()
	r, err := s.Exec(context.Background(), ExecSpec{Argv: []string{"sh", "-c", "echo a; sleep 0.5; echo b"}, Dir: "/workspace", Env: testEnv(), Stdout: &w, Timeout: 10 * time.Second})
	if err != nil || r.ExitCode != 0 || string(w.b) != "a\nb\n" {
		t.Fatalf("%+v %v %q", r, err, w.b)
	}
	if d := w.first.Sub(t0); d > 300*time.Millisecond {
		t.Errorf("first output after %v: not streamed", d)
	}
	// stdin is /dev/null: cat ends at once.
	if r := run(t, s, 5*time.Second, "cat"); r.ExitCode != 0 || r.TimedOut {
		t.Errorf("cat: %v", r)
	}
	// RLIMIT_FSIZE = StorageBytes: one file cannot outgrow the quota.
	r2 := sh(t, s, "dd if=/dev/zero of=/workspace/big bs=1M count=16 2>/dev/null; echo rc=$?; wc -c < /workspace/big")
	if r2.stdout != "rc=153\n4194304\n" {
		t.Errorf("file size limit: %v", r2)
	}
}

func TestLargeArgvAndEnv(t *testing.T) {
	m := newManager(t, TierNamespaces)
	s, _ := start(t, m, key("large"), Limits{})
	env := testEnv()
	for i := range 1000 {
		env = append(env, fmt.Sprintf("V%d=%s", i, strings.Repeat("x", 1000)))
	}
	arg := strings.Repeat("y", 100000)
	var out lockedBuffer
	r, err := s.Exec(context.Background(), ExecSpec{Argv: []string{"sh", "-c", `echo ${#V999} ${#1}`, "sh", arg}, Dir: "/workspace", Env: env, Stdout: &out, Timeout: 10 * time.Second})
	if err != nil || r.ExitCode != 0 || out.String() != "1000 100000\n" {
		t.Fatalf("%+v %v %q", r, err, out.String())
	}
}

// TestStaleCgroupsRemoved: New removes the cgroups of a dead server.
func TestStaleCgroupsRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for cgroups")
	}
	self, err := selfCgroups()
	if err != nil {
		t.Fatal(err)
	}
	// pid 0x7ffffffe is above pid_max: never a live process.
	stale := filepath.Join(cgroupRoot, "pids", self["pids"], cgroupTopName, "m2147483646-stale", "s-x-1", "cmds")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Skip("no writable pids hierarchy:", err)
	}
	newManager(t, TierAuto)
	if _, err := os.Stat(filepath.Dir(filepath.Dir(stale))); !os.IsNotExist(err) {
		removeTree(context.Background(), filepath.Dir(filepath.Dir(stale)))
		t.Fatalf("stale cgroup not removed: %v", err)
	}
}
