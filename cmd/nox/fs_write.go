package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) fsWriteCommand() *cli.Command {
	return &cli.Command{
		Name:      "write",
		Usage:     "write stdin to a file of a sandbox, streamed; the file is replaced atomically",
		ArgsUsage: "ID PATH",
		Description: `The content streams to the backend as it is read (to a backend without
files.ops it is spooled to a temporary file and uploaded as a one-file tar).
When stdin fails or nox is interrupted, the file is left as it was.`,
		Flags: []cli.Flag{
			modeFlag("permission bits of the file"),
			&cli.BoolFlag{Name: "parents", Aliases: []string{"p"}, Usage: "create missing parent directories"},
			&cli.BoolFlag{Name: "create-only", Usage: "fail when the file exists"},
			&cli.StringFlag{Name: "if-match", Usage: "replace the file only when its ETag is this one"},
		},
		Action: func(c *cli.Context) error {
			id, paths, err := fsArgs(c, "PATH")
			if err != nil {
				return err
			}
			mode, err := parseModeFlag(c)
			if err != nil {
				return err
			}
			opts := sdk.WriteOptions{Mode: mode, Parents: c.Bool("parents"), CreateOnly: c.Bool("create-only"), IfMatch: c.String("if-match")}
			return a.withConn(c, func(cn *conn) error {
				fi, n, err := a.writeStream(c, cn.client.Sandbox(id), paths[0], a.stdin, opts)
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(toFileJSON(fi))
				}
				a.printf("%s %d bytes to %s in sandbox %q\n", a.color.green("wrote"), n, fi.Path, id)
				return nil
			})
		},
	}
}

// writeStream writes what r holds to the file p of sb and returns the
// file's description and its size: with a Content-Length when r is a
// file (or another seekable reader), else streamed. A failed read
// abandons the write, leaving the file as it was.
func (a *app) writeStream(c *cli.Context, sb *sdk.Sandbox, p string, r io.Reader, opts sdk.WriteOptions) (sdk.FileInfo, int64, error) {
	src := r
	if bar := a.progress("writing"); bar != nil {
		defer bar.Finish()
		if rs, ok := r.(io.ReadSeeker); ok {
			src = &barReadSeeker{ReadSeeker: rs, bar: bar}
		} else {
			src = io.TeeReader(r, bar)
		}
	}
	fi, err := sb.WriteFileFrom(c.Context, p, src, opts)
	if err != nil {
		return sdk.FileInfo{}, 0, fmt.Errorf("writing %s: %w", p, err)
	}
	return fi, fi.Size, nil
}

// barReadSeeker adds what is read to a progress bar and stays seekable.
type barReadSeeker struct {
	io.ReadSeeker
	bar io.Writer
}

func (b *barReadSeeker) Read(p []byte) (int, error) {
	n, err := b.ReadSeeker.Read(p)
	_, _ = b.bar.Write(p[:n])
	return n, err
}
