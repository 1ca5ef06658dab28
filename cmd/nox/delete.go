package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "delete a sandbox and its files",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "ignore-missing", Usage: "succeed when the sandbox does not exist"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				err := cn.client.Delete(c.Context, id)
				missing := errors.Is(err, sdk.ErrNotFound)
				if err != nil && !(missing && c.Bool("ignore-missing")) {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "deleted": !missing})
				}
				if missing {
					a.printf("sandbox %q did not exist\n", id)
					return nil
				}
				a.printf("%s sandbox %q\n", a.color.green("deleted"), id)
				return nil
			})
		},
	}
}
