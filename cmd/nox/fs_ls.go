package main

import (
	"path"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsLsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a directory of a sandbox (default /workspace)",
		ArgsUsage: "ID [PATH]",
		Description: `Entries are listed by name (with --depth, by their path below PATH), links
as links. -l shows type and mode, size, modification time and link targets.
A file is listed as itself, as ls does.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "long format: mode, size, time, name"},
			&cli.IntFlag{Name: "depth", Value: 1, Usage: "levels to list (1: the directory's own entries)"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return usagef("fs ls: missing the sandbox's session ID")
			}
			if len(args) > 2 {
				return usagef("fs ls: expected ID [PATH], got %d arguments", len(args))
			}
			id, dir := args[0], ""
			if len(args) == 2 {
				dir = args[1]
			}
			depth := c.Int("depth")
			if depth < 1 || depth > 64 {
				return usagef("fs ls: --depth %d: want 1 to 64", depth)
			}
			return a.withConn(c, func(cn *conn) error {
				sb := cn.client.Sandbox(id)
				all := []sdk.FileInfo{}
				base := ""
				st, err := sb.Stat(c.Context, dir)
				if err != nil {
					return onSandbox(id, err)
				}
				if st.IsDir() {
					base = st.Path
					for fi, err := range sb.ReadDir(c.Context, dir, sdk.ReadDirOptions{Depth: depth}) {
						if err != nil {
							return onSandbox(id, err)
						}
						all = append(all, fi)
					}
				} else {
					all = append(all, st)
				}
				if readGlobals(c).json {
					out := make([]fileJSON, len(all))
					for i, fi := range all {
						out[i] = toFileJSON(fi)
					}
					return a.printJSON(out)
				}
				name := func(fi sdk.FileInfo) string {
					if base == "" {
						return fi.Name
					}
					return relTo(base, fi.Path)
				}
				if !c.Bool("long") {
					for _, fi := range all {
						a.printf("%s\n", name(fi))
					}
					return nil
				}
				width := 1
				for _, fi := range all {
					width = max(width, len(strconv.FormatInt(fi.Size, 10)))
				}
				for _, fi := range all {
					n := name(fi)
					if fi.Type == sdk.TypeSymlink {
						n += " -> " + fi.LinkTarget
					}
					a.printf("%s %*d %s %s\n", fi.FileMode(), width, fi.Size, fi.ModTime.Local().Format("2006-01-02 15:04"), n)
				}
				return nil
			})
		},
	}
}

// relTo returns p relative to the directory base (both absolute, clean).
func relTo(base, p string) string {
	if base == "/" {
		return strings.TrimPrefix(p, "/")
	}
	if r, ok := strings.CutPrefix(p, base+"/"); ok {
		return r
	}
	return path.Base(p)
}
