package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) lsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list the sandboxes",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("ls takes no arguments")
			}
			return a.withConn(c, func(cn *conn) error {
				if err := needExtension(c, cn, sdk.ExtSandboxesList, "ls"); err != nil {
					return err
				}
				all := []sdk.SandboxStatus{} // --json prints [] for none
				for s, err := range cn.client.List(c.Context, sdk.ListOptions{}) {
					if err != nil {
						return fmt.Errorf("listing sandboxes: %w", err)
					}
					all = append(all, s)
				}
				if readGlobals(c).json {
					return a.printJSON(all)
				}
				if len(all) == 0 {
					a.printf("no sandboxes\n")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SESSION\tSTATE\tIMAGE\tEXPIRES\tRUNNING")
				for _, s := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.SessionID, s.State, orDash(s.Image), timeOrDash(s.ExpiresAt), s.RunningExecs)
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("writing the list: %w", err)
				}
				return nil
			})
		},
	}
}
