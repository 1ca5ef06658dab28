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

// writeStream copies r to the file p of sb, streamed, and returns the
// file's description and the bytes written. A failed read abandons the
// write, leaving the file as it was.
func (a *app) writeStream(c *cli.Context, sb *sdk.Sandbox, p string, r io.Reader, opts sdk.WriteOptions) (sdk.FileInfo, int64, error) {
	w, err := sb.CreateFile(c.Context, p, opts)
	if err != nil {
		return sdk.FileInfo{}, 0, err
	}
	var dst io.Writer = w
	if bar := a.progress("writing"); bar != nil {
		dst = io.MultiWriter(w, bar)
		defer bar.Finish()
	}
	n, err := io.Copy(dst, readerFunc(r.Read))
	if err != nil {
		// The backend's reason when the upload failed first, else the
		// read's; either way the file is left as it was.
		return sdk.FileInfo{}, n, fmt.Errorf("writing %s: %w", p, w.CloseWithError(err))
	}
	if err := w.Close(); err != nil {
		return sdk.FileInfo{}, n, err
	}
	return w.Info(), n, nil
}

// readerFunc hides a reader's other methods (io.Copy must not use
// WriterTo of stdin, which would bypass the progress bar).
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
