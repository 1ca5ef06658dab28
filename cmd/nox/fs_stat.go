package main

import (
	"github.com/noxrunner/nox/api"
	"github.com/urfave/cli/v2"
)

func (a *app) fsStatCommand() *cli.Command {
	return &cli.Command{
		Name:      "stat",
		Usage:     "describe a path of a sandbox (links are not followed)",
		ArgsUsage: "ID PATH",
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "PATH")
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				fi, err := cn.client.Sandbox(id).Stat(c.Context, paths[0])
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(toFileJSON(fi))
				}
				a.printf("path:     %s\n", fi.Path)
				a.printf("type:     %s\n", fi.Type)
				a.printf("size:     %d\n", fi.Size)
				a.printf("mode:     %s (%s)\n", api.FormatMode(fi.Mode), fi.FileMode())
				a.printf("modified: %s\n", timeOrDash(fi.ModTime))
				if fi.LinkTarget != "" {
					a.printf("target:   %s\n", fi.LinkTarget)
				}
				if fi.ETag != "" {
					a.printf("etag:     %s\n", fi.ETag)
				}
				return nil
			})
		},
	}
}
