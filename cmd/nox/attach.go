package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "attach to the terminal of a process started with nox start --pty",
		ArgsUsage: "ID PROC",
		Description: `Shows the output the backend kept of process PROC's terminal (from offset
--from), then connects this terminal to it as ssh does: keys, Ctrl-C and
Ctrl-D go to the process, and the remote terminal follows this one's size.
Ctrl-] detaches and leaves the process running, as does a lost connection;
nox attach again to come back. When the process ends, nox exits with its
exit code. With a standard input that is not a terminal, its bytes are
typed and its end types Ctrl-D.`,
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "from", Usage: "offset of the first byte of output to replay (0: all the backend keeps)"},
		},
		Action: func(c *cli.Context) error {
			id, pid, err := procArgs(c)
			if err != nil {
				return err
			}
			if readGlobals(c).json {
				return usagef("attach is interactive; --json does not apply (use nox logs --json)")
			}
			if c.Int64("from") < 0 {
				return usagef("attach: --from %d: want an offset of 0 or more", c.Int64("from"))
			}
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Process(c.Context, pid)
				if err != nil {
					return onProcess(id, pid, err)
				}
				if !p.Record().PTY {
					return onProcess(id, pid, errors.New("it has no terminal (it was started without --pty): follow its output with nox logs -f"))
				}
				t, err := p.Attach(c.Context, c.Int64("from"))
				if err != nil {
					return onProcess(id, pid, fmt.Errorf("attach: %w", err))
				}
				if isTerminal(a.stdin) {
					fmt.Fprintf(a.stderr, "%s attached to process %s of sandbox %q; Ctrl-] detaches\r\n", a.errColor.dim("nox:"), pid, id)
				}
				rec, err := a.runTerminal(c.Context, t, true)
				return a.terminalEnded(id, pid, rec, err)
			})
		},
	}
}

// terminalEnded reports how a terminal session ended and returns nox's
// exit status for it: the process's exit code when it ended.
func (a *app) terminalEnded(id, pid string, rec sdk.ProcessInfo, err error) error {
	switch {
	case errors.Is(err, errDetached):
		fmt.Fprintf(a.stderr, "\r\n%s detached; process %s goes on (nox attach %s %s)\n", a.errColor.yellow("nox:"), pid, id, pid)
		return nil
	case errors.Is(err, sdk.ErrTerminalLost):
		return onProcess(id, pid, &restated{err: err, msg: fmt.Sprintf(
			"the connection to its terminal was lost; the process may go on (nox attach %s %s): %v", id, pid, err)})
	case err != nil:
		return onProcess(id, pid, err)
	}
	return a.ended(id, rec, false)
}
