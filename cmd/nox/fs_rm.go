package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove a file, link or empty directory of a sandbox (-r: a whole tree)",
		ArgsUsage: "ID PATH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "remove a directory and everything below it"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "no error when the path does not exist"},
		},
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "PATH")
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				sb := cn.client.Sandbox(id)
				if c.Bool("recursive") {
					// RemoveAll forgives a missing path; rm -r does not.
					if !c.Bool("force") {
						if _, err := sb.Stat(c.Context, paths[0]); err != nil {
							return onSandbox(id, err)
						}
					}
					err = sb.RemoveAll(c.Context, paths[0])
				} else {
					err = sb.Remove(c.Context, paths[0])
				}
				if errors.Is(err, sdk.ErrNotFound) && c.Bool("force") && !errors.Is(err, sdk.ErrUnsupported) {
					err = nil
				}
				return onSandbox(id, err)
			})
		},
	}
}
