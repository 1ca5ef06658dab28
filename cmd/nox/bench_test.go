package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/bench"
	"github.com/noxrunner/nox/internal/testbackend"
)

// tinyBench are bench flags that make a run fast.
var tinyBench = []string{"bench", "-n", "2", "--create-iterations", "1", "--concurrency", "1,2", "--sweep-execs", "2",
	"--files", "2", "--tree-size", "2Ki", "--transfer-runs", "1"}

// The bench tests run nox in process, so not in parallel (see nox).
func TestBenchJSON(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	r := nox(t, "", append([]string{"--base-url", url, "--json"}, tinyBench...)...)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, r.stdout)
	}
	var ops []string
	for _, op := range rep.Operations {
		ops = append(ops, op.Name)
	}
	if want := []string{"create", "delete", "ensure", "exec true", "exec echo hi", "stream first byte"}; !slices.Equal(ops, want) {
		t.Errorf("operations %q, want %q", ops, want)
	}
	if len(rep.Transfers) != 2 || len(rep.Sweep) != 2 {
		t.Errorf("transfers %+v, sweep %+v", rep.Transfers, rep.Sweep)
	}
	// The test backend is on loopback: the bare comparisons ran.
	if !strings.HasPrefix(rep.Bare, "--base-url on loopback") || rep.Sweep[0].Bare == nil {
		t.Errorf("bare %q, sweep %+v", rep.Bare, rep.Sweep[0])
	}
	if rep.Sandboxes == 0 || rep.Deleted != rep.Sandboxes {
		t.Errorf("created %d, deleted %d", rep.Sandboxes, rep.Deleted)
	}
	for _, section := range []string{`"operations"`, `"transfers"`, `"sweep"`, `"settings"`, `"retries"`} {
		if !strings.Contains(r.stdout, section) {
			t.Errorf("JSON lacks %s", section)
		}
	}
}

func TestBenchTextAndChart(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{})
	dir := t.TempDir()
	for _, name := range []string{"bench.svg", "bench.png"} {
		out := filepath.Join(dir, name)
		r := nox(t, "", append([]string{"--base-url", url}, append(tinyBench, "--only", "exec,sweep", "--format", "svg", "-o", out)...)...)
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{"operation", "exec true", "concurrency", "chart written to " + out} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		magic := map[string][]string{".svg": {"<?xml", "<svg"}, ".png": {"\x89PNG"}}[filepath.Ext(name)]
		if !slices.ContainsFunc(magic, func(m string) bool { return bytes.HasPrefix(b, []byte(m)) }) {
			t.Errorf("%s starts %q", name, b[:min(len(b), 16)])
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "extra"}, "takes no arguments"},
		{[]string{"bench", "--format", "gif"}, "--format"},
		{[]string{"bench", "--only", "exec,nosuch"}, "--only"},
		{[]string{"bench", "--concurrency", "1,x"}, "--concurrency"},
		{[]string{"bench", "--concurrency", "0"}, "--concurrency"},
		{[]string{"bench", "--tree-size", "lots"}, "--tree-size"},
		{[]string{"bench", "-n", "0"}, "--iterations"},
	} {
		r := nox(t, "", append([]string{"--base-url", "http://127.0.0.1:1"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("nox %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, exitUsage, tc.want)
		}
	}
}
