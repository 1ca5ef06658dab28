package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a sandbox (or ensure it runs and refresh its TTL)",
		ArgsUsage: "ID",
		Flags: append([]cli.Flag{
			durationFlag("ttl", nil, 0, backendDefault, "inactivity after which the sandbox expires"),
			&cli.StringFlag{Name: "image", Usage: "environment image (default: the backend's)"},
			&cli.StringFlag{Name: "cpu", Usage: "CPU limit, e.g. 500m or 2"},
			&cli.StringFlag{Name: "mem", Aliases: []string{"memory"}, Usage: "memory limit, e.g. 1Gi"},
			&cli.StringFlag{Name: "storage", Usage: "ephemeral storage limit, e.g. 2Gi"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the sandbox runs commands"},
			durationFlag("wait-timeout", nil, 60*time.Second, "", "how long --wait waits"),
		}, policyFlags()...),
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			ttl := durationOf(c, "ttl")
			if ttl%time.Second != 0 {
				return usagef("create: --ttl %s: the API counts whole seconds", ttl)
			}
			network, err := policyOf(c, "create")
			if err != nil {
				return err
			}
			opts := sdk.CreateOptions{
				TTL:   ttl,
				Image: c.String("image"), CPU: c.String("cpu"), Memory: c.String("mem"), Storage: c.String("storage"),
				Network: network,
			}
			return a.withConn(c, func(cn *conn) error {
				sb := cn.client.Sandbox(id)
				res, err := sb.Create(c.Context, opts)
				if err != nil {
					return onSandbox(id, fmt.Errorf("create: %w", err))
				}
				if c.Bool("wait") {
					if err := sb.WaitReady(c.Context, sdk.WaitOptions{Timeout: durationOf(c, "wait-timeout")}); err != nil {
						return onSandbox(id, fmt.Errorf("waiting until ready: %w", err))
					}
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "podName": res.PodName,
						"expiresAt": jsonTime(res.ExpiresAt), "ready": c.Bool("wait")})
				}
				a.printf("%s sandbox %q (pod %s)%s\n", a.color.green("created"), id, res.PodName, expiresSuffix(res.ExpiresAt))
				return nil
			})
		},
	}
}
