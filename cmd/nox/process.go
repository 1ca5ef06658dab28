package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/noxrunner/nox/sdk"
)

// localProcessesHint explains why nox start refuses --local-inprocess.
const localProcessesHint = "with --local-inprocess the backend runs inside this nox command, so a started process " +
	"would end when it returns: use --local (the local daemon keeps it running), or run the local backend " +
	"with `nox serve` and use --base-url, or run the command in the foreground with nox exec"

func (a *app) startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start a process in a sandbox that outlives nox; prints its id",
		ArgsUsage: "ID [--] CMD [ARGS...]",
		Description: `The process runs until it exits, is killed (nox kill), reaches --timeout
or the sandbox ends; nox returns at once and prints the process id (--json:
its record). Follow its output with nox logs -f, its end with nox wait, and
list processes with nox ps. Everything after the command name belongs to
the command: nox start demo python3 -m http.server 8000

--stdin keeps its standard input open (write to it with nox attach on a
--pty process); --pty runs it on a terminal of this terminal's size (24x80
when there is none), to attach to with nox attach.

With --local the process lives in the local daemon (see nox daemon), which
stays up while it runs. With --local-inprocess nox refuses: the process would
end with this nox command.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, DefaultText: backendDefault, Usage: "working directory in the sandbox"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable, KEY=VALUE (repeatable)"},
			durationFlag("cmd-timeout", []string{"timeout"}, 0, "none", "kill the process and what it started after this long"),
			&cli.StringFlag{Name: "tag", Usage: "a label, shown by nox ps and usable as its --tag filter"},
			&cli.BoolFlag{Name: "stdin", Usage: "keep the process's standard input open"},
			&cli.BoolFlag{Name: "pty", Aliases: []string{"tty", "t"}, Usage: "run the process on a terminal (attach with nox attach)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("start: want a sandbox ID and a command: nox start ID -- CMD [ARGS...]")
			}
			if readGlobals(c).inprocess {
				return errors.New("start: " + localProcessesHint)
			}
			env, err := parseEnv(c.StringSlice("env"))
			if err != nil {
				return err
			}
			timeout, err := cmdTimeout(c)
			if err != nil {
				return err
			}
			opts := sdk.StartOptions{Workdir: c.String("workdir"), Env: env, Timeout: timeout,
				Stdin: c.Bool("stdin"), Tag: c.String("tag")}
			if c.Bool("pty") {
				size := a.termSize()
				opts.PTY = &size
			}
			id, argv := c.Args().First(), c.Args().Slice()[1:]
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Start(c.Context, argv, opts)
				if err != nil {
					return onSandbox(id, fmt.Errorf("start %s: %w", cmdString(argv), err))
				}
				rec := p.Record()
				if readGlobals(c).json {
					return a.printJSON(aboutSandbox{id: id, v: rec})
				}
				a.printf("%s\n", p.ID())
				if !rec.Running() {
					fmt.Fprintf(a.stderr, "%s process %s ended at once: %s\n", a.errColor.yellow("nox:"), p.ID(), endText(rec))
				} else if isTerminal(a.stderr) {
					fmt.Fprintf(a.stderr, "%s follow it with: nox logs %s %s -f\n", a.errColor.dim("nox:"), id, p.ID())
				}
				return nil
			})
		},
	}
}

// termSize returns the size of nox's terminal (stdin's, else stdout's),
// or sdk.DefaultTermSize.
func (a *app) termSize() sdk.TermSize {
	for _, s := range []any{a.stdin, a.stdout} {
		if f, ok := s.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if cols, rows, err := term.GetSize(int(f.Fd())); err == nil && rows > 0 && cols > 0 {
				return sdk.TermSize{Rows: rows, Cols: cols}
			}
		}
	}
	return sdk.DefaultTermSize
}

func (a *app) psCommand() *cli.Command {
	return &cli.Command{
		Name:      "ps",
		Usage:     "list the processes of a sandbox (started with nox start), running and ended",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tag", Usage: "only the processes started with this tag"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				list, err := cn.client.Sandbox(id).Processes(c.Context, sdk.ProcessListOptions{Tag: c.String("tag")})
				if err != nil {
					return onSandbox(id, fmt.Errorf("listing processes: %w", err))
				}
				if readGlobals(c).json {
					return a.printJSON(list)
				}
				if len(list) == 0 {
					a.printf("no processes\n")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PROC\tSTATE\tTAG\tSTARTED\tOUTPUT\tCOMMAND")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.ID, stateText(p), orDash(p.Tag), timeOrDash(p.StartedAt),
						p.OutputBytes, truncateText(strings.Join(p.Cmd, " "), 60))
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("writing the list: %w", err)
				}
				return nil
			})
		},
	}
}

// stateText is a process's state for a table: running, lost, or how it
// exited.
func stateText(p sdk.ProcessInfo) string {
	if p.State != sdk.ProcessExited {
		return string(p.State)
	}
	return "exited " + fmt.Sprint(p.ExitCode)
}

// endText says how a process ended.
func endText(p sdk.ProcessInfo) string {
	switch {
	case p.State == sdk.ProcessLost:
		return "lost (the backend restarted while it ran; its end is unknown)"
	case p.State == sdk.ProcessRunning:
		return "still running"
	case p.TimedOut:
		return fmt.Sprintf("timed out and killed (exit %d)", p.ExitCode)
	case p.OOMKilled:
		return fmt.Sprintf("killed for exceeding the sandbox's memory limit (exit %d)", p.ExitCode)
	case p.Signal != "":
		return fmt.Sprintf("killed by SIG%s (exit %d)", p.Signal, p.ExitCode)
	case p.ExitCode == 127:
		return "exit 127 (command not found?)"
	case p.ExitCode == 126:
		return "exit 126 (not executable?)"
	}
	return fmt.Sprintf("exit %d", p.ExitCode)
}

// procArgs returns the sandbox and process ids of a command taking ID
// PROC.
func procArgs(c *cli.Context) (id, pid string, err error) {
	if c.NArg() != 2 {
		return "", "", usagef("%s: want a sandbox ID and a process id (see nox ps ID): nox %s ID PROC", c.Command.Name, c.Command.Name)
	}
	return c.Args().Get(0), c.Args().Get(1), nil
}

// onProcess wraps err as an operation on process pid of sandbox id.
func onProcess(id, pid string, err error) error {
	if err == nil {
		return nil
	}
	return onSandbox(id, fmt.Errorf("process %s: %w", pid, err))
}
