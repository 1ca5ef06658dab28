package main

import (
	"io/fs"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/sdk"
)

// fsCommand is `nox fs`: single-file operations on a sandbox (extension
// files.ops; watch: files.watch). Each subcommand lives in its own file.
func (a *app) fsCommand() *cli.Command {
	return &cli.Command{
		Name:  "fs",
		Usage: "read, write, list and watch files in a sandbox, without tar",
		Description: `PATH is absolute inside the sandbox or relative to /workspace. cat, write
and stat work on every backend (through a one-file tar archive where the
backend lacks the files.ops extension); ls, mkdir, rm and mv need files.ops,
watch needs files.watch.`,
		Subcommands: []*cli.Command{
			a.fsCatCommand(),
			a.fsWriteCommand(),
			a.fsLsCommand(),
			a.fsStatCommand(),
			a.fsMkdirCommand(),
			a.fsRmCommand(),
			a.fsMvCommand(),
			a.fsWatchCommand(),
		},
	}
}

// fsArgs returns the sandbox id and the n-1 paths after it, or a usage
// error naming what is missing.
func fsArgs(c *cli.Context, names ...string) (string, []string, error) {
	args := c.Args().Slice()
	want := 1 + len(names)
	if len(args) == 0 {
		return "", nil, usagef("fs %s: missing the sandbox's session ID", c.Command.Name)
	}
	if len(args) < want {
		return "", nil, usagef("fs %s: missing %s", c.Command.Name, names[len(args)-1])
	}
	if len(args) > want {
		return "", nil, usagef("fs %s: expected %d argument(s), got %d", c.Command.Name, want, len(args))
	}
	return args[0], args[1:], nil
}

// fileJSON is how the CLI prints a FileInfo: the contract's form.
type fileJSON struct {
	Path       string    `json:"path"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"`
	ModTime    time.Time `json:"modTime"`
	LinkTarget string    `json:"linkTarget,omitempty"`
	ETag       string    `json:"etag,omitempty"`
}

func toFileJSON(fi sdk.FileInfo) fileJSON {
	return fileJSON{Path: fi.Path, Name: fi.Name, Type: string(fi.Type), Size: fi.Size,
		Mode: api.FormatMode(fi.Mode), ModTime: fi.ModTime, LinkTarget: fi.LinkTarget, ETag: fi.ETag}
}

// modeFlag is --mode: octal permission bits.
func modeFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "mode", Usage: usage + " (octal, e.g. 0644)"}
}

// parseModeFlag reads --mode; "" is 0 (the backend's default).
func parseModeFlag(c *cli.Context) (fs.FileMode, error) {
	s := c.String("mode")
	if s == "" {
		return 0, nil
	}
	m, err := api.ParseMode(s)
	if err != nil {
		return 0, usagef("fs %s: --mode %q: want octal permission bits such as 0644 or 755", c.Command.Name, s)
	}
	return m, nil
}
