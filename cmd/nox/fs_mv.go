package main

import (
	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsMvCommand() *cli.Command {
	return &cli.Command{
		Name:      "mv",
		Usage:     "move or rename a path of a sandbox, atomically",
		ArgsUsage: "ID SRC DST",
		Description: `An existing DST is an error unless --force replaces it (a file, or an empty
directory). A directory moves with everything below it.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing DST"},
		},
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "SRC", "DST")
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				fi, err := cn.client.Sandbox(id).RenameWith(c.Context, paths[0], paths[1], sdk.RenameOptions{Overwrite: c.Bool("force")})
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(toFileJSON(fi))
				}
				return nil
			})
		},
	}
}
