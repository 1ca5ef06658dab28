package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// shutdownGrace bounds how long serve waits for requests in flight.
const shutdownGrace = 10 * time.Second

// The HTTP server's own timeouts (see serve).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

func serveFlags() []cli.Flag {
	d := localbackend.DefaultConfig()
	return append([]cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "address to listen on (HOST:PORT; port 0 picks a free one)"},
		&cli.StringFlag{Name: "data-dir", Usage: "data directory (default: the global --data-dir, " + localbackend.DefaultDataDir() + ")"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"NOX_TOKEN"}, Usage: "require this bearer token on /v1/ requests (required off loopback; the global --token counts too)"},
		&cli.StringFlag{Name: "isolation", Value: localbackend.IsolationAuto,
			Usage: "isolation tier: auto, namespaces, root-namespaces, landlock, none-unsafe (no isolation: trusted code only)"},
		&cli.StringFlag{Name: "uid-registry", Value: d.UIDRegistry, Usage: "host-wide file assigning each root server's data dir its own range of sandbox uids (shared by every server of the host)"},
		&cli.StringSliceFlag{Name: "image", Usage: "make image NAME a root filesystem DIR, NAME=DIR (repeatable)"},
		&cli.StringFlag{Name: "default-image", Usage: "image of a create without one (default: " + localbackend.DefaultImage + ")"},
		&cli.DurationFlag{Name: "default-ttl", Value: d.DefaultTTL, Category: "limits", Usage: "TTL of a create without one"},
		&cli.DurationFlag{Name: "max-ttl", Value: d.MaxTTL, Category: "limits", Usage: "largest TTL accepted"},
		&cli.DurationFlag{Name: "default-exec-timeout", Value: d.DefaultExecTimeout, Category: "limits", Usage: "timeout of an exec without one"},
		&cli.DurationFlag{Name: "max-exec-timeout", Value: d.MaxExecTimeout, Category: "limits", Usage: "largest exec timeout accepted"},
		&cli.Int64Flag{Name: "max-output-bytes", Value: d.MaxOutputBytes, Category: "limits", Usage: "cap on stdout and stderr of one command, each"},
		&cli.Int64Flag{Name: "max-upload-bytes", Value: d.MaxUploadBytes, Category: "limits", Usage: "largest upload body"},
		&cli.Int64Flag{Name: "max-upload-entries", Value: d.MaxUploadEntries, Category: "limits", Usage: "most entries in one upload archive"},
		&cli.Int64Flag{Name: "max-download-bytes", Value: d.MaxDownloadBytes, Category: "limits", Usage: "most bytes of file contents in one download (sparse files at full size)"},
		&cli.Int64Flag{Name: "max-download-entries", Value: d.MaxDownloadEntries, Category: "limits", Usage: "most entries in one download archive"},
		&cli.Int64Flag{Name: "max-json-body-bytes", Value: d.MaxJSONBodyBytes, Category: "limits", Usage: "largest JSON request body"},
		&cli.IntFlag{Name: "max-concurrent-execs", Value: d.MaxConcurrentExecs, Category: "limits", Usage: "commands running at once in the server"},
		&cli.IntFlag{Name: "max-concurrent-execs-per-sandbox", Value: d.MaxConcurrentExecsPerSandbox, Category: "limits", Usage: "commands running at once in one sandbox (fair share of --max-concurrent-execs)"},
		&cli.DurationFlag{Name: "exec-queue-wait", Value: d.ExecQueueWait, Category: "limits", Usage: "how long an exec waits for a slot before 503"},
		&cli.StringFlag{Name: "default-cpu", Value: d.DefaultCPU, Category: "limits", Usage: "CPU limit of a create without one"},
		&cli.StringFlag{Name: "default-memory", Value: d.DefaultMemory, Category: "limits", Usage: "memory limit of a create without one"},
		&cli.StringFlag{Name: "default-storage", Value: d.DefaultStorage, Category: "limits", Usage: "storage limit of a create without one"},
		&cli.StringFlag{Name: "max-cpu", Value: d.MaxCPU, Category: "limits", Usage: "largest CPU limit accepted"},
		&cli.StringFlag{Name: "max-memory", Value: d.MaxMemory, Category: "limits", Usage: "largest memory limit accepted"},
		&cli.StringFlag{Name: "min-cpu", Value: d.MinCPU, Category: "limits", Usage: "smallest CPU limit accepted (at least 10m, the kernel's smallest quota)"},
		&cli.StringFlag{Name: "min-memory", Value: d.MinMemory, Category: "limits", Usage: "smallest memory limit accepted (at least 1Mi)"},
		&cli.StringFlag{Name: "max-storage", Value: d.MaxStorage, Category: "limits", Usage: "largest storage limit accepted"},
		&cli.Int64Flag{Name: "pids", Value: d.Pids, Category: "limits", Usage: "process limit of every sandbox"},
		&cli.Int64Flag{Name: "open-files", Value: d.OpenFiles, Category: "limits", Usage: "open-file limit (RLIMIT_NOFILE) of every sandbox process"},
		&cli.Int64Flag{Name: "host-pids-budget", Value: d.HostPidsBudget, Category: "limits", Usage: "bound on the sum of the process limits of running sandboxes (default: half the host's pid_max/threads-max; -1: none)"},
		&cli.Int64Flag{Name: "host-open-files-budget", Value: d.HostOpenFilesBudget, Category: "limits", Usage: "bound on running sandboxes times --open-files (default: half the host's fs.file-max; -1: none)"},
		&cli.DurationFlag{Name: "stream-heartbeat", Value: d.StreamHeartbeat, Category: "limits", Usage: "longest silence on an exec stream"},
		&cli.DurationFlag{Name: "stall-timeout", Value: d.StallTimeout, Category: "limits", Usage: "cut a client that reads nothing of a response (or sends nothing of an upload) this long"},
		&cli.DurationFlag{Name: "start-timeout", Value: d.StartTimeout, Category: "limits", Usage: "bound on building one sandbox's environment"},
		&cli.IntFlag{Name: "max-list-page-size", Value: d.MaxListPageSize, Category: "limits", Usage: "most entries of one page of a files API listing"},
		&cli.IntFlag{Name: "max-watches-per-sandbox", Value: d.MaxWatchesPerSandbox, Category: "limits", Usage: "file watches open at once on one sandbox (503 beyond)"},
		&cli.IntFlag{Name: "max-watch-dirs", Value: d.MaxWatchDirs, Category: "limits", Usage: "directories one recursive file watch covers"},
		&cli.Int64Flag{Name: "host-watches-budget", Value: d.HostWatchesBudget, Category: "limits", Usage: "file watches open at once in the server (default: half the host's fs.inotify.max_user_instances; -1: none)"},
		&cli.Int64Flag{Name: "host-watch-dirs-budget", Value: d.HostWatchDirsBudget, Category: "limits", Usage: "directories all file watches cover together (default: half the host's fs.inotify.max_user_watches; -1: none)"},
		&cli.IntFlag{Name: "max-processes-per-sandbox", Value: d.MaxProcessesPerSandbox, Category: "limits", Usage: "processes (nox start) running at once in one sandbox (503 beyond)"},
		&cli.IntFlag{Name: "max-process-records", Value: d.MaxProcessRecords, Category: "limits", Usage: "process records kept per sandbox (the oldest ended ones are forgotten first)"},
		&cli.Int64Flag{Name: "process-output-bytes", Value: d.ProcessOutputBytes, Category: "limits", Usage: "output kept per process for replay (older output is dropped)"},
		&cli.DurationFlag{Name: "max-process-wait", Value: d.MaxProcessWait, Category: "limits", Usage: "longest wait of one process wait request"},
		&cli.Int64Flag{Name: "max-stdin-bytes", Value: d.MaxStdinBytes, Category: "limits", Usage: "largest stdin of one exec request"},
		&cli.DurationFlag{Name: "max-preview-ttl", Value: d.MaxPreviewTTL, Category: "limits", Usage: "longest lifetime of a preview URL (ports extension)"},
		&cli.StringFlag{Name: "port-domain", Usage: "serve {port}-{id}.`DOMAIN` as that port of that sandbox, at / (host-based routing; needs a wildcard DNS record to this server)"},
		&cli.IntFlag{Name: "max-watch-queue", Value: d.MaxWatchQueue, Category: "limits", Usage: "events one file watch holds for a slow client before an overflow event"},
		&cli.StringFlag{Name: "storage-enforcement", Value: d.StorageEnforcement, Category: "limits", Usage: "how ephemeralStorage is enforced: auto (a per-sandbox ext4 image where root and loop devices allow, else monitoring) or monitor"},
		&cli.StringSliceFlag{Name: "egress-modes", Value: cli.NewStringSlice(d.EgressModes...), Category: "network egress", Usage: "egress modes sandbox policies may use, among none, allowlist, open (must include none)"},
		&cli.IntFlag{Name: "max-egress-rules", Value: d.MaxEgressRules, Category: "network egress", Usage: "most entries of a policy's allow and deny lists together"},
		&cli.IntFlag{Name: "max-egress-connections", Value: d.MaxEgressConnections, Category: "network egress", Usage: "outbound connections one sandbox holds open at once"},
		&cli.StringSliceFlag{Name: "egress-open", Category: "network egress", Usage: "CIDR ranges otherwise never reachable (loopback, private, link-local, metadata, this host's addresses) that policies may allow (comma-separated, repeatable)"},
		&cli.StringSliceFlag{Name: "egress-permit", Category: "network egress", Usage: "bound what policies may allow to these names, *. wildcards and CIDR ranges; refuses mode open (comma-separated, repeatable)"},
		&cli.StringFlag{Name: "egress-netns", Category: "network egress", Usage: "network namespace (/run/netns/NAME) from which sandboxes' outbound connections and lookups leave (default: the server's)"},
		&cli.StringFlag{Name: "egress-resolver", Category: "network egress", Usage: "DNS server (IP:PORT) that resolves the names sandboxes look up (default: the system's)"},
	}, daemonServeFlags()...)
}

func (a *app) serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the nox local backend over HTTP",
		Description: `Runs isolated sandboxes on this machine and serves the NoxRunner API.
State lives in --data-dir; sandboxes survive a restart
(stopped, rebuilt on next use). A listen address off loopback needs --token.
SIGINT or SIGTERM shut it down gracefully. Logs go to stderr.`,
		Flags: serveFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("serve takes no arguments (did you mean --listen %s?)", c.Args().First())
			}
			cfg, err := a.serveConfig(c)
			if err != nil {
				return err
			}
			if socket := c.String("socket"); socket != "" {
				return a.serveDaemon(c.Context, cfg, socket, durationOf(c, "idle-exit"))
			}
			return a.serve(c.Context, c.String("listen"), cfg, readGlobals(c).json)
		},
	}
}

// serveConfig builds the backend's Config from the flags.
func (a *app) serveConfig(c *cli.Context) (localbackend.Config, error) {
	g := readGlobals(c)
	cfg := localbackend.DefaultConfig()
	cfg.DataDir = c.String("data-dir")
	cfg.Isolation = c.String("isolation")
	cfg.UIDRegistry = c.String("uid-registry")
	cfg.Token = c.String("token")
	// The global --token and --isolation (nox --token T serve) count too.
	if parent := c.Lineage()[1]; parent != nil {
		if cfg.DataDir == "" {
			cfg.DataDir = parent.String("data-dir")
		}
		if cfg.Token == "" {
			cfg.Token = parent.String("token")
		}
		if !c.IsSet("isolation") {
			cfg.Isolation = parent.String("isolation")
		}
	}
	cfg.Version = version
	images := maps.Clone(cfg.Images)
	if images == nil {
		images = map[string]string{}
	}
	for _, spec := range c.StringSlice("image") {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || name == "" || dir == "" {
			return cfg, usagef("serve: --image %q: want NAME=DIR", spec)
		}
		images[name] = dir
	}
	cfg.Images = images
	cfg.DefaultImageName = c.String("default-image")
	cfg.DefaultTTL, cfg.MaxTTL = c.Duration("default-ttl"), c.Duration("max-ttl")
	cfg.DefaultExecTimeout, cfg.MaxExecTimeout = c.Duration("default-exec-timeout"), c.Duration("max-exec-timeout")
	cfg.MaxOutputBytes, cfg.MaxUploadBytes = c.Int64("max-output-bytes"), c.Int64("max-upload-bytes")
	cfg.MaxUploadEntries, cfg.MaxJSONBodyBytes = c.Int64("max-upload-entries"), c.Int64("max-json-body-bytes")
	cfg.MaxDownloadBytes, cfg.MaxDownloadEntries = c.Int64("max-download-bytes"), c.Int64("max-download-entries")
	cfg.MaxConcurrentExecs, cfg.ExecQueueWait = c.Int("max-concurrent-execs"), c.Duration("exec-queue-wait")
	cfg.MaxConcurrentExecsPerSandbox = c.Int("max-concurrent-execs-per-sandbox")
	if !c.IsSet("max-concurrent-execs-per-sandbox") {
		cfg.MaxConcurrentExecsPerSandbox = 0 // the default share of --max-concurrent-execs
	}
	cfg.DefaultCPU, cfg.DefaultMemory, cfg.DefaultStorage = c.String("default-cpu"), c.String("default-memory"), c.String("default-storage")
	cfg.MaxCPU, cfg.MaxMemory, cfg.MaxStorage = c.String("max-cpu"), c.String("max-memory"), c.String("max-storage")
	cfg.MinCPU, cfg.MinMemory = c.String("min-cpu"), c.String("min-memory")
	cfg.Pids, cfg.OpenFiles = c.Int64("pids"), c.Int64("open-files")
	cfg.HostPidsBudget, cfg.HostOpenFilesBudget = c.Int64("host-pids-budget"), c.Int64("host-open-files-budget")
	cfg.StreamHeartbeat, cfg.StartTimeout = c.Duration("stream-heartbeat"), c.Duration("start-timeout")
	cfg.StallTimeout = c.Duration("stall-timeout")
	cfg.StorageEnforcement = c.String("storage-enforcement")
	cfg.MaxListPageSize, cfg.MaxWatchesPerSandbox = c.Int("max-list-page-size"), c.Int("max-watches-per-sandbox")
	cfg.MaxProcessesPerSandbox, cfg.MaxProcessRecords = c.Int("max-processes-per-sandbox"), c.Int("max-process-records")
	cfg.ProcessOutputBytes, cfg.MaxProcessWait = c.Int64("process-output-bytes"), c.Duration("max-process-wait")
	cfg.MaxStdinBytes = c.Int64("max-stdin-bytes")
	cfg.MaxPreviewTTL = c.Duration("max-preview-ttl")
	cfg.PortDomain = c.String("port-domain")
	cfg.MaxWatchDirs, cfg.MaxWatchQueue = c.Int("max-watch-dirs"), c.Int("max-watch-queue")
	cfg.HostWatchesBudget, cfg.HostWatchDirsBudget = c.Int64("host-watches-budget"), c.Int64("host-watch-dirs-budget")
	if err := egressConfig(c, &cfg); err != nil {
		return cfg, err
	}
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level})
	if g.json {
		h = slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level})
	}
	cfg.Logger = slog.New(h)
	if err := checkIsolation(cfg.Isolation); err != nil {
		return cfg, err
	}
	if err := checkListen(c.String("listen"), cfg.Token); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// egressConfig reads the network egress flags into cfg.
func egressConfig(c *cli.Context, cfg *localbackend.Config) error {
	cfg.EgressModes = listFlag(c, "egress-modes")
	cfg.MaxEgressRules, cfg.MaxEgressConnections = c.Int("max-egress-rules"), c.Int("max-egress-connections")
	for _, s := range listFlag(c, "egress-open") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return usagef("serve: --egress-open %q: want a CIDR range, e.g. 10.0.0.0/8", s)
		}
		cfg.EgressOpen = append(cfg.EgressOpen, p.Masked())
	}
	cfg.EgressPermit = listFlag(c, "egress-permit")
	cfg.EgressNetns, cfg.EgressResolver = c.String("egress-netns"), c.String("egress-resolver")
	if r := cfg.EgressResolver; r != "" {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return usagef("serve: --egress-resolver %q: want IP:PORT, e.g. 192.0.2.53:53", r)
		}
	}
	return nil
}

// checkListen refuses an address reachable from other machines unless a
// token protects it.
func checkListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("serve: --listen %q: want HOST:PORT, e.g. 127.0.0.1:8080", addr)
	}
	if token != "" || isLoopback(host) {
		return nil
	}
	shown := host
	if shown == "" {
		shown = "all interfaces"
	}
	return usagef("serve: refusing to listen on %s (%s) without a token: anyone who can reach it could run commands on this machine; "+
		"set --token or NOX_TOKEN, or listen on 127.0.0.1", addr, shown)
}

// isLoopback reports whether host names only the loopback interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// serve runs the backend on addr until ctx ends, then shuts down.
func (a *app) serve(ctx context.Context, addr string, cfg localbackend.Config, asJSON bool) error {
	b, err := localbackend.New(cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", localStartError(cfg.DataDir, err))
	}
	defer b.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Headers must arrive within readHeaderTimeout and an idle keep-alive
	// connection is closed after idleTimeout; bodies and responses are
	// bounded by progress (Config.StallTimeout), not in total, so that
	// long uploads, downloads and exec streams work.
	srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	if err := a.banner(asJSON, ln.Addr().String(), b.Info()); err != nil {
		_ = ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down", "cause", context.Cause(ctx).Error())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cfg.Logger.Warn("requests still running at shutdown were cut", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg.Logger.Info("stopped")
	return nil
}

// banner prints where the server listens and how it isolates sandboxes,
// as one JSON object with --json.
func (a *app) banner(asJSON bool, addr string, info localbackend.Info) error {
	if asJSON {
		err := a.printJSON(map[string]any{"listen": "http://" + addr, "dataDir": info.DataDir, "version": noxVersion(),
			"isolation":  sdk.Isolation{Tier: info.Tier, Isolated: info.Isolated, Notes: info.Notes},
			"unenforced": info.Unenforced, "images": info.Images, "authRequired": info.AuthRequired, "egressModes": info.EgressModes})
		if !info.Isolated {
			warnUnsafe(a.stderr, a.errColor)
		}
		return err
	}
	p := a.color
	w := a.stdout
	fmt.Fprintf(w, "%s %s\n", p.bold("nox serve"), noxVersion())
	fmt.Fprintf(w, "  listening on  http://%s\n", addr)
	fmt.Fprintf(w, "  data dir      %s\n", info.DataDir)
	tier := info.Tier
	if info.Isolated {
		tier = p.green(tier)
	} else {
		tier = p.red(tier + " (NOT ISOLATED)")
	}
	fmt.Fprintf(w, "  isolation     %s\n", tier)
	for _, n := range info.Notes {
		fmt.Fprintf(w, "                - %s\n", n)
	}
	if len(info.Unenforced) > 0 {
		fmt.Fprintf(w, "  unenforced    %s\n", strings.Join(info.Unenforced, ", "))
	}
	images := slices.Clone(info.Images)
	slices.Sort(images)
	fmt.Fprintf(w, "  images        %s\n", strings.Join(images, ", "))
	egress := "not offered (the isolation tier shares the host's network)"
	if info.EgressModes != nil {
		egress = "modes " + strings.Join(info.EgressModes, ", ")
	}
	fmt.Fprintf(w, "  egress        %s\n", egress)
	auth := "none (loopback only)"
	if info.AuthRequired {
		auth = "bearer token required on /v1/"
	}
	fmt.Fprintf(w, "  auth          %s\n", auth)
	if !info.Isolated {
		warnUnsafe(a.stderr, a.errColor)
	}
	return nil
}

// warnUnsafe prints the loud warning for running without isolation.
func warnUnsafe(w io.Writer, p painter) {
	line := strings.Repeat("!", 72)
	fmt.Fprintln(w, p.red(line))
	fmt.Fprintln(w, p.red("!! WARNING: isolation none-unsafe: sandboxed commands run directly on"))
	fmt.Fprintln(w, p.red("!! this host, as this user, and can read and change your files."))
	fmt.Fprintln(w, p.red("!! Run only code you trust."))
	fmt.Fprintln(w, p.red(line))
}
