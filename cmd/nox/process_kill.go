package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) killCommand() *cli.Command {
	return &cli.Command{
		Name:      "kill",
		Usage:     "kill a process and everything it started, or send it a signal",
		ArgsUsage: "ID PROC",
		Description: `Without --signal, kills process PROC (see nox ps ID) and every process it
started, waits until it has ended and prints how. With --signal, sends that
signal to the process's group (as a terminal does) and returns at once:
` + signalNames() + `, with or without SIG,
in any case, or as its number (15).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "send this signal instead of killing the tree, e.g. TERM, INT or 15"},
		},
		Action: func(c *cli.Context) error {
			id, pid, err := procArgs(c)
			if err != nil {
				return err
			}
			var sig sdk.Signal
			if c.IsSet("signal") {
				if sig, err = parseSignal(c.String("signal")); err != nil {
					return err
				}
			}
			asJSON := readGlobals(c).json
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Process(c.Context, pid)
				if err != nil {
					return onProcess(id, pid, err)
				}
				if sig != "" {
					if err := p.Signal(c.Context, sig); err != nil {
						return onProcess(id, pid, fmt.Errorf("signal %s: %w", sig, err))
					}
					if asJSON {
						return a.printJSON(aboutSandbox{id: id, v: p.Record()})
					}
					a.printf("sent SIG%s to process %s\n", sig, pid)
					return nil
				}
				rec, err := p.Kill(c.Context)
				if err != nil {
					return onProcess(id, pid, fmt.Errorf("kill: %w", err))
				}
				if asJSON {
					return a.printJSON(aboutSandbox{id: id, v: rec})
				}
				a.printf("%s process %s: %s\n", a.color.green("killed"), pid, endText(rec))
				return nil
			})
		},
	}
}

// signalNumbers are the Linux numbers of the signals a client may send
// (sandboxes run Linux).
var signalNumbers = map[sdk.Signal]int{
	sdk.SIGHUP: 1, sdk.SIGINT: 2, sdk.SIGQUIT: 3, sdk.SIGKILL: 9, sdk.SIGUSR1: 10, sdk.SIGUSR2: 12,
	sdk.SIGTERM: 15, sdk.SIGCONT: 18, sdk.SIGSTOP: 19, sdk.SIGWINCH: 28,
}

// parseSignal reads a signal as users write it: TERM, SIGTERM, term or
// 15.
func parseSignal(s string) (sdk.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(name); err == nil {
		for sig, num := range signalNumbers {
			if num == n {
				return sig, nil
			}
		}
		return "", usagef("kill: --signal %s: no such signal that nox can send; want one of %s", s, signalNames())
	}
	sig := sdk.Signal(strings.TrimPrefix(name, "SIG"))
	if !slices.Contains(sdk.Signals(), sig) {
		return "", usagef("kill: --signal %q: want one of %s", s, signalNames())
	}
	return sig, nil
}

// signalNames lists the signals a client may send, with their numbers.
func signalNames() string {
	var names []string
	for _, sig := range sdk.Signals() {
		names = append(names, fmt.Sprintf("%s (%d)", sig, signalNumbers[sig]))
	}
	return strings.Join(names, ", ")
}
