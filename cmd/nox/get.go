package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "show a sandbox's state, timestamps, limits and usage",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				if err := needExtension(c, cn, sdk.ExtSandboxesGet, "get"); err != nil {
					return err
				}
				s, err := cn.client.Get(c.Context, id)
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(s)
				}
				a.printf("session:     %s\n", s.SessionID)
				a.printf("pod:         %s\n", s.PodName)
				a.printf("state:       %s\n", a.stateColor(s.State))
				a.printf("image:       %s\n", s.Image)
				a.printf("created:     %s\n", timeOrDash(s.CreatedAt))
				a.printf("last active: %s\n", timeOrDash(s.LastActiveAt))
				a.printf("expires:     %s (ttl %s)\n", timeOrDash(s.ExpiresAt), s.TTL)
				a.printf("limits:      cpu %s, memory %s, storage %s, pids %d\n",
					orDash(s.Limits.CPU), orDash(s.Limits.Memory), orDash(s.Limits.EphemeralStorage), s.Limits.PIDs)
				if len(s.Limits.Unenforced) > 0 {
					a.printf("unenforced:  %s\n", strings.Join(s.Limits.Unenforced, ", "))
				}
				a.printf("running:     %d command(s)\n", s.RunningExecs)
				if s.Network != nil {
					a.printf("network:     %s\n", policyLine(*s.Network))
				}
				if s.Usage != nil {
					a.printf("usage:       %s\n", usageLine(*s.Usage))
				}
				return nil
			})
		},
	}
}

func (a *app) stateColor(s sdk.SandboxState) string {
	switch s {
	case sdk.StateReady:
		return a.color.green(string(s))
	case sdk.StateTerminating:
		return a.color.red(string(s))
	}
	return a.color.yellow(string(s))
}
