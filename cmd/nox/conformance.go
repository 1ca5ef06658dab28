package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/conformance"
)

func (a *app) conformanceCommand() *cli.Command {
	return &cli.Command{
		Name:  "conformance",
		Usage: "check a backend against the NoxRunner contract; exits 0 only when it conforms",
		Description: `Runs the conformance suite against --base-url (with --token), or with
--local against the local backend (its daemon; started in process with
--local-inprocess). Every sandbox the suite creates is named with a
random prefix and deleted afterwards.

Each check fails only on its own subject, and the report ends with a
deviation summary: each way the backend departs from the contract once,
with its MUST/SHOULD level, the clause, the checks it affected and a
one-line reproduction.

--profile selects the checks: core (NoxRunner v1: the minimum and
recommended checks), extended (core plus the extensions the backend
advertises; the default) or all (every check: an extension the backend
does not advertise counts as a skip). --level is the older selection:
minimum, recommended (= --profile core) or all (= --profile extended).
--certify makes a skip inside the profile a failure.`,
		Flags:  conformanceFlags(),
		Action: a.runConformance,
	}
}

// conformanceFlags are the flags of nox conformance.
func conformanceFlags() []cli.Flag {
	d := conformance.NewConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: "profile", Usage: "checks to run: " + strings.Join(conformance.Profiles(), ", ") + " (default extended)"},
		&cli.BoolFlag{Name: "certify", Usage: "certified run: every check of the profile runs, and a skip inside it fails the run"},
		&cli.StringFlag{Name: "level", Value: string(conformance.LevelAll), Usage: "levels to test: minimum, recommended (= --profile core) or all (= --profile extended)"},
		&cli.StringFlag{Name: "run", Usage: "only run checks whose id matches this regular expression"},
		&cli.StringFlag{Name: "format", Usage: "report format: " + strings.Join(conformance.Formats(), ", ") + " (default text, json with --json)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to FILE (a summary still goes to stdout)"},
		&cli.BoolFlag{Name: "skip-slow", Usage: "skip slow checks (TTL expiry, stream heartbeat)"},
		&cli.StringFlag{Name: "image", Usage: "image to create the suite's sandboxes with"},
		&cli.IntFlag{Name: "parallel", Value: d.Parallelism, Usage: "parallel-safe checks run at once"},
		&cli.DurationFlag{Name: "request-timeout", Value: d.RequestTimeout, Usage: "bound of each HTTP request"},
		&cli.DurationFlag{Name: "check-timeout", Value: d.CheckTimeout, Usage: "bound of each check, cleanup included"},
		&cli.DurationFlag{Name: "timeout-grace", Value: d.TimeoutGrace, Usage: "how long after its timeoutSeconds an exec may still answer, and its processes take to die"},
		&cli.DurationFlag{Name: "expiry-grace", Value: d.ExpiryGrace, Usage: "how long after expiresAt an idle sandbox may still exist"},
		&cli.DurationFlag{Name: "clock-skew", Value: d.ClockSkew, Usage: "tolerated difference between the backend's clock and this machine's"},
		&cli.StringFlag{Name: "id-prefix", Usage: "prefix of every session id the suite creates (default: nox-conf- and random characters)"},
		&cli.StringFlag{Name: "egress-target", Usage: "an http `URL` the backend's sandboxes can reach when a network policy allows its host (the network.egress checks net/allowlist and net/change-running need one)"},
	}
}

// runConformance is the action of nox conformance.
func (a *app) runConformance(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("conformance takes no arguments (use --base-url URL)")
	}
	g := readGlobals(c)
	cfg, err := conformanceConfig(c, g)
	if err != nil {
		return err
	}
	format := c.String("format")
	if format == "" {
		format = "text"
		if g.json {
			format = "json"
		}
	}
	if !slices.Contains(conformance.Formats(), format) {
		return usagef("conformance: --format %q: want one of %s", format, strings.Join(conformance.Formats(), ", "))
	}
	if g.verbose {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(a.stderr, format+"\n", args...) }
	}
	switch {
	case g.local && !g.inprocess:
		// The data dir's daemon, like every other --local command.
		if err := checkIsolation(g.isolation); err != nil {
			return err
		}
		hc, _, err := a.ensureDaemon(c.Context, g)
		if err != nil {
			if _, ok := errors.AsType[*restated](err); ok {
				return err
			}
			return fmt.Errorf("the local daemon (data dir %s): %w", g.dataDir, err)
		}
		cfg.BaseURL, cfg.HTTPClient = localBaseURL, hc
	case g.local:
		stop, err := a.serveLocalForSuite(c.Context, g, &cfg)
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, err := conformance.RunSuite(c.Context, cfg)
	if err != nil {
		return usageErr(fmt.Errorf("conformance: %w", err))
	}
	if err := a.writeReport(rep, format, c.String("output"), g.json); err != nil {
		return err
	}
	if !rep.OK() {
		return exitStatus(exitError)
	}
	return nil
}

// conformanceConfig builds the suite's configuration from the flags.
func conformanceConfig(c *cli.Context, g globals) (conformance.Config, error) {
	cfg := conformance.NewConfig()
	lvl, err := conformance.ParseLevel(c.String("level"))
	if err != nil {
		return cfg, usageErr(fmt.Errorf("conformance: --level: %w", err))
	}
	if c.IsSet("profile") {
		if c.IsSet("level") {
			return cfg, usagef("conformance: --profile and --level select the same thing; give one")
		}
		p, err := conformance.ParseProfile(c.String("profile"))
		if err != nil {
			return cfg, usageErr(fmt.Errorf("conformance: --profile: %w", err))
		}
		cfg.Profile = p
	}
	if c.Bool("certify") && (c.IsSet("run") || c.Bool("skip-slow")) {
		return cfg, usagef("conformance: --certify runs every check of the profile; drop --run and --skip-slow")
	}
	cfg.Certify = c.Bool("certify")
	cfg.BaseURL, cfg.Token, cfg.Level = g.baseURL, g.token, lvl
	cfg.Run, cfg.SkipSlow, cfg.Image = c.String("run"), c.Bool("skip-slow"), c.String("image")
	cfg.Parallelism = c.Int("parallel")
	cfg.RequestTimeout, cfg.CheckTimeout = c.Duration("request-timeout"), c.Duration("check-timeout")
	cfg.TimeoutGrace, cfg.ExpiryGrace, cfg.ClockSkew = c.Duration("timeout-grace"), c.Duration("expiry-grace"), c.Duration("clock-skew")
	cfg.IDPrefix = c.String("id-prefix")
	cfg.EgressTarget = c.String("egress-target")
	return cfg, nil
}

// writeReport writes the report to stdout or to the file output; with a
// file, the summary line goes to stdout.
func (a *app) writeReport(rep *conformance.Report, format, output string, asJSON bool) error {
	if output == "" || output == "-" {
		if err := rep.Write(a.stdout, format); err != nil {
			return fmt.Errorf("conformance: writing the report: %w", err)
		}
		return nil
	}
	f, err := os.Create(output)
	if err != nil {
		return fmt.Errorf("conformance: %w", err)
	}
	werr := rep.Write(f, format)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("conformance: writing %s: %w", output, werr)
	}
	if asJSON {
		failed := rep.Failed()
		if failed == nil {
			failed = []string{}
		}
		deviations := []string{}
		for _, d := range rep.Deviations {
			deviations = append(deviations, d.ID)
		}
		return a.printJSON(map[string]any{"ok": rep.OK(), "summary": rep.Summary(), "output": output, "failed": failed, "deviations": deviations})
	}
	if err := rep.WriteSummary(a.stdout); err != nil {
		return fmt.Errorf("conformance: %w", err)
	}
	a.printf("report written to %s\n", output)
	return nil
}

// serveLocalForSuite starts the local backend (--local) on a loopback port
// for the suite, which speaks HTTP, and points cfg at it.
func (a *app) serveLocalForSuite(ctx context.Context, g globals, cfg *conformance.Config) (func(), error) {
	b, err := a.openLocal(g)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("conformance: %w", err)
	}
	srv := &http.Server{Handler: b.Handler()}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(a.stderr, "nox: local backend server: %v\n", err)
		}
	}()
	cfg.BaseURL = "http://" + ln.Addr().String()
	return func() {
		_ = srv.Close()
		if err := b.Close(); err != nil {
			fmt.Fprintf(a.stderr, "nox: %v\n", err)
		}
	}, nil
}
