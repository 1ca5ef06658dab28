package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsCatCommand() *cli.Command {
	return &cli.Command{
		Name:      "cat",
		Usage:     "write a file of a sandbox to stdout, streamed",
		ArgsUsage: "ID PATH",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "offset", Usage: "first byte to write"},
			&cli.Int64Flag{Name: "length", Usage: "most bytes to write (0: to the end)"},
		},
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "PATH")
			if err != nil {
				return err
			}
			opts := sdk.OpenOptions{Offset: c.Int64("offset"), Length: c.Int64("length")}
			if opts.Offset < 0 || opts.Length < 0 {
				return usagef("fs cat: --offset and --length must not be negative")
			}
			return a.withConn(c, func(cn *conn) error {
				rc, err := cn.client.Sandbox(id).Open(c.Context, paths[0], opts)
				if err != nil {
					return onSandbox(id, err)
				}
				defer rc.Close()
				if _, err := io.Copy(a.stdout, rc); err != nil {
					return onSandbox(id, fmt.Errorf("reading %s: %w", paths[0], err))
				}
				return nil
			})
		},
	}
}
