package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/internal/bench"
	"github.com/noxrunner/nox/internal/bench/chart"
	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/sdk"
)

// benchFormats are the report formats of nox bench.
var benchFormats = []string{"text", "json", "svg"}

func (a *app) benchCommand() *cli.Command {
	d := bench.NewConfig(nil)
	return &cli.Command{
		Name:  "bench",
		Usage: "measure a backend: sandbox creation, exec latency, streams, transfers, a concurrency sweep",
		Description: `Measures, with p50/p90/p99/mean and count: create (a new sandbox) and
delete, ensure (create of an existing sandbox), exec of true and of echo hi
on a warm sandbox, the time to the first stdout event of a streamed echo hi,
upload and download throughput of a generated tree (--files, --tree-size),
and a concurrency sweep: for each --concurrency level, that many sandboxes
each run --sweep-execs execs of true at once (execs/s, p50, p99).

With --local, or a --base-url on loopback (taken to be a nox serve on this
host), each command is also run with os/exec on this host, interleaved with
the calls ("bare"), and the sweep is repeated as plain parallel fork/exec:
ratio is p50 / bare p50, and for the sweep bare execs/s / execs/s.

Sandboxes are named with a random prefix (--id-prefix) and all deleted at
the end, also after Ctrl-C, unless --keep. A 502, 503 or 504 answer is
retried, after the answer's Retry-After or a backoff, and counted.

--format text prints aligned tables, json the report (its layout is
versioned by its "schema" field), svg a chart of the latency percentiles
and the sweep's throughput: to --output (PNG when FILE ends in .png, and
the text tables then go to stdout) or to stdout.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "iterations", Aliases: []string{"n"}, Value: d.Iterations, Usage: "calls of each ensure, exec and stream measurement"},
			&cli.IntFlag{Name: "create-iterations", Value: d.CreateIterations, Usage: "sandboxes the create measurement creates (and deletes)"},
			&cli.StringFlag{Name: "concurrency", Value: joinInts(d.Concurrency), Usage: "levels of the concurrency sweep, comma-separated"},
			&cli.IntFlag{Name: "sweep-execs", Value: d.SweepExecs, Usage: "execs each sandbox runs at each sweep level"},
			&cli.StringFlag{Name: "only", Usage: "run only these measurements, comma-separated: " + strings.Join(bench.Sections(), ", ")},
			&cli.IntFlag{Name: "files", Value: d.TreeFiles, Usage: "files of the generated tree"},
			&cli.StringFlag{Name: "tree-size", Value: quantity.FormatBytes(d.TreeBytes), Usage: "size of the generated tree's contents, e.g. 16Mi or 1Gi"},
			&cli.IntFlag{Name: "transfer-runs", Value: d.TransferRuns, Usage: "uploads and downloads of the tree each"},
			&cli.BoolFlag{Name: "keep", Usage: "do not delete the sandboxes made"},
			&cli.StringFlag{Name: "id-prefix", Usage: "prefix of every session id made (default: noxbench- and random characters)"},
			&cli.StringFlag{Name: "format", Usage: "report format: " + strings.Join(benchFormats, ", ") + " (default text, json with --json)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report (for svg: the chart, PNG for a .png FILE) to `FILE`"},
		},
		Action: a.runBench,
	}
}

// runBench is the action of nox bench.
func (a *app) runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("bench takes no arguments")
	}
	g := readGlobals(c)
	format := c.String("format")
	if format == "" {
		format = "text"
		if g.json {
			format = "json"
		}
	}
	if !slices.Contains(benchFormats, format) {
		return usagef("bench: --format %q: want one of %s", format, strings.Join(benchFormats, ", "))
	}
	cfg, err := benchConfig(c)
	if err != nil {
		return err
	}
	cfg.Progress = a.stderr
	// The bench retries and counts 503s itself.
	a.clientOpts = append(a.clientOpts, sdk.WithoutRetry())
	return a.withConn(c, func(cn *conn) error {
		cfg.Client = cn.client
		cfg.Target = cn.target
		cfg.Bare = bareReason(g)
		rep, err := bench.Run(c.Context, cfg)
		if err != nil {
			if rep != nil {
				for _, n := range rep.Notes {
					fmt.Fprintf(a.stderr, "nox: bench: %s\n", n)
				}
			}
			return fmt.Errorf("bench: %w", err)
		}
		return a.writeBench(rep, format, c.String("output"))
	})
}

// benchConfig builds the bench's configuration from the flags.
func benchConfig(c *cli.Context) (bench.Config, error) {
	cfg := bench.NewConfig(nil)
	cfg.Iterations = c.Int("iterations")
	cfg.CreateIterations = c.Int("create-iterations")
	cfg.SweepExecs = c.Int("sweep-execs")
	cfg.TreeFiles = c.Int("files")
	cfg.TransferRuns = c.Int("transfer-runs")
	cfg.Keep = c.Bool("keep")
	cfg.IDPrefix = c.String("id-prefix")
	for _, f := range []string{"iterations", "create-iterations", "sweep-execs", "files", "transfer-runs"} {
		if c.Int(f) < 1 {
			return cfg, usagef("bench: --%s %d: want 1 or more", f, c.Int(f))
		}
	}
	levels, err := parseInts(c.String("concurrency"))
	if err != nil {
		return cfg, usagef("bench: --concurrency %q: %v", c.String("concurrency"), err)
	}
	cfg.Concurrency = levels
	size, err := quantity.ParseBytes(strings.TrimSuffix(c.String("tree-size"), "B"))
	if err != nil || size < 1 {
		return cfg, usagef("bench: --tree-size %q: want a size such as 16Mi", c.String("tree-size"))
	}
	cfg.TreeBytes = size
	if only := c.String("only"); only != "" {
		cfg.Sections = nil
		for s := range strings.SplitSeq(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(bench.Sections(), s) {
				return cfg, usagef("bench: --only %q: want some of %s", s, strings.Join(bench.Sections(), ", "))
			}
			cfg.Sections = append(cfg.Sections, s)
		}
	}
	return cfg, nil
}

// bareReason says why the backend runs commands on this host, so that a
// bare os/exec is a fair comparison, or "" when it may not.
func bareReason(g globals) string {
	if g.local {
		return "--local"
	}
	u, err := url.Parse(g.baseURL)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return "--base-url on loopback " + host
	}
	return ""
}

// writeBench writes the report in format, to output when given.
func (a *app) writeBench(rep *bench.Report, format, output string) error {
	var b bytes.Buffer
	var err error
	switch format {
	case "json":
		err = indentJSON(&b, rep)
	case "svg":
		f := chart.SVG
		if output != "" {
			f = chart.FormatOf(output)
		}
		err = chart.Write(&b, rep, f)
	default:
		err = bench.WriteText(&b, rep)
	}
	if err != nil {
		return err
	}
	if output == "" {
		_, err := a.stdout.Write(b.Bytes())
		return err
	}
	if err := os.WriteFile(output, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench: writing the report: %w", err)
	}
	if format == "svg" {
		if err := bench.WriteText(a.stdout, rep); err != nil {
			return err
		}
		a.printf("chart written to %s\n", output)
	}
	return nil
}

// indentJSON writes v as indented JSON to b, as printJSON does.
func indentJSON(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// joinInts joins integers with commas.
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
