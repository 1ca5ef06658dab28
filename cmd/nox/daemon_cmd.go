package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
)

func (a *app) daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "show or stop the local daemon behind --local",
		Description: `nox --local talks to a daemon of its own per data dir (--data-dir): nox serve
on the unix socket DATA-DIR/daemon/nox.sock, started on first use, logging to
DATA-DIR/daemon/daemon.log, exiting after NOX_DAEMON_IDLE_EXIT (default 10m)
with no request and no process running.`,
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "print the daemon's pid, socket, uptime and sandboxes (does not start one)",
				Action: a.daemonStatus,
			},
			{
				Name:   "stop",
				Usage:  "stop the daemon (its sandboxes' processes end; sandboxes and files stay)",
				Action: a.daemonStop,
			},
		},
	}
}

// probeDaemonOf checks that daemon subcommand verb has no arguments and
// asks the data dir's daemon for its status: errNoDaemon when none runs.
// The client is nil only when the data dir's files cannot be named.
func probeDaemonOf(c *cli.Context, verb string) (globals, daemonFiles, *http.Client, daemonStatus, error) {
	g := readGlobals(c)
	if c.NArg() > 0 {
		return g, daemonFiles{}, nil, daemonStatus{}, usagef("daemon %s takes no arguments", verb)
	}
	files, err := daemonFilesOf(g.dataDir)
	if err != nil {
		return g, files, nil, daemonStatus{}, err
	}
	hc := unixHTTPClient(files.socket)
	st, err := probeDaemon(c.Context, hc, false)
	return g, files, hc, st, err
}

// daemonStatus prints the status of the data dir's daemon, if one runs.
func (a *app) daemonStatus(c *cli.Context) error {
	g, files, hc, st, err := probeDaemonOf(c, "status")
	if hc != nil {
		defer hc.CloseIdleConnections()
	}
	if errors.Is(err, errNoDaemon) {
		if g.json {
			return a.printJSON(map[string]any{"running": false, "socket": files.socket})
		}
		a.printf("no daemon running (socket %s)\n", files.socket)
		return nil
	}
	if err != nil {
		return err
	}
	uptime := time.Since(st.Started).Round(time.Second)
	if g.json {
		return a.printJSON(map[string]any{"running": true, "pid": st.PID, "socket": st.Socket, "log": files.log,
			"version": st.Version, "dataDir": st.DataDir, "isolation": st.Isolation, "tier": st.Tier,
			"started": jsonTime(st.Started), "uptimeSeconds": int64(uptime.Seconds()), "idleExitSeconds": st.IdleExit,
			"sandboxes": st.Sandboxes, "runningProcesses": st.RunningProcesses, "activeRequests": st.ActiveRequests})
	}
	idle := "never"
	if st.IdleExit > 0 {
		idle = "after " + (time.Duration(st.IdleExit * float64(time.Second))).String() + " with no request and no process running"
	}
	a.printf("daemon running\n")
	a.printf("  pid        %d\n", st.PID)
	a.printf("  socket     %s\n", st.Socket)
	a.printf("  log        %s\n", files.log)
	a.printf("  version    %s\n", st.Version)
	a.printf("  data dir   %s\n", st.DataDir)
	a.printf("  isolation  %s (--isolation %s)\n", st.Tier, st.Isolation)
	a.printf("  uptime     %s\n", uptime)
	a.printf("  sandboxes  %d (%d processes running, %d requests in flight)\n", st.Sandboxes, st.RunningProcesses, st.ActiveRequests)
	a.printf("  idle exit  %s\n", idle)
	return nil
}

// daemonStop stops the data dir's daemon, if one runs, and waits until it
// has exited.
func (a *app) daemonStop(c *cli.Context) error {
	g, files, hc, st, err := probeDaemonOf(c, "stop")
	if hc != nil {
		defer hc.CloseIdleConnections()
	}
	if errors.Is(err, errNoDaemon) {
		if g.json {
			return a.printJSON(map[string]any{"stopped": false, "running": false})
		}
		a.printf("no daemon running (socket %s)\n", files.socket)
		return nil
	}
	if err != nil {
		return err
	}
	if err := stopDaemon(c.Context, hc, st); err != nil {
		return fmt.Errorf("daemon stop: %w", err)
	}
	if g.json {
		return a.printJSON(map[string]any{"stopped": true, "pid": st.PID})
	}
	a.printf("stopped the daemon (pid %d)\n", st.PID)
	return nil
}
