package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func (a *app) healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "check that the backend is up",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("health takes no arguments")
			}
			return a.withConn(c, func(cn *conn) error {
				if err := cn.client.Health(c.Context); err != nil {
					return fmt.Errorf("health check: %w", err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"ok": true, "backend": cn.target})
				}
				a.printf("%s %s is healthy\n", a.color.green("OK"), cn.target)
				return nil
			})
		},
	}
}
