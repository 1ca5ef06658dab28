package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// Exit codes of nox. exec, sh, shell, wait and attach also exit with the
// remote command's exit code.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitInterrupted is the exit code when SIGINT or SIGTERM stopped
	// the command, as shells report a command killed by SIGINT.
	exitInterrupted = 130
)

// defaultBaseURL is the backend used without --base-url: a local nox serve.
const defaultBaseURL = "http://127.0.0.1:8080"

// localBaseURL is the base URL the SDK uses with --local; requests never
// reach a network.
const localBaseURL = "http://nox-local.invalid"

const description = `nox talks to any NoxRunner sandbox backend (--base-url), or to the nox
local backend (--local), or serves it (nox serve).

With --local, nox talks to a per-user daemon (nox serve on the unix socket
DATA-DIR/daemon/nox.sock, mode 0600 in a 0700 directory: no token, the
socket's permissions are the boundary), started on first use and exiting
after 10 minutes with no request and no process running
(NOX_DAEMON_IDLE_EXIT). Sandboxes, their files and processes started with
nox start live on between nox commands. nox daemon status|stop shows or
stops it; a daemon of another nox version or --isolation is replaced.
--local-inprocess runs the backend inside the nox command instead (no
daemon; background processes end with the command, so nox start refuses it).

Flags may come before or after a command's arguments; everything after "--"
is an argument. Times are seconds (300) or a duration (90s, 5m, 1h30m):
--ttl, --cmd-timeout (kills the command; also --timeout after exec, sh,
shell and start) and --request-timeout (bounds each HTTP request).

Lines nox prints start with "nox:"; what a command in a sandbox prints is
passed through unchanged.

EXIT CODES:
   0    success
   1    API or I/O error (the backend refused, could not be reached, ...)
   2    usage error (unknown command or flag, missing argument)
   N    exec, sh, shell, wait and attach: the remote command's exit code
   130  interrupted (Ctrl-C or SIGTERM) before the command finished

ENVIRONMENT:
   NOXRUNNER_BASE_URL, NOXRUNNER_TOKEN, NOX_LOCAL, NOX_LOCAL_INPROCESS,
   NOX_DATA_DIR, NOX_ISOLATION, NOX_DEBUG, NO_COLOR (see the flags);
   NOX_TOKEN (nox serve); NOX_DAEMON_IDLE_EXIT (the --local daemon's idle
   exit, e.g. 30m; 0 never)`

// app holds one invocation's streams and the state its commands share.
// Nothing in it outlives run.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// jsonErrors is set once the global flags are read, so that errors are
	// reported as JSON with --json.
	jsonErrors bool
	// color (for stdout) and errColor (for stderr) are set once the
	// global flags are read.
	color, errColor painter
	// argLimits gives, per command name, the number of positional
	// arguments after which every argument is the command's own (exec).
	argLimits map[string]int
	// clientOpts are added to the client options connect uses (nox bench
	// turns the SDK's retries off to count its own).
	clientOpts []sdk.Option
}

// run is nox: it parses args (args[0] is the program name), runs the
// command with ctx and returns the process exit code. It never calls
// os.Exit, so tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, argLimits: map[string]int{"exec": 2, "start": 2}}
	if completingArgument(args) {
		return exitOK // the shell completes file names; nothing runs
	}
	cliApp := a.newCLI()
	err := cliApp.RunContext(ctx, a.normalizeArgs(cliApp, args))
	return a.report(ctx, err)
}

// globalFlags are the flags every command accepts.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "base-url", Value: defaultBaseURL, EnvVars: []string{"NOXRUNNER_BASE_URL"},
			Usage: "base URL of the NoxRunner backend"},
		&cli.BoolFlag{Name: "local", Aliases: []string{"local-test"}, EnvVars: []string{"NOX_LOCAL"},
			Usage: "run against the nox local backend: a per-user daemon on a unix socket in --data-dir, started on first use"},
		&cli.BoolFlag{Name: "local-inprocess", EnvVars: []string{"NOX_LOCAL_INPROCESS"},
			Usage: "like --local, but run the local backend inside this nox command (no daemon; nox start refuses it)"},
		&cli.StringFlag{Name: "data-dir", Value: localbackend.DefaultDataDir(), EnvVars: []string{"NOX_DATA_DIR"},
			Usage: "data directory of the local backend (--local and serve)"},
		&cli.StringFlag{Name: "isolation", Value: localbackend.IsolationAuto, EnvVars: []string{"NOX_ISOLATION"},
			Usage: "isolation tier with --local: auto, namespaces, root-namespaces, landlock, none-unsafe"},
		durationFlag("request-timeout", []string{"timeout"}, 2*time.Minute, "",
			"bound on each HTTP request to the backend (exec adds its command's timeout; upload and download bodies are not bounded); 0 for none"),
		&cli.StringFlag{Name: "token", EnvVars: []string{"NOXRUNNER_TOKEN"},
			Usage: "bearer token sent to the backend"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable JSON output"},
		&cli.BoolFlag{Name: "no-color", Usage: "no colours (also when NO_COLOR is set or output is not a terminal)"},
		&cli.BoolFlag{Name: "verbose", Usage: "log each request to stderr (with --local-inprocess: the backend's logs)"},
		&cli.BoolFlag{Name: "debug", EnvVars: []string{"NOX_DEBUG"},
			Usage: "print each request and answer to stderr: method, URL, status, headers that matter, bodies (truncated)"},
	}
}

// newCLI builds the urfave/cli application with the injected streams.
func (a *app) newCLI() *cli.App {
	return &cli.App{
		Name:                      "nox",
		Usage:                     "run commands in NoxRunner sandboxes",
		UsageText:                 "nox [global options] command [options] [arguments...]",
		Description:               description,
		Version:                   version,
		HideVersion:               true,
		Reader:                    a.stdin,
		Writer:                    a.stdout,
		ErrWriter:                 a.stderr,
		EnableBashCompletion:      true,
		DisableSliceFlagSeparator: true,
		Flags:                     globalFlags(),
		Before:                    a.before,
		Commands:                  a.commands(),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return parseErr("", err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run maps errors to exit codes
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

// commands lists nox's commands.
func (a *app) commands() []*cli.Command {
	cmds := []*cli.Command{
		a.healthCommand(),
		a.infoCommand(),
		a.createCommand(),
		a.getCommand(),
		a.lsCommand(),
		a.touchCommand(),
		a.deleteCommand(),
		a.execCommand(),
		a.shCommand(),
		a.shellCommand(),
		a.startCommand(),
		a.psCommand(),
		a.logsCommand(),
		a.waitCommand(),
		a.killCommand(),
		a.stdinCommand(),
		a.attachCommand(),
		a.portForwardCommand(),
		a.previewCommand(),
		a.networkCommand(),
		a.uploadCommand(),
		a.downloadCommand(),
		a.cpCommand(),
		a.fsCommand(),
		a.serveCommand(),
		a.daemonCommand(),
		a.conformanceCommand(),
		a.benchCommand(),
		a.completionCommand(),
		a.versionCommand(),
	}
	wrapCommands(cmds, "")
	return cmds
}

// wrapCommands gives every command (and subcommand, named after its
// parent, "fs ls") lenient durations and nox's usage errors.
func wrapCommands(cmds []*cli.Command, parent string) {
	for _, c := range cmds {
		name := c.Name
		if parent != "" {
			name = parent + " " + c.Name
		}
		c.HideHelpCommand = true // complete no "help" subcommand
		if len(c.Subcommands) > 0 {
			wrapCommands(c.Subcommands, name)
			continue
		}
		c.Flags = lenientDurations(c.Flags)
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return parseErr(name, err) }
		// Usage errors of the command's action point to its help.
		action := c.Action
		c.Action = func(ctx *cli.Context) error {
			err := action(ctx)
			if ue, ok := errors.AsType[*usageError](err); ok && ue.cmd == "" && !ue.global {
				ue.cmd = name
			}
			return err
		}
	}
}

// before reads the global output flags.
func (a *app) before(c *cli.Context) error {
	a.jsonErrors = c.Bool("json")
	a.color = newPainter(a.stdout, c.Bool("no-color"))
	a.errColor = newPainter(a.stderr, c.Bool("no-color"))
	return nil
}

// globals are the global flags as one value.
type globals struct {
	baseURL string
	local   bool
	// inprocess is set with --local-inprocess (which implies local).
	inprocess bool
	dataDir   string
	isolation string
	timeout   time.Duration
	token     string
	json      bool
	verbose   bool
	debug     bool
}

// readGlobals reads the global flags from any command's context.
func readGlobals(c *cli.Context) globals {
	return globals{
		baseURL:   c.String("base-url"),
		local:     c.Bool("local") || c.Bool("local-inprocess"),
		inprocess: c.Bool("local-inprocess"),
		dataDir:   c.String("data-dir"),
		isolation: c.String("isolation"),
		timeout:   durationOf(c, "request-timeout"),
		token:     c.String("token"),
		json:      c.Bool("json"),
		verbose:   c.Bool("verbose"),
		debug:     c.Bool("debug"),
	}
}

// conn is a client and what must be released after use.
type conn struct {
	client *sdk.Client
	// target names the backend in error messages.
	target string
	// backend is the in-process local backend with --local-inprocess,
	// else nil.
	backend *localbackend.Backend
	// hc is the HTTP client of the local daemon with --local, else nil.
	hc *http.Client
}

// Close releases the local backend or the daemon's connections, if any.
func (cn *conn) Close() error {
	if cn.hc != nil {
		cn.hc.CloseIdleConnections()
	}
	if cn.backend == nil {
		return nil
	}
	if err := cn.backend.Close(); err != nil {
		return fmt.Errorf("closing the local backend: %w", err)
	}
	return nil
}

// connect builds the client the global flags ask for. With --local it
// connects to the local daemon (starting it if needed), with
// --local-inprocess it starts the local backend in process; the caller
// must Close the conn.
func (a *app) connect(c *cli.Context) (*conn, error) {
	g := readGlobals(c)
	opts := []sdk.Option{sdk.WithUserAgent("nox/" + noxVersion() + " " + sdk.DefaultUserAgent)}
	// Transfers take as long as their size needs; Ctrl-C still stops them.
	transfer := c.Command != nil && slices.Contains([]string{"upload", "download", "cp", "cat", "write", "watch"}, c.Command.Name)
	if g.timeout > 0 && !transfer {
		opts = append(opts, sdk.WithTimeout(g.timeout))
	}
	if g.token != "" {
		opts = append(opts, sdk.WithToken(g.token))
	}
	if g.debug {
		opts = append(opts, sdk.WithDebug(a.stderr))
	}
	opts = append(opts, a.clientOpts...)
	if !g.local {
		if g.verbose {
			opts = append(opts, sdk.WithTransport(&logTransport{next: http.DefaultTransport, w: a.stderr}))
		}
		if !strings.Contains(g.baseURL, "://") {
			return nil, globalUsagef("--base-url %q has no scheme: did you mean %q?", g.baseURL, "http://"+g.baseURL)
		}
		cl, err := sdk.New(g.baseURL, opts...)
		if err != nil {
			return nil, globalUsagef("--base-url: %w", err)
		}
		return &conn{client: cl, target: g.baseURL}, nil
	}
	if !g.inprocess {
		return a.connectDaemon(c.Context, g, opts)
	}
	b, err := a.openLocal(g)
	if err != nil {
		return nil, err
	}
	cl, err := sdk.New(localBaseURL, append(opts, sdk.WithHandler(b.Handler()))...)
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("local backend client: %w", err)
	}
	return &conn{client: cl, target: "the local backend in " + g.dataDir, backend: b}, nil
}

// connectDaemon builds a client of the data dir's local daemon, starting
// it when none runs.
func (a *app) connectDaemon(ctx context.Context, g globals, opts []sdk.Option) (*conn, error) {
	if err := checkIsolation(g.isolation); err != nil {
		return nil, err
	}
	hc, st, err := a.ensureDaemon(ctx, g)
	if err != nil {
		if _, ok := errors.AsType[*restated](err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("the local daemon (data dir %s): %w", g.dataDir, err)
	}
	if !st.Isolated {
		fmt.Fprintf(a.stderr, "%s commands run on this host WITHOUT ISOLATION (--isolation %s): trusted code only\n",
			a.errColor.red("nox: WARNING:"), st.Tier)
	}
	if g.verbose {
		opts = append(opts, sdk.WithTransport(&logTransport{next: hc.Transport, w: a.stderr}))
	}
	cl, err := sdk.New(localBaseURL, append(opts, sdk.WithHTTPClient(hc))...)
	if err != nil {
		return nil, fmt.Errorf("local daemon client: %w", err)
	}
	return &conn{client: cl, target: "the local backend in " + g.dataDir, hc: hc}, nil
}

// checkIsolation returns a usage error for an unknown tier.
func checkIsolation(tier string) error {
	if !slices.Contains(localbackend.IsolationTiers(), tier) {
		return globalUsagef("--isolation %q: want one of %s", tier, strings.Join(localbackend.IsolationTiers(), ", "))
	}
	return nil
}

// openLocal starts the local backend for --local.
func (a *app) openLocal(g globals) (*localbackend.Backend, error) {
	if err := checkIsolation(g.isolation); err != nil {
		return nil, err
	}
	cfg := localbackend.DefaultConfig()
	cfg.DataDir = g.dataDir
	cfg.Isolation = g.isolation
	cfg.Token = g.token
	cfg.Version = version
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if g.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, nil))
	}
	b, err := localbackend.New(cfg)
	if err != nil {
		return nil, localStartError(g.dataDir, err)
	}
	if info := b.Info(); !info.Isolated {
		fmt.Fprintf(a.stderr, "%s commands run on this host WITHOUT ISOLATION (--isolation %s): trusted code only\n",
			a.errColor.red("nox: WARNING:"), info.Tier)
	}
	return b, nil
}

// localStartError says once why the local backend did not start in
// dataDir, and what to do when another process holds it.
func localStartError(dataDir string, err error) error {
	if errors.Is(err, localbackend.ErrDataDirLocked) {
		return &restated{err: err, msg: fmt.Sprintf("data dir %s is in use by another nox process (a nox serve, "+
			"the --local daemon: nox daemon stop, or nox --local-inprocess still running): talk to that nox serve "+
			"with --base-url, or pick another --data-dir", dataDir)}
	}
	return fmt.Errorf("starting the local backend (data dir %s): %w", dataDir, err)
}

// withConn runs f with a connected client and releases it afterwards.
func (a *app) withConn(c *cli.Context, f func(cn *conn) error) error {
	cn, err := a.connect(c)
	if err != nil {
		return err
	}
	err = f(cn)
	if cerr := cn.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return &targetError{target: cn.target, err: err}
	}
	return nil
}

// logTransport logs every request and its outcome (--verbose).
type logTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	w    io.Writer
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		fmt.Fprintf(t.w, "nox: %s %s: %v (%s)\n", req.Method, req.URL.Redacted(), err, time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	fmt.Fprintf(t.w, "nox: %s %s -> %d %s (%s)\n", req.Method, req.URL.Redacted(), resp.StatusCode,
		resp.Header.Get("X-Request-Id"), time.Since(start).Round(time.Millisecond))
	return resp, nil
}

// printJSON writes v as indented JSON to stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// printf writes to stdout; write errors show up on the next command anyway.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
