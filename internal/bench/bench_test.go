package bench_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/noxrunner/nox/internal/bench"
	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/sdk"
)

// setup serves the reference test backend and returns it and a client
// without retries, as nox bench makes one.
func setup(t *testing.T) (*testbackend.Backend, *sdk.Client) {
	t.Helper()
	b := testbackend.New(t, testbackend.Options{})
	c, err := sdk.New(testbackend.Serve(t, b), sdk.WithoutRetry())
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// tiny returns a Config that runs every section quickly.
func tiny(c *sdk.Client) bench.Config {
	cfg := bench.NewConfig(c)
	cfg.Iterations = 2
	cfg.CreateIterations = 2
	cfg.Concurrency = []int{1, 3}
	cfg.SweepExecs = 2
	cfg.TreeFiles = 3
	cfg.TreeBytes = 3000
	cfg.TransferRuns = 1
	cfg.Bare = "test"
	return cfg
}

// sandboxes lists the session ids on the backend.
func sandboxes(t *testing.T, c *sdk.Client) []string {
	t.Helper()
	var ids []string
	for s, err := range c.List(context.Background(), sdk.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.SessionID)
	}
	return ids
}

func TestRunAllSections(t *testing.T) {
	t.Parallel()
	_, c := setup(t)
	rep, err := bench.Run(t.Context(), tiny(c))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, op := range rep.Operations {
		names = append(names, op.Name)
		if op.Latency.Count == 0 {
			t.Errorf("%s: no samples", op.Name)
		}
		wantBare := strings.HasPrefix(op.Name, "exec") || strings.HasPrefix(op.Name, "stream")
		if (op.Bare != nil) != wantBare {
			t.Errorf("%s: bare = %v, want bare figures: %v", op.Name, op.Bare, wantBare)
		}
	}
	if want := []string{"create", "delete", "ensure", "exec true", "exec echo hi", "stream first byte"}; !slices.Equal(names, want) {
		t.Errorf("operations %q, want %q", names, want)
	}
	if len(rep.Transfers) != 2 || rep.Transfers[0].Name != "upload" || rep.Transfers[1].Name != "download" {
		t.Errorf("transfers %+v, want upload and download", rep.Transfers)
	}
	for _, tr := range rep.Transfers {
		if tr.Bytes != 3000 || tr.Files != 3 || tr.MBps <= 0 {
			t.Errorf("transfer %+v", tr)
		}
	}
	if len(rep.Sweep) != 2 {
		t.Fatalf("sweep %+v, want 2 levels", rep.Sweep)
	}
	for i, l := range rep.Sweep {
		if want := []int{1, 3}[i]; l.Concurrency != want || l.Sandboxes != want || l.Execs != 2*want || l.Bare == nil || l.Bare.Execs != 2*want {
			t.Errorf("level %d: %+v (bare %+v)", i, l, l.Bare)
		}
	}
	// 2 create, 1 main, 3 sweep sandboxes, all deleted.
	if rep.Sandboxes != 6 || rep.Deleted != 6 {
		t.Errorf("created %d, deleted %d; want 6 and 6", rep.Sandboxes, rep.Deleted)
	}
	if left := sandboxes(t, c); len(left) != 0 {
		t.Errorf("sandboxes left: %q", left)
	}
	if rep.Schema != bench.SchemaVersion || !strings.HasPrefix(rep.IDPrefix, "noxbench-") {
		t.Errorf("schema %d, prefix %q", rep.Schema, rep.IDPrefix)
	}
}

func TestRunOnlyAndKeep(t *testing.T) {
	t.Parallel()
	_, c := setup(t)
	cfg := tiny(c)
	cfg.Sections = []string{bench.SectionDownload}
	cfg.Keep = true
	cfg.Bare = ""
	cfg.IDPrefix = "kept"
	rep, err := bench.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Operations) != 0 || len(rep.Sweep) != 0 || len(rep.Transfers) != 1 || rep.Transfers[0].Name != "download" {
		t.Errorf("--only download ran %+v %+v %+v", rep.Operations, rep.Transfers, rep.Sweep)
	}
	if left := sandboxes(t, c); !slices.Equal(left, []string{"kept-main"}) {
		t.Errorf("sandboxes left: %q, want the kept main one", left)
	}
	if rep.Deleted != 0 || len(rep.Notes) == 0 {
		t.Errorf("deleted %d, notes %q", rep.Deleted, rep.Notes)
	}
}

// TestRunRetriesUnavailable answers the first create 503 with a
// Retry-After: the run waits, retries and counts the retry.
func TestRunRetriesUnavailable(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var refused atomic.Int32
	b.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && refused.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error": "busy"}`)
			return true
		}
		return false
	})
	cfg := tiny(c)
	cfg.Sections = []string{bench.SectionEnsure}
	rep, err := bench.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retries != 1 {
		t.Errorf("retries %d, want 1", rep.Retries)
	}
	if n := b.Count(http.MethodPut, "-main"); n != 2+cfg.Iterations {
		t.Errorf("%d creates of the main sandbox, want %d (refused, retried, then the ensures)", n, 2+cfg.Iterations)
	}
}

// TestRunCancelCleansUp cancels the run in the middle of the sweep:
// every sandbox it made is deleted all the same.
func TestRunCancelCleansUp(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var execs atomic.Int32
	b.SetHook(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/exec") && strings.Contains(r.URL.Path, "-s") && execs.Add(1) == 5 {
			cancel()
		}
		return false
	})
	cfg := tiny(c)
	cfg.Sections = []string{bench.SectionSweep}
	cfg.Concurrency = []int{4}
	cfg.SweepExecs = 50
	rep, err := bench.Run(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if left := sandboxes(t, c); len(left) != 0 {
		t.Errorf("sandboxes left after cancel: %q", left)
	}
	if rep == nil || rep.Sandboxes != 4 || rep.Deleted != 4 {
		t.Errorf("report %+v", rep)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	t.Parallel()
	_, c := setup(t)
	for _, tc := range []struct {
		name string
		edit func(*bench.Config)
	}{
		{"no client", func(cfg *bench.Config) { cfg.Client = nil }},
		{"unknown section", func(cfg *bench.Config) { cfg.Sections = []string{"nosuch"} }},
		{"zero concurrency", func(cfg *bench.Config) { cfg.Concurrency = []int{1, 0} }},
		{"negative iterations", func(cfg *bench.Config) { cfg.Iterations = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tiny(c)
			tc.edit(&cfg)
			if _, err := bench.Run(t.Context(), cfg); !errors.Is(err, bench.ErrInvalidConfig) {
				t.Errorf("Run = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
