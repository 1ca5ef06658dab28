package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/localbackend"
)

func TestMain(m *testing.M) {
	localbackend.MaybeRunInit() // a re-executed sandbox init never returns
	testscript.Main(m, map[string]func(){
		"nox": func() { os.Exit(runMain()) },
		// nox-skew is nox of another version (TestDaemonVersionSkew).
		"nox-skew": func() {
			version = skewVersion
			os.Exit(runMain())
		},
	})
}

// requireIsolation reports whether NOX_REQUIRE_ISOLATION=1 turns skips
// for a missing sandbox runtime into failures.
func requireIsolation() bool { return os.Getenv("NOX_REQUIRE_ISOLATION") == "1" }

// localUsable reports whether the real local backend runs isolated
// sandboxes here, and why not.
func localUsable(t *testing.T) (bool, string) {
	t.Helper()
	b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return false, err.Error()
	}
	defer b.Close()
	if info := b.Info(); !info.Isolated {
		return false, "no isolation here (tier " + info.Tier + ")"
	}
	return true, ""
}

// needLocal skips the test when the local backend cannot isolate
// sandboxes here (fails with NOX_REQUIRE_ISOLATION=1) and returns a fresh
// data directory for it, whose local daemon (if --local starts one) is
// stopped at the end of the test.
func needLocal(t *testing.T) string {
	t.Helper()
	if ok, why := localUsable(t); !ok {
		if requireIsolation() {
			t.Fatalf("local backend unavailable: %s (NOX_REQUIRE_ISOLATION=1)", why)
		}
		t.Skipf("local backend unavailable: %s (set NOX_REQUIRE_ISOLATION=1 to fail instead)", why)
	}
	dir := t.TempDir()
	t.Cleanup(func() { stopTestDaemon(t, dir) })
	return dir
}

// result is the outcome of one nox invocation.
type result struct {
	code           int
	stdout, stderr string
}

// nox runs the CLI in process with args (without the program name).
// Tests calling it must not run in parallel: urfave/cli v2 writes to its
// package-level HelpFlag while parsing (a data race between two Apps in
// one process; the nox binary only ever runs one).
func nox(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"nox"}, args...), strings.NewReader(stdin), &out, &errb)
	t.Logf("nox %s\n-> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestScripts runs the end-to-end scripts in testdata/script twice: with
// NOXRUNNER_BASE_URL pointing at the reference test backend (membackend), and at
// the real local backend served on loopback (skipped where it cannot
// isolate sandboxes). Scripts that use --local need [isolation].
func TestScripts(t *testing.T) {
	isolated, why := localUsable(t)
	if !isolated && requireIsolation() {
		t.Fatalf("local backend unavailable: %s (NOX_REQUIRE_ISOLATION=1)", why)
	}
	// The scripts run nox as a subprocess, so the two runs may overlap.
	t.Run("mem", func(t *testing.T) {
		t.Parallel()
		_, url := newTestBackend(t, testbackend.Options{})
		runScripts(t, url, "mem", isolated)
	})
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		if !isolated {
			t.Skipf("local backend unavailable: %s", why)
		}
		b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(b.Handler())
		t.Cleanup(func() {
			srv.Close()
			if err := b.Close(); err != nil {
				t.Errorf("closing the local backend: %v", err)
			}
		})
		runScripts(t, srv.URL, "local", isolated)
	})
}

// goEnvForScripts returns what a script needs to build nox with the go
// command as this test was built (make install): the repository's root as
// REPO, and the go command's caches, so that a script's own HOME does not
// mean a cold build. Without a go command the map has REPO only.
func goEnvForScripts(t *testing.T) map[string]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REPO": root}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT").Output()
	if err != nil {
		return env
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT"} {
		if i < len(vals) {
			env[k] = vals[i]
		}
	}
	env["GOTOOLCHAIN"] = "local" // build with this toolchain, download nothing
	env["GOFLAGS"] = "-buildvcs=false"
	env["GOPROXY"] = "off"
	return env
}

// runScripts runs the scripts against the backend at baseURL, whose kind
// ("mem" or "local") the condition [backend:KIND] tests.
func runScripts(t *testing.T, baseURL, kind string, isolated bool) {
	goEnv := goEnvForScripts(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			for k, v := range goEnv {
				env.Setenv(k, v)
			}
			env.Setenv("NOXRUNNER_BASE_URL", baseURL)
			env.Setenv("NO_COLOR", "1")
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/.state")
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "isolation" {
				return isolated, nil
			}
			if k, ok := strings.CutPrefix(cond, "backend:"); ok {
				return k == kind, nil
			}
			return false, errors.New("unknown condition " + cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exitcode N CMD ARGS... runs CMD and checks its exit code.
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exitcode N command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exitcode: %v", err)
				}
				got := 0
				var ee *exec.ExitError
				if err := ts.Exec(args[1], args[2:]...); errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("exitcode: %v", err)
				}
				if got != want {
					ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
				}
			},
		},
	})
}
