package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsWatchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "print the changes below a directory of a sandbox as they happen (default /workspace)",
		ArgsUsage: "ID [PATH]",
		Description: `One line per change: its type (create, write, remove, rename, chmod) and
path (a rename: "rename NEW (from OLD)"); with --json one JSON object per
line. "overflow" says the backend dropped changes. "nox: watching ..." on
stderr says when the watch is in place. Runs until interrupted (Ctrl-C,
exit code 130) or the watch ends.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "watch the whole tree below PATH"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return usagef("fs watch: missing the sandbox's session ID")
			}
			if len(args) > 2 {
				return usagef("fs watch: expected ID [PATH], got %d arguments", len(args))
			}
			id, dir := args[0], ""
			if len(args) == 2 {
				dir = args[1]
			}
			asJSON := readGlobals(c).json
			return a.withConn(c, func(cn *conn) error {
				events, err := cn.client.Sandbox(id).Watch(c.Context, dir, sdk.WatchOptions{Recursive: c.Bool("recursive")})
				if err != nil {
					return onSandbox(id, err)
				}
				shown := dir
				if shown == "" {
					shown = sdk.DefaultWorkdir
				}
				fmt.Fprintf(a.stderr, "nox: watching %s in sandbox %q\n", shown, id)
				enc := json.NewEncoder(a.stdout)
				enc.SetEscapeHTML(false)
				for ev, err := range events {
					if err != nil {
						return onSandbox(id, err)
					}
					if asJSON {
						if err := enc.Encode(ev); err != nil {
							return fmt.Errorf("writing JSON: %w", err)
						}
						continue
					}
					switch {
					case ev.Type == sdk.EventOverflow:
						a.printf("overflow\n")
					case ev.OldPath != "":
						a.printf("%s %s (from %s)\n", ev.Type, ev.Path, ev.OldPath)
					default:
						a.printf("%s %s\n", ev.Type, ev.Path)
					}
				}
				return c.Context.Err()
			})
		},
	}
}
