package sandbox

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInitIgnoresSignalsFromInside sends every signal, 1 to 64, to the
// init from a command, as kill(2) and as sigqueue(3): the init must
// survive each (SIGKILL and SIGSTOP are dropped by the kernel for the
// init of a pid namespace), the command must get its normal result, and
// commands must still start with default signal dispositions.
func TestInitIgnoresSignalsFromInside(t *testing.T) {
	for _, tier := range []Tier{TierNamespaces, TierRootNamespaces, TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			t.Parallel()
			if tier == TierRootNamespaces && !isRoot() {
				t.Skip("needs root")
			}
			m := newManager(t, tier)
			pid1 := m.mode != modeHost
			k := key("sig")
			s, _ := start(t, m, k, Limits{})
			for sig := 1; sig <= 64; sig++ {
				if !pid1 && (sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || sig == 32 || sig == 34) {
					// The init is an ordinary process here, and the Go
					// runtime leaves signals 32 and 34 (reserved by libc)
					// at their default action: TestInitDeathIsAResult.
					continue
				}
				r, err := runErr(s, "", 10*time.Second, "perl", "-e", initSignalScript(pid1), strconv.Itoa(sig), strconv.Itoa(unix.SYS_RT_SIGQUEUEINFO))
				if err != nil || r.ExitCode != 0 || r.stdout != "sent\n" {
					t.Errorf("signal %d (%v): %v %v", sig, unix.SignalName(unix.Signal(sig)), r, err)
				}
				if r, err := runErr(s, "", 10*time.Second, "echo", "alive"); err != nil || r.stdout != "alive\n" || !s.Alive() {
					t.Errorf("after signal %d (%v): init alive %v, next exec: %v %v", sig, unix.SignalName(unix.Signal(sig)), s.Alive(), r, err)
					// Carry on with a fresh sandbox.
					if s, err = m.Start(context.Background(), s.spec); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The init's own dispositions are not inherited.
			r := sh(t, s, "grep -E '^Sig(Ign|Blk):' /proc/self/status")
			if r.stdout != "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n" {
				t.Errorf("a command's signal dispositions: %v", r)
			}
		})
	}
}

// initSignalScript is a perl one-liner that sends signal $ARGV[0] to the
// sandbox's init (pid 1 in a pid namespace, else the command's parent)
// twice: with kill(2) (si_code SI_USER) and with rt_sigqueueinfo(2)
// (syscall $ARGV[1]) as SI_QUEUE, which the Go runtime takes for a real
// fault when the signal is synchronous (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
// SIGTRAP, SIGSYS, SIGSTKFLT).
func initSignalScript(pid1 bool) string {
	target := "getppid()"
	if pid1 {
		target = "1"
	}
	return `($s, $nr) = @ARGV; $pid = ` + target + `;
kill($s, $pid) or die "kill $s: $!\n";
$info = pack("iii", $s, 0, -1) . ("\0" x 116);
syscall($nr, $pid, $s, $info) == 0 or die "sigqueue $s: $!\n";
print "sent\n";`
}

func isRoot() bool { return unix.Geteuid() == 0 }

// TestInitDeathIsAResult: an init that dies under a running command (a
// crash; in the host tiers also a command that kills or stops its init,
// which no disposition can prevent there) gives the command a normal
// result, 137 with a one-line note (no runtime stack trace), and the
// next Start builds a fresh sandbox.
func TestInitDeathIsAResult(t *testing.T) {
	type death struct {
		name   string
		script string // the command; "" = sleep while the test kills the init
		want   int
	}
	for _, tier := range []Tier{TierNamespaces, TierRootNamespaces, TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			t.Parallel()
			if tier == TierRootNamespaces && !isRoot() {
				t.Skip("needs root")
			}
			m := newManager(t, tier)
			deaths := []death{{"killed by the server's side", "", 137}}
			if m.mode == modeHost {
				deaths = append(deaths,
					death{"SIGKILL from inside", killInit("9"), 137},
					death{"signal 34 from inside", killInit("34"), 137},
					// A stopped init cannot report: the timeout resumes it.
					death{"SIGSTOP from inside", killInit(`"STOP"`), 124},
				)
			}
			k := key("death")
			s, _ := start(t, m, k, Limits{})
			for _, d := range deaths {
				argv := []string{"perl", "-e", d.script}
				var out io.Writer = io.Discard
				if d.script == "" {
					// Kill the init once the command runs.
					argv = []string{"sh", "-c", "echo up; exec sleep 3"}
					out = writerFunc(func(p []byte) (int, error) {
						_ = s.cmd.Process.Kill()
						return len(p), nil
					})
				}
				// A death must end the command well before its 3s sleep
				// (no "survived"); a loaded machine may take a while to
				// start perl, so only the stopped init, which the
				// timeout must resume, gets a short one.
				timeout := 10 * time.Second
				if d.want == 124 {
					timeout = time.Second
				}
				t0 := time.Now()
				var errb lockedBuffer
				res, err := s.Exec(context.Background(), ExecSpec{Argv: argv, Env: testEnv(), Timeout: timeout, Stdout: out, Stderr: &errb})
				r := result{ExecResult: res, stderr: errb.String()}
				if strings.HasPrefix(r.stderr, "denied:") {
					// Landlock's signal scope kept the command from
					// reaching its init (whether the init's forking
					// thread shares the domain of its main thread
					// varies): the init lives on, as it should.
					if err != nil || r.ExitCode != 0 || !s.Alive() {
						t.Errorf("%s, denied: %v %v, init alive %v", d.name, r, err, s.Alive())
					}
					t.Logf("%s: %v", d.name, r)
					continue
				}
				if err != nil || r.ExitCode != d.want || strings.Contains(r.stderr, "survived") {
					t.Errorf("%s: %v %v after %v", d.name, r, err, time.Since(t0))
				}
				t.Logf("%s: %v after %v", d.name, r, time.Since(t0))
				if d.want == 137 && (!strings.Contains(r.stderr, "init exited: signal: ") || len(r.stderr) > 300) {
					t.Errorf("%s: stderr %q, want a one-line note", d.name, r.stderr)
				}
				s2, err := m.Start(context.Background(), s.spec)
				if err != nil {
					t.Fatalf("%s: Start after: %v", d.name, err)
				}
				if d.want == 137 && s2 == s {
					t.Errorf("%s: Start returned the dead sandbox", d.name)
				}
				s = s2
				if r, err := runErr(s, "", 5*time.Second, "echo", "again"); err != nil || r.stdout != "again\n" {
					t.Errorf("%s: next command: %v %v", d.name, r, err)
				}
			}
			_ = s.Stop()
		})
	}
}

// killInit is a perl script that sends signal sig to its parent, the
// init of a host-mode sandbox, then sleeps 3s and prints "survived" on
// stderr; a kill(2) that fails prints "denied: " and the reason, and
// exits 0.
func killInit(sig string) string {
	return `kill(` + sig + `, getppid()) or do { print STDERR "denied: $!\n"; exit 0 }; sleep 3; print STDERR "survived\n"`
}

// writerFunc is an io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCommandsDoNotInheritIgnoredSignals: a signal the server's own
// environment ignores (here signal 32, which nothing in the process uses)
// reaches commands with its default action: the init resets what it
// inherited.
func TestCommandsDoNotInheritIgnoredSignals(t *testing.T) {
	const sig, sigsetSize = 32, 8
	var ign, old [4]uint64
	ign[0] = 1 // SIG_IGN
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(ptr(&ign)), uintptr(ptr(&old)), sigsetSize, 0, 0); e != 0 {
		t.Fatalf("ignore signal %d: %v", sig, e)
	}
	t.Cleanup(func() {
		_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(ptr(&old)), 0, sigsetSize, 0, 0)
	})
	m := newManager(t, TierAuto)
	s, _ := start(t, m, key("sigign"), Limits{})
	if r := sh(t, s, "grep '^SigIgn:' /proc/self/status"); r.stdout != "SigIgn:\t0000000000000000\n" {
		t.Errorf("a command's ignored signals: %v", r)
	}
}

// TestHostTiersRewritePathVariables: in the tiers without a mount
// namespace, HOME and TMPDIR (given as /workspace and /tmp, as the backend
// does) lead to the host directories standing for them, so a command can
// write where it is told to; in every tier the same script works.
func TestHostTiersRewritePathVariables(t *testing.T) {
	for _, tier := range []Tier{TierNamespaces, TierLandlock, TierNoneUnsafe} {
		t.Run(string(tier), func(t *testing.T) {
			t.Parallel()
			m := newManager(t, tier)
			s, _ := start(t, m, key("env"), Limits{})
			var out, errb lockedBuffer
			env := append(testEnv(), "TMPDIR=/tmp", "TMP=/tmp", "PWD=/workspace")
			r, err := s.Exec(context.Background(), ExecSpec{
				Argv: []string{"sh", "-c", `echo t > "$TMPDIR/t" && echo h > "$HOME/h" && cat "$TMPDIR/t" "$HOME/h" && test "$TMP" = "$TMPDIR" && cd "$PWD"`},
				Env:  env, Timeout: 10 * time.Second, Stdout: &out, Stderr: &errb,
			})
			if err != nil || r.ExitCode != 0 || out.String() != "t\nh\n" {
				t.Errorf("exit %d, stdout %q, stderr %q, err %v", r.ExitCode, out.String(), errb.String(), err)
			}
		})
	}
}

func TestHostEnv(t *testing.T) {
	got := hostEnv([]string{"HOME=/workspace", "TMPDIR=/tmp", "PWD=/workspace/src/", "TEMP=/tmpfoo", "PATH=/workspace/bin", "TMP=relative", "X"},
		"/data/ws", "/data/tmp")
	want := []string{"HOME=/data/ws", "TMPDIR=/data/tmp", "PWD=/data/ws/src", "TEMP=/tmpfoo", "PATH=/workspace/bin", "TMP=relative", "X"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hostEnv = %q, want %q", got, want)
	}
}
