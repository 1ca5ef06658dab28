package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
)

// localPreviewHint explains why nox preview refuses --local.
const localPreviewHint = "with --local the backend listens only on a unix socket (or runs inside this nox " +
	"command), so no browser could open the URL: run the local backend with `nox serve` and use --base-url " +
	"(or NOXRUNNER_BASE_URL), or use nox port-forward, which runs in the foreground"

func (a *app) previewCommand() *cli.Command {
	return &cli.Command{
		Name:      "preview",
		Usage:     "print a signed URL of a port inside a sandbox, for browsers",
		ArgsUsage: "ID PORT",
		Description: `Prints a URL of the backend that proxies to PORT inside the sandbox, with
no token, until it expires (--ttl, at most the backend's limit, see nox
info): open it in a browser or share it. It cannot be changed to reach
another sandbox or port. --json prints the URL and its expiry.

   nox start demo python3 -m http.server 8000
   nox preview demo 8000 --ttl 15m

With --local nox refuses: the local backend has no address a browser could open.`,
		Flags: []cli.Flag{
			durationFlag("ttl", nil, 0, "1h (the backend's default)", "how long the URL works"),
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 2)
			if err != nil {
				return err
			}
			port, err := parsePort(c.Args().Get(1))
			if err != nil {
				return usagef("preview: PORT: %v", err)
			}
			ttl := durationOf(c, "ttl")
			if ttl < 0 || ttl%time.Second != 0 {
				return usagef("preview: --ttl %s: want a positive number of whole seconds", ttl)
			}
			if readGlobals(c).local {
				return errors.New("preview: " + localPreviewHint)
			}
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Preview(c.Context, port, ttl)
				if err != nil {
					return onSandbox(id, fmt.Errorf("preview of port %d: %w", port, err))
				}
				if readGlobals(c).json {
					return a.printJSON(aboutSandbox{id: id, v: map[string]any{
						"port": port, "url": p.URL, "expiresAt": jsonTime(p.ExpiresAt)}})
				}
				a.printf("%s\n", p.URL)
				if isTerminal(a.stderr) {
					fmt.Fprintf(a.stderr, "%s expires %s\n", a.errColor.dim("nox:"), timeOrDash(p.ExpiresAt))
				}
				return nil
			})
		},
	}
}
