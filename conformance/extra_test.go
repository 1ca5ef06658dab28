package conformance_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// TestCheckIDsStable keeps the ids of the suite's own checks: the README,
// CLI scripts and users select checks by them (nox conformance --run).
func TestCheckIDsStable(t *testing.T) {
	t.Parallel()
	want := []string{
		"health/ok",
		"sandbox/create",
		"sandbox/create-default-ttl",
		"sandbox/create-idempotent",
		"sandbox/create-concurrent",
		"sandbox/create-invalid-session-id",
		"sandbox/create-invalid-ttl",
		"sandbox/create-resource-limits",
		"sandbox/touch-extends-expiry",
		"sandbox/touch-unknown-404",
		"sandbox/delete",
		"sandbox/delete-unknown",
		"sandbox/isolation-files",
		"sandbox/ttl-expiry",
		"exec/argv-verbatim",
		"exec/exit-codes",
		"exec/stdout-stderr",
		"exec/env",
		"exec/workdir",
		"exec/timeout-kills-process-tree",
		"exec/large-output-capped",
		"exec/output-not-blocking",
		"exec/non-ascii",
		"exec/concurrent",
		"exec/stdin-empty",
		"exec/invalid-request-400",
		"exec/unknown-sandbox-404",
		"exec/workspace-paths-contained",
		"files/upload-gzip",
		"files/upload-plain-tar",
		"files/default-paths",
		"files/download-roundtrip",
		"files/download-single-file",
		"files/download-missing-404",
		"files/unknown-sandbox-404",
		"files/upload-invalid-archive-400",
		"files/hostile-archives-contained",
		"files/upload-chunked",
		"files/upload-dest-writable",
		"fs/read",
		"fs/read-range",
		"fs/read-conditional",
		"fs/write-create-replace",
		"fs/write-atomic",
		"fs/write-conditional",
		"fs/write-parents-mode",
		"fs/write-too-large-413",
		"fs/binary-safe",
		"fs/large-file",
		"fs/stat",
		"fs/list",
		"fs/list-paging",
		"fs/mkdir",
		"fs/remove",
		"fs/move",
		"fs/paths-contained",
		"fs/errors-name-path",
		"fs/unknown-sandbox-404",
		"fs/watch-create",
		"fs/watch-events",
		"fs/watch-recursive",
		"fs/watch-errors",
		"info/shape",
		"sandbox/get",
		"sandbox/list-paging",
		"exec/stream-events",
		"exec/stream-heartbeat",
		"exec/stream-errors",
		"exec/flags-timed-out",
		"exec/flags-truncated",
		"exec/oom-killed",
		"sandbox/create-ttl-over-max",
		"exec/timeout-over-max",
		"files/upload-too-large-413",
		"auth/bearer-required",
		"exec/saturated-503",
		"proc/start",
		"proc/get",
		"proc/list",
		"proc/wait",
		"proc/unknown-process-404",
		"proc/unknown-sandbox-404",
		"proc/invalid-request-400",
		"proc/output-replay",
		"proc/output-follow",
		"proc/output-end",
		"proc/output-truncated",
		"proc/output-binary",
		"proc/output-streams",
		"proc/stdin",
		"proc/signal",
		"proc/kill",
		"proc/timeout",
		"proc/survives-disconnect",
		"proc/pty",
		"proc/pty-resize",
		"proc/max-processes-503",
		"proc/terminal",
		"proc/terminal-errors",
		"proc/terminal-hangup",
		"exec/stdin",
		"exec/stdin-invalid-400",
		"exec/stdin-too-large-400",
		"ports/proxy",
		"ports/proxy-no-authorization",
		"ports/proxy-websocket",
		"ports/unreachable-502",
		"ports/bad-port-400",
		"ports/unknown-sandbox-404",
		"ports/tunnel",
		"ports/preview",
		"ports/preview-expires",
		"ports/preview-ttl-400",
		"net/default-none", "net/policy-roundtrip", "net/policy-invalid-400", "net/policy-bounds-400", "net/none-reaches-nothing",
		"net/backend-unreachable", "net/metadata-unreachable", "net/allowlist", "net/change-running",
		"metrics/scrape", "sandbox/usage",
	}
	var got []string
	for _, c := range conformance.Checks() {
		got = append(got, c.ID)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("check ids changed:\n got %q\nwant %q", got, want)
	}
}

// extraCheck returns a valid third-party check that counts its runs.
func extraCheck(id string, runs *atomic.Int32) conformance.Check {
	return conformance.Check{
		ID: id, Level: conformance.LevelMinimum, Requirement: conformance.Should,
		Operations: []string{"healthz"}, Extensions: []string{"acme.health"},
		Spec: "GET /healthz answers", Anchor: "https://acme.example/rules#health",
		Run: func(ctx context.Context, env *conformance.Env) error {
			runs.Add(1)
			x, err := env.Raw(ctx, "GET", "/healthz", "", nil, false)
			if err != nil {
				return err
			}
			if x.Status != 200 {
				return errors.New("healthz not 200\n" + x.String())
			}
			return nil
		},
	}
}

func TestExtraChecksRunInRunSuite(t *testing.T) {
	t.Parallel()
	srv := reference{}.serve(t)
	var runs atomic.Int32
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Run = "^(acme/|health/)"
	cfg.ExtraChecks = []conformance.Check{extraCheck("acme/health", &runs)}
	rep, err := conformance.RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[1].ID != "acme/health" || rep.Results[1].Status != conformance.StatusPass || !rep.OK() {
		t.Errorf("results %+v, want health/ok then a passing acme/health", rep.Results)
	}
	if r := rep.Results[1]; r.Requirement != conformance.Should || r.Anchor != "https://acme.example/rules#health" ||
		strings.Join(r.Operations, ",") != "healthz" || strings.Join(r.Extensions, ",") != "acme.health" {
		t.Errorf("result does not carry the check's metadata: %+v", r)
	}
	if runs.Load() != 1 {
		t.Errorf("extra check ran %d times, want 1", runs.Load())
	}
}

func TestExtraChecksRunInConformancetest(t *testing.T) {
	t.Parallel()
	srv := reference{}.serve(t)
	var runs atomic.Int32
	cfg := conformance.NewConfig()
	cfg.BaseURL = srv.URL
	cfg.Run = "^acme/"
	cfg.ExtraChecks = []conformance.Check{extraCheck("acme/health", &runs)}
	t.Run("suite", func(t *testing.T) { conformancetest.Run(t, cfg) })
	if runs.Load() != 1 {
		t.Errorf("extra check ran %d times under conformancetest, want 1", runs.Load())
	}
}

func TestInvalidExtraChecks(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	valid := extraCheck("acme/health", &runs)
	for _, tt := range []struct {
		name  string
		edit  func(c *conformance.Check)
		extra int // a second copy of the check
		want  string
	}{
		{"duplicate of a suite check", func(c *conformance.Check) { c.ID = "health/ok" }, 0, `check "health/ok": duplicate id`},
		{"duplicate extra check", func(c *conformance.Check) {}, 1, `check "acme/health": duplicate id`},
		{"id without area", func(c *conformance.Check) { c.ID = "health" }, 0, "id must be area/name"},
		{"no requirement", func(c *conformance.Check) { c.Requirement = "" }, 0, "want MUST or SHOULD"},
		{"unknown operation", func(c *conformance.Check) { c.Operations = []string{"execInSandbx"} }, 0, `operation "execInSandbx" is not in the contract`},
		{"covers nothing", func(c *conformance.Check) { c.Operations, c.Extensions = nil, nil }, 0, "names no operation and no extension"},
		{"no anchor", func(c *conformance.Check) { c.Anchor = "" }, 0, "Anchor are required"},
		{"extension without capability", func(c *conformance.Check) { c.Level = conformance.LevelExtension }, 0, "needs a capability"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tt.edit(&c)
			cfg := conformance.NewConfig()
			cfg.BaseURL = "http://127.0.0.1:1"
			cfg.ExtraChecks = []conformance.Check{c}
			for range tt.extra {
				cfg.ExtraChecks = append(cfg.ExtraChecks, c)
			}
			_, err := conformance.RunSuite(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, conformance.ErrSuite) {
				t.Errorf("RunSuite: %v, want an ErrSuite error containing %q", err, tt.want)
			}
			if _, err := conformance.NewSession(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSession: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if runs.Load() != 0 {
		t.Error("an invalid configuration ran a check")
	}
}
