package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/internal/tarball"
	"github.com/noxrunner/nox/sdk"
)

// progressDelay is how long a transfer runs before its progress bar shows.
const progressDelay = 700 * time.Millisecond

func (a *app) uploadCommand() *cli.Command {
	return &cli.Command{
		Name:      "upload",
		Usage:     "upload files, or a directory tree with --dir, into a sandbox",
		ArgsUsage: "ID [FILES...]",
		Description: `FILES are uploaded under their base names into --dest. With --dir, the
contents of DIR are uploaded into --dest with the tree, permission bits,
empty directories and symbolic links (not followed) preserved.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "upload the contents of this local directory"},
			&cli.StringFlag{Name: "dest", Usage: "destination directory in the sandbox (default /workspace)"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, -1)
			if err != nil {
				return err
			}
			files, dir := c.Args().Slice()[1:], c.String("dir")
			switch {
			case len(files) == 0 && dir == "":
				return usagef("upload: name files to upload or a directory with --dir")
			case len(files) > 0 && dir != "":
				return usagef("upload: give either files or --dir, not both")
			}
			write := func(w io.Writer) error { return writeFilesTarGz(w, files) }
			if dir != "" {
				if fi, err := os.Stat(dir); err != nil {
					return fmt.Errorf("upload: %w", err)
				} else if !fi.IsDir() {
					return usagef("upload: --dir %s is not a directory", dir)
				}
				write = func(w io.Writer) error { return sdk.WriteTarGz(w, dir) }
			} else {
				for _, f := range files {
					fi, err := os.Stat(f)
					if err != nil {
						return fmt.Errorf("upload: %w", err)
					}
					if !fi.Mode().IsRegular() {
						return usagef("upload: %s is not a regular file (use --dir for a directory)", f)
					}
				}
			}
			return a.withConn(c, func(cn *conn) error {
				res, n, err := a.upload(c.Context, cn.client.Sandbox(id), c.String("dest"), write)
				if err != nil {
					return onSandbox(id, fmt.Errorf("upload: %w", err))
				}
				dest := c.String("dest")
				if dest == "" {
					dest = sdk.DefaultWorkdir
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "dest": dest, "files": res.Files,
						"bytes": res.Bytes, "archiveBytes": n})
				}
				if res.Files == 0 && res.Bytes == 0 { // a backend that does not count
					a.printf("%s %d bytes (gzip tar) to %s in sandbox %q\n", a.color.green("uploaded"), n, dest, id)
					return nil
				}
				a.printf("%s %d file(s), %d bytes to %s in sandbox %q\n", a.color.green("uploaded"), res.Files, res.Bytes, dest, id)
				return nil
			})
		},
	}
}

// upload sends the archive write produces to the sandbox, as
// sdk.UploadArchive sends it (streamed or spooled, as the backend needs),
// with a progress bar of the archive written, and returns the answer and
// the archive's size.
func (a *app) upload(ctx context.Context, sb *sdk.Sandbox, dest string, write func(io.Writer) error) (*sdk.UploadResult, int64, error) {
	var n int64
	bar := a.progress("uploading")
	if bar != nil {
		defer bar.Finish()
	}
	res, err := sb.UploadArchive(ctx, dest, func(w io.Writer) error {
		cw := &countingWriter{w: w, n: &n}
		if bar != nil {
			return write(io.MultiWriter(cw, bar))
		}
		return write(cw)
	})
	return res, n, err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// writeFilesTarGz writes a gzip tar of the regular files paths (symbolic
// links followed), each under its base name.
func writeFilesTarGz(w io.Writer, paths []string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if err := tarball.AddFile(tw, p, filepath.Base(p), fi); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}

func (a *app) downloadCommand() *cli.Command {
	return &cli.Command{
		Name:      "download",
		Usage:     "download files from a sandbox as a .tar.gz, or extract them",
		ArgsUsage: "ID",
		Description: `Without --output or --extract the archive is written to ID.tar.gz.
--output - writes it to stdout. --extract refuses archive entries that would
land outside DIR (absolute paths, "..", escaping links, devices), writes at
most --max-size bytes of file contents (counted at their full size, holes
included) and --max-entries entries, and when it fails (a cap, a bad entry,
a broken transfer) removes every file and directory it created.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "src", Usage: "file or directory in the sandbox (default /workspace)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the archive to FILE (- for stdout)"},
			&cli.StringFlag{Name: "extract", Aliases: []string{"x"}, Usage: "extract the files into local directory DIR"},
			&cli.StringFlag{Name: "max-size", Value: quantity.FormatBytes(sdk.DefaultExtractMaxBytes),
				Usage: "with --extract, the most bytes of file contents to write: a quantity (`SIZE`: 512Mi, 2Gi, 1048576) or unlimited"},
			&cli.Int64Flag{Name: "max-entries", Value: sdk.DefaultExtractMaxEntries,
				Usage: "with --extract, the most archive entries (files, directories, links) to accept; -1 for unlimited"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			output, extract := c.String("output"), c.String("extract")
			if output != "" && extract != "" {
				return usagef("download: give either --output or --extract, not both")
			}
			caps, err := extractOptions(c)
			if err != nil {
				return err
			}
			if output == "" && extract == "" {
				output = id + ".tar.gz"
			}
			asJSON := readGlobals(c).json
			if output == "-" && asJSON {
				return usagef("download: --output - and --json both want stdout")
			}
			return a.withConn(c, func(cn *conn) error {
				n, err := a.download(c.Context, cn.client.Sandbox(id), c.String("src"), output, extract, caps)
				if err != nil {
					return onSandbox(id, fmt.Errorf("download: %w", err))
				}
				src := c.String("src")
				if src == "" {
					src = sdk.DefaultWorkdir
				}
				if asJSON {
					out := map[string]any{"sessionId": id, "src": src, "archiveBytes": n}
					if extract != "" {
						out["extractedTo"] = extract
					} else {
						out["output"] = output
					}
					return a.printJSON(out)
				}
				switch {
				case output == "-":
				case extract != "":
					a.printf("%s %s from sandbox %q into %s\n", a.color.green("extracted"), src, id, extract)
				default:
					a.printf("%s %s from sandbox %q to %s (%d bytes)\n", a.color.green("downloaded"), src, id, output, n)
				}
				return nil
			})
		},
	}
}

// extractOptions reads --max-size and --max-entries.
func extractOptions(c *cli.Context) (sdk.ExtractOptions, error) {
	opts := sdk.ExtractOptions{MaxBytes: sdk.Unlimited, MaxEntries: c.Int64("max-entries")}
	if s := c.String("max-size"); s != "unlimited" {
		n, err := quantity.ParseBytes(s)
		if err != nil || n <= 0 {
			return opts, usagef("download: --max-size %q: want a positive size such as 512Mi or 2Gi, or unlimited", s)
		}
		opts.MaxBytes = n
	}
	switch n := opts.MaxEntries; {
	case n < 0:
		opts.MaxEntries = sdk.Unlimited
	case n == 0:
		return opts, usagef("download: --max-entries 0: want a positive count, or -1 for unlimited")
	}
	return opts, nil
}

// download fetches src and writes the archive to output, or extracts it
// into extract within caps. It returns the archive's size.
func (a *app) download(ctx context.Context, sb *sdk.Sandbox, src, output, extract string, caps sdk.ExtractOptions) (int64, error) {
	rc, err := sb.Download(ctx, src)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	var r io.Reader = cr
	if bar := a.progress("downloading"); bar != nil {
		r = io.TeeReader(cr, bar)
		defer bar.Finish()
	}
	switch {
	case extract != "":
		if err := sdk.ExtractTarGzWith(r, extract, caps); err != nil {
			if errors.Is(err, sdk.ErrTooLarge) {
				return cr.n, fmt.Errorf("extracting into %s: %w (nothing left behind; see --max-size and --max-entries)", extract, err)
			}
			return cr.n, fmt.Errorf("extracting into %s: %w", extract, err)
		}
		// Drain what follows the archive so the transfer ends cleanly,
		// but not without end: only gzip padding may follow.
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	case output == "-":
		if _, err := io.Copy(a.stdout, r); err != nil {
			return cr.n, fmt.Errorf("writing to stdout: %w", err)
		}
	default:
		if err := writeFileAtomic(output, r); err != nil {
			return cr.n, err
		}
	}
	return cr.n, nil
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so a failed download leaves no partial file behind.
func writeFileAtomic(path string, r io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".nox-download-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress returns a byte-counting progress bar on stderr, or nil when
// stderr is not a terminal or the output is JSON. The bar stays invisible
// for the first moment, so quick transfers print nothing.
func (a *app) progress(desc string) *progressbar.ProgressBar {
	if a.jsonErrors || !isTerminal(a.stderr) {
		return nil
	}
	w := &lateWriter{w: a.stderr, after: time.Now().Add(progressDelay)}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(10),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(false),
	)
}

// lateWriter drops what is written before a moment, then passes it on.
type lateWriter struct {
	w     io.Writer
	after time.Time
}

func (l *lateWriter) Write(p []byte) (int, error) {
	if time.Now().Before(l.after) {
		return len(p), nil
	}
	return l.w.Write(p)
}
