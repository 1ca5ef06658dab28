package main

import (
	"github.com/urfave/cli/v2"
)

func (a *app) fsMkdirCommand() *cli.Command {
	return &cli.Command{
		Name:      "mkdir",
		Usage:     "create a directory in a sandbox (-p: with parents, an existing one is fine)",
		ArgsUsage: "ID PATH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "parents", Aliases: []string{"p"}, Usage: "create missing parents; no error when the directory exists"},
			modeFlag("permission bits of the new directories (default 0755)"),
		},
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "PATH")
			if err != nil {
				return err
			}
			mode, err := parseModeFlag(c)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				sb := cn.client.Sandbox(id)
				mkdir := sb.Mkdir
				if c.Bool("parents") {
					mkdir = sb.MkdirAll
				}
				fi, err := mkdir(c.Context, paths[0], mode)
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
