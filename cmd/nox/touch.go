package main

import (
	"github.com/urfave/cli/v2"
)

func (a *app) touchCommand() *cli.Command {
	return &cli.Command{
		Name:      "touch",
		Usage:     "extend a sandbox's TTL",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				res, err := cn.client.Touch(c.Context, id)
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "expiresAt": jsonTime(res.ExpiresAt), "message": res.Message})
				}
				a.printf("%s sandbox %q%s\n", a.color.green("touched"), id, expiresSuffix(res.ExpiresAt))
				return nil
			})
		},
	}
}
