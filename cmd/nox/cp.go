package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) cpCommand() *cli.Command {
	return &cli.Command{
		Name:      "cp",
		Usage:     "copy files and directories between this machine and a sandbox",
		ArgsUsage: "SRC DST",
		Description: `One of SRC and DST is ID:PATH, a path in sandbox ID (absolute, or relative
to /workspace); the other is a local path, or - for stdin or stdout. A local
path with a colon is written ./a:b.

   nox cp ./report.csv demo:/workspace/in/     into a directory (kept name)
   nox cp ./src demo:/workspace/src            a directory tree
   nox cp demo:/workspace/out.json ./out.json
   nox cp demo:out ./results                   a directory into ./results
   echo hi | nox cp - demo:hello.txt           stdin to a file
   nox cp demo:log.txt - | tail                a file to stdout

As with cp: a DST that is an existing directory (or ends with /) receives
SRC under its base name; otherwise DST is the new name. A directory copies
with its tree, modes, empty directories and links (not followed); SRC/.
copies a directory's contents. Files travel as they are (extension
files.ops; streamed, replaced atomically); directories, and files on
backends without files.ops, travel as tar archives.`,
		Flags: []cli.Flag{
			modeFlag("with - as SRC, permission bits of the new file"),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("cp: expected SRC DST, got %d argument(s)", c.NArg())
			}
			src, dst := parseCpArg(c.Args().Get(0)), parseCpArg(c.Args().Get(1))
			switch {
			case src.id != "" && dst.id != "":
				return usagef("cp: both SRC and DST are in sandboxes; one must be local")
			case src.id == "" && dst.id == "":
				return usagef("cp: neither SRC nor DST is in a sandbox (write it ID:PATH)")
			}
			mode, err := parseModeFlag(c)
			if err != nil {
				return err
			}
			if src.id == "" && src.path != "-" {
				if _, err := os.Stat(src.path); err != nil {
					return fmt.Errorf("cp: %w", err)
				}
			}
			return a.withConn(c, func(cn *conn) error {
				if dst.id != "" {
					return onSandbox(dst.id, a.copyTo(c, cn.client.Sandbox(dst.id), src.path, dst.path, mode))
				}
				return onSandbox(src.id, a.copyFrom(c, cn.client.Sandbox(src.id), src.path, dst.path))
			})
		},
	}
}

// cpArg is one side of nox cp: a sandbox path (id set) or a local one.
type cpArg struct{ id, path string }

// sessionPrefix matches "ID:" at the start of a cp argument.
var sessionPrefix = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*):`)

func parseCpArg(s string) cpArg {
	if m := sessionPrefix.FindStringSubmatch(s); m != nil {
		return cpArg{id: m[1], path: absRemote(s[len(m[0]):])}
	}
	return cpArg{path: s}
}

// absRemote makes a sandbox path absolute (relative paths are relative
// to /workspace), keeping a final "/" or "/." that says how to copy.
func absRemote(p string) string {
	suffix := ""
	switch {
	case strings.HasSuffix(p, "/."):
		suffix = "/."
	case strings.HasSuffix(p, "/"):
		suffix = "/"
	}
	if !path.IsAbs(p) {
		p = path.Join(sdk.DefaultWorkdir, p)
	}
	p = path.Clean(p)
	if p == "/" {
		return p
	}
	return p + suffix
}

// remoteTarget returns where SRC named base lands for the sandbox path
// dst: inside dst when it ends with "/" or is an existing directory,
// else dst itself; and whether dst exists as a directory.
func remoteTarget(ctx context.Context, sb *sdk.Sandbox, dst, base string) (string, error) {
	if strings.HasSuffix(dst, "/") {
		return path.Join(dst, base), nil
	}
	fi, err := sb.Stat(ctx, dst)
	switch {
	case err == nil && fi.IsDir():
		return path.Join(dst, base), nil
	case err == nil, errors.Is(err, sdk.ErrNotFound):
		return dst, nil
	}
	return "", err
}

// copyTo copies the local src (or stdin) to dst in sb.
func (a *app) copyTo(c *cli.Context, sb *sdk.Sandbox, src, dst string, mode fs.FileMode) error {
	ctx := c.Context
	if src == "-" {
		if strings.HasSuffix(dst, "/") {
			return usagef("cp: with - as SRC, DST must name a file")
		}
		fi, n, err := a.writeStream(c, sb, dst, a.stdin, sdk.WriteOptions{Mode: mode, Parents: true})
		if err != nil {
			return err
		}
		return a.copied(c, "-", sb.ID()+":"+fi.Path, n)
	}
	contents := strings.HasSuffix(src, string(filepath.Separator)+".")
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return usagef("cp: %s is not a regular file or directory", src)
		}
		target, err := remoteTarget(ctx, sb, dst, filepath.Base(src))
		if err != nil {
			return err
		}
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("cp: %w", err)
		}
		defer f.Close()
		perm := mode
		if perm == 0 {
			perm = st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
		fi, n, err := a.writeStream(c, sb, target, f, sdk.WriteOptions{Mode: perm, Parents: true})
		if err != nil {
			return err
		}
		return a.copied(c, src, sb.ID()+":"+fi.Path, n)
	}
	// A directory: its contents go to dest (created), as an archive.
	dest := dst
	if !contents {
		if dest, err = remoteTarget(ctx, sb, dst, filepath.Base(filepath.Clean(src))); err != nil {
			return err
		}
	}
	if dest == "" {
		dest = sdk.DefaultWorkdir
	}
	res, n, err := a.upload(ctx, sb, dest, func(w io.Writer) error { return sdk.WriteTarGz(w, src) })
	if err != nil {
		return err
	}
	if res.Bytes > 0 {
		n = res.Bytes
	}
	return a.copied(c, src, sb.ID()+":"+dest, n)
}

// copyFrom copies src in sb to the local dst (or stdout).
func (a *app) copyFrom(c *cli.Context, sb *sdk.Sandbox, src, dst string) error {
	ctx := c.Context
	contents := strings.HasSuffix(src, "/.")
	fi, err := sb.Stat(ctx, src)
	if err != nil {
		return err
	}
	if fi.Type == sdk.TypeSymlink {
		return usagef("cp: %s is a link; copy its target", fi.Path)
	}
	if dst == "-" {
		if fi.IsDir() {
			// As docker cp: a directory to stdout is a (gzip) tar.
			rc, err := sb.Download(ctx, fi.Path)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(a.stdout, rc); err != nil {
				return fmt.Errorf("writing to stdout: %w", err)
			}
			return nil
		}
		rc, err := sb.Open(ctx, src, sdk.OpenOptions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := io.Copy(a.stdout, rc); err != nil {
			return fmt.Errorf("writing to stdout: %w", err)
		}
		return nil
	}
	target := dst
	if lst, err := os.Stat(dst); (err == nil && lst.IsDir() && !contents) || strings.HasSuffix(dst, string(filepath.Separator)) {
		target = filepath.Join(dst, path.Base(fi.Path))
	}
	if fi.IsDir() {
		if err := sb.DownloadTo(ctx, fi.Path, target); err != nil {
			return err
		}
		return a.copied(c, sb.ID()+":"+fi.Path, target, -1)
	}
	rc, err := sb.Open(ctx, src, sdk.OpenOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if bar := a.progress("copying"); bar != nil {
		r = io.TeeReader(rc, bar)
		defer bar.Finish()
	}
	cr := &countingReader{r: r}
	if err := writeLocalFile(target, cr, fi.Mode.Perm()); err != nil {
		return err
	}
	return a.copied(c, sb.ID()+":"+fi.Path, target, cr.n)
}

// writeLocalFile writes r to p with mode perm through a temporary file in
// the same directory (created when missing), renamed over p once
// complete: a failed copy leaves p as it was.
func writeLocalFile(p string, r io.Reader, perm fs.FileMode) (err error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".nox-cp-*")
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("cp: writing %s: %w", p, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	return nil
}

// copied reports a finished copy (nothing when its output went to stdout).
func (a *app) copied(c *cli.Context, from, to string, n int64) error {
	if readGlobals(c).json {
		out := map[string]any{"from": from, "to": to}
		if n >= 0 {
			out["bytes"] = n
		}
		return a.printJSON(out)
	}
	if n >= 0 {
		a.printf("%s %s to %s (%d bytes)\n", a.color.green("copied"), from, to, n)
	} else {
		a.printf("%s %s to %s\n", a.color.green("copied"), from, to)
	}
	return nil
}
