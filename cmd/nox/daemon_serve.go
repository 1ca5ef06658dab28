package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/localbackend"
)

// defaultIdleExit is how long the local daemon stays up with nothing to do.
const defaultIdleExit = 10 * time.Minute

// versionHeader carries the daemon's version on every answer.
const versionHeader = "X-Nox-Version"

// daemonPath is the daemon's own endpoint: GET for its status, DELETE to
// make it exit. It is served only on the unix socket, before the API.
const daemonPath = "/daemon"

// daemonServeFlags are serve's flags for running as the local daemon.
func daemonServeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "socket", Category: "local daemon",
			Usage: "listen on this unix socket (mode 0600) instead of --listen, with no token: whoever can open the socket can use the backend; " +
				"also serves GET and DELETE /daemon (status, exit). nox --local starts serve this way"},
		&cli.DurationFlag{Name: "idle-exit", Value: defaultIdleExit, EnvVars: []string{"NOX_DAEMON_IDLE_EXIT"}, Category: "local daemon",
			Usage: "with --socket: exit after this long with no request and no process or exec running; 0 never"},
	}
}

// daemonStatus is the daemon's answer to GET /daemon.
type daemonStatus struct {
	PID     int    `json:"pid"`
	Version string `json:"version"`
	Socket  string `json:"socket"`
	DataDir string `json:"dataDir"`
	// Isolation is the tier asked for (--isolation), Tier the one in use.
	Isolation string    `json:"isolation"`
	Tier      string    `json:"tier"`
	Isolated  bool      `json:"isolated"`
	Started   time.Time `json:"started"`
	// IdleExit is the --idle-exit duration in seconds (0: never).
	IdleExit         float64 `json:"idleExitSeconds"`
	Sandboxes        int     `json:"sandboxes"`
	RunningProcesses int     `json:"runningProcesses"`
	ActiveRequests   int64   `json:"activeRequests"`
}

// daemon is the state of nox serve --socket: the backend, and what the
// idle exit watches.
type daemon struct {
	b         *localbackend.Backend
	isolation string
	socket    string
	idle      time.Duration
	started   time.Time
	log       *slog.Logger
	// active counts API requests in flight; last is the Unix nanosecond
	// time of the last one's start or end.
	active atomic.Int64
	last   atomic.Int64
	// stop receives the reason to exit (DELETE /daemon).
	stop chan string
}

// serveDaemon serves the backend on the unix socket until ctx ends, a
// DELETE /daemon asks it to exit, it was idle for idle (0: never), or its
// socket file was removed or replaced.
func (a *app) serveDaemon(ctx context.Context, cfg localbackend.Config, socket string, idle time.Duration) error {
	b, err := localbackend.New(cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", localStartError(cfg.DataDir, err))
	}
	defer b.Close()
	ln, ino, err := listenUnix(socket)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	d := &daemon{b: b, isolation: cfg.Isolation, socket: socket, idle: idle, started: time.Now(), log: cfg.Logger, stop: make(chan string, 1)}
	d.last.Store(time.Now().UnixNano())
	srv := &http.Server{Handler: d, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	info := b.Info()
	cfg.Logger.Info("nox daemon listening", "socket", socket, "pid", os.Getpid(), "version", noxVersion(),
		"dataDir", info.DataDir, "tier", info.Tier, "idleExit", idle)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var cause string
	select {
	case err := <-errc:
		removeSocket(socket, ino)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		cause = context.Cause(ctx).Error()
	case cause = <-d.watch(ctx, ino):
	}
	cfg.Logger.Info("shutting down", "cause", cause)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cfg.Logger.Warn("requests still running at shutdown were cut", "err", err)
		_ = srv.Close()
	}
	removeSocket(socket, ino)
	if err := b.Close(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg.Logger.Info("stopped")
	return nil
}

// listenUnix listens on a unix socket at path with mode 0600, and returns
// the socket file's inode. The socket is bound under a temporary name,
// restricted, then renamed over path, so that it is never open to others;
// a socket already at path is replaced (the caller holds the data dir's
// lock, so it is a dead daemon's).
func listenUnix(path string) (net.Listener, uint64, error) {
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, 0, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = os.Stat(path)
	}
	if err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, 0, fmt.Errorf("socket: %w", err)
	}
	return ln, inode(fi), nil
}

// inode returns fi's inode number (0 when unknown).
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// socketIs reports whether the file at path is still the socket with
// inode ino.
func socketIs(path string, ino uint64) bool {
	fi, err := os.Stat(path)
	return err == nil && inode(fi) == ino
}

// removeSocket removes the socket file if it is still the one bound.
func removeSocket(path string, ino uint64) {
	if socketIs(path, ino) {
		_ = os.Remove(path)
	}
}

// ServeHTTP serves /daemon itself and passes everything else to the
// backend, counting requests for the idle exit. Every answer carries the
// daemon's version.
func (d *daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(versionHeader, noxVersion())
	if r.URL.Path == daemonPath {
		d.serveSelf(w, r)
		return
	}
	d.active.Add(1)
	d.last.Store(time.Now().UnixNano())
	defer func() {
		d.last.Store(time.Now().UnixNano())
		d.active.Add(-1)
	}()
	d.b.Handler().ServeHTTP(w, r)
}

// serveSelf answers GET /daemon (status; ?touch=1, the CLI's check before
// a command, counts as a request for the idle exit and skips counting
// sandboxes and processes) and DELETE /daemon (exit once requests in
// flight are done).
func (d *daemon) serveSelf(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet:
		touch := r.URL.Query().Get("touch") == "1"
		if touch {
			d.last.Store(time.Now().UnixNano())
		}
		_ = json.NewEncoder(w).Encode(d.status(r.Context(), !touch))
	case http.MethodDelete:
		select {
		case d.stop <- "asked to exit (DELETE /daemon)":
		default:
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"pid": os.Getpid(), "stopping": true})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "method " + r.Method + " not allowed on /daemon: GET or DELETE"})
	}
}

// status describes the daemon now; with count, its sandboxes and running
// processes too.
func (d *daemon) status(ctx context.Context, count bool) daemonStatus {
	info := d.b.Info()
	var n, running int
	if count {
		n, running = d.sandboxes(ctx)
	}
	return daemonStatus{
		PID: os.Getpid(), Version: noxVersion(), Socket: d.socket, DataDir: info.DataDir,
		Isolation: d.isolation, Tier: info.Tier, Isolated: info.Isolated, Started: d.started,
		IdleExit: d.idle.Seconds(), Sandboxes: n, RunningProcesses: running, ActiveRequests: d.active.Load(),
	}
}

// sandboxes counts the sandboxes and their running processes.
func (d *daemon) sandboxes(ctx context.Context) (n, running int) {
	drv := d.b.Driver()
	procs, _ := drv.(driver.Processes)
	after := ""
	for {
		page, more, err := drv.List(ctx, after, 100)
		if err != nil {
			return n, running
		}
		for _, sb := range page {
			n++
			if procs == nil {
				continue
			}
			list, _ := procs.ListProcesses(ctx, sb.ID)
			for _, p := range list {
				if p.State == driver.ProcessRunning {
					running++
				}
			}
		}
		if !more || len(page) == 0 {
			return n, running
		}
		after = page[len(page)-1].ID
	}
}

// watch returns a channel that receives why the daemon should exit: a
// DELETE /daemon, its socket file gone or replaced (nothing can reach it
// any more), or idle for d.idle with no request in flight and no process
// running.
func (d *daemon) watch(ctx context.Context, ino uint64) <-chan string {
	out := make(chan string, 1)
	tick := time.Second
	if d.idle > 0 {
		tick = min(max(d.idle/4, 50*time.Millisecond), tick)
	}
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case why := <-d.stop:
				out <- why
				return
			case <-t.C:
			}
			if !socketIs(d.socket, ino) {
				out <- "the socket file was removed or replaced"
				return
			}
			if d.idle <= 0 || d.active.Load() > 0 || time.Since(time.Unix(0, d.last.Load())) < d.idle {
				continue
			}
			if _, running := d.sandboxes(ctx); running > 0 {
				d.last.Store(time.Now().UnixNano()) // look again after another idle period
				continue
			}
			out <- fmt.Sprintf("idle for %s", d.idle)
			return
		}
	}()
	return out
}

// daemonFiles are the files of the local daemon of a data dir, in its
// own directory (mode 0700): the socket, the log and the start lock.
type daemonFiles struct {
	dir, socket, log, lock string
}

// daemonFilesOf returns the daemon's files for dataDir.
func daemonFilesOf(dataDir string) (daemonFiles, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return daemonFiles{}, fmt.Errorf("data dir: %w", err)
	}
	dir := filepath.Join(abs, "daemon")
	f := daemonFiles{dir: dir, socket: filepath.Join(dir, "nox.sock"), log: filepath.Join(dir, "daemon.log"),
		lock: filepath.Join(dir, "start.lock")}
	// sun_path holds 108 bytes with the terminating NUL; the temporary
	// name listenUnix binds first is longer by a pid.
	if len(f.socket)+12 > 107 {
		return f, errors.New("the daemon's socket path " + f.socket + " is too long for a unix socket: " +
			"use a shorter --data-dir, or --local-inprocess")
	}
	return f, nil
}
