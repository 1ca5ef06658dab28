package localbackend

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/internal/tarball"
)

// extractLimits bound one upload.
type extractLimits struct {
	maxEntries int64 // archive entries
	// charge, when set, reserves n more bytes of the sandbox's storage
	// before they are written; its error ends the extraction as it is.
	charge func(n int64) error
}

// extractStats counts what an extraction wrote.
type extractStats struct {
	files int64     // entries extracted
	bytes int64     // file content bytes
	dirs  []dirAttr // directories, in archive order, whose attributes are set last
}

// dirAttr is the mode and mtime of an extracted directory.
type dirAttr struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// entryError is a hostile or unsupported archive entry.
func entryError(name, reason string) error {
	return fmt.Errorf("archive entry %q: %s: %w", name, reason, ErrInvalid)
}

// writeError maps an error of writing entry name into the staging area:
// running out of space or inodes is the sandbox's storage being full (no
// host path in the message), anything else an error of the entry.
func writeError(name string, err error) error {
	if errors.Is(err, ErrInsufficientStorage) {
		return err
	}
	if isNoSpace(err) {
		return fmt.Errorf("archive entry %q: no space left in the sandbox's ephemeral storage: %w", name, ErrInsufficientStorage)
	}
	return entryError(name, err.Error())
}

// bodyError maps a read error of the request body. The server reports a
// body over its upload limit as an ErrTooLarge error, passed on as it is.
func bodyError(err error) error {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("body: not a valid (gzip) tar archive: %v: %w", err, ErrInvalid)
}

// cleanEntryName validates an archive entry name with tarball.CleanName
// and returns it cleaned and relative ("." for the archive's root
// directory).
func cleanEntryName(name string) (string, error) {
	c, err := tarball.CleanName(name)
	switch {
	case errors.Is(err, tarball.ErrAbsolute):
		return "", entryError(name, "absolute path")
	case errors.Is(err, tarball.ErrDotDot):
		return "", entryError(name, "path escapes dest")
	case err != nil:
		return "", entryError(name, "empty name or NUL byte")
	}
	return c, nil
}

// extractTar extracts a gzip or plain tar stream into root, which must be
// an empty staging directory that nothing else writes to. It rejects
// absolute names, ".." components, links pointing outside root, devices and
// fifos. destAbs is the sandbox path root stands for, used to judge
// absolute symlink targets.
func extractTar(ctx context.Context, r io.Reader, root *os.Root, destAbs string, lim extractLimits) (extractStats, error) {
	var st extractStats
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && tarball.IsGzip(magic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, bodyError(err)
		}
		defer zr.Close()
		src = zr
	} else if err != nil && !errors.Is(err, io.EOF) {
		return st, bodyError(err)
	}
	tr := tar.NewReader(src)
	var entries int64
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, bodyError(err)
		}
		entries++
		if entries > lim.maxEntries {
			return st, fmt.Errorf("archive has more than %d entries: %w", lim.maxEntries, ErrTooLarge)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return st, err
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		if hdr.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "." {
				continue // the root of the archive is dest itself
			}
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				if err := root.Remove(name); err != nil {
					return st, writeError(hdr.Name, err)
				}
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return st, writeError(hdr.Name, err)
			}
			st.dirs = append(st.dirs, dirAttr{name, mode, hdr.ModTime})
		case tar.TypeReg:
			if name == "." {
				return st, entryError(hdr.Name, "a file cannot replace dest")
			}
			if err := prepareEntry(root, name); err != nil {
				return st, writeError(hdr.Name, err)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return st, writeError(hdr.Name, err)
			}
			var w io.Writer = f
			if lim.charge != nil {
				w = chargedWriter{f, lim.charge}
			}
			n, err := io.Copy(w, tr)
			st.bytes += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if errors.Is(err, ErrInsufficientStorage) || isNoSpace(err) {
					return st, writeError(hdr.Name, err)
				}
				return st, bodyError(err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return st, writeError(hdr.Name, err)
			}
			_ = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
		case tar.TypeSymlink:
			if name == "." {
				return st, entryError(hdr.Name, "a link cannot replace dest")
			}
			t := hdr.Linkname
			switch err := tarball.CheckSymlink(name, t, destAbs); {
			case errors.Is(err, tarball.ErrEmptyTarget), errors.Is(err, tarball.ErrNUL):
				return st, entryError(hdr.Name, "empty link target")
			case err != nil:
				return st, entryError(hdr.Name, fmt.Sprintf("link target %q points outside dest", t))
			}
			if err := prepareEntry(root, name); err != nil {
				return st, writeError(hdr.Name, err)
			}
			if err := root.Symlink(t, name); err != nil {
				return st, writeError(hdr.Name, err)
			}
		case tar.TypeLink:
			if name == "." {
				return st, entryError(hdr.Name, "a link cannot replace dest")
			}
			t, err := tarball.HardLinkTarget(root, hdr.Linkname)
			switch {
			case errors.Is(err, tarball.ErrNotRegular):
				return st, entryError(hdr.Name, fmt.Sprintf("hard link target %q is not a file extracted earlier", hdr.Linkname))
			case err != nil:
				return st, entryError(hdr.Name, fmt.Sprintf("hard link target %q points outside dest", hdr.Linkname))
			}
			if err := prepareEntry(root, name); err != nil {
				return st, writeError(hdr.Name, err)
			}
			if err := root.Link(t, name); err != nil {
				return st, writeError(hdr.Name, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return st, entryError(hdr.Name, "device and fifo entries are not allowed")
		case tar.TypeXGlobalHeader:
			continue
		default:
			return st, entryError(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
		}
		st.files++
	}
	return st, nil
}

// chargedWriter charges every write before passing it on.
type chargedWriter struct {
	w      io.Writer
	charge func(n int64) error
}

func (c chargedWriter) Write(p []byte) (int, error) {
	if err := c.charge(int64(len(p))); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// applyDirAttrs sets the modes and times of the archive's directories once
// they are in place under root, deepest first, so that
// read-only directories do not stop their own extraction.
func applyDirAttrs(root *os.Root, dirs []dirAttr) {
	for _, d := range slices.Backward(dirs) {
		p := d.name
		if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
			continue
		}
		_ = root.Chmod(p, d.mode)
		_ = root.Chtimes(p, d.mtime, d.mtime)
	}
}

// prepareEntry is tarball.Prepare that also refuses an entry whose parent
// is a file or a symbolic link rather than a directory.
func prepareEntry(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if fi, err := root.Lstat(dir); err == nil && !fi.IsDir() {
			return fmt.Errorf("parent %q is not a directory", dir)
		}
	}
	return tarball.Prepare(root, name)
}

// mergeTree moves every entry of the directory src into the directory dst:
// new entries are renamed into place, existing directories are merged,
// other existing entries are replaced (a directory replaces a file or a
// symbolic link, like tar without --keep-directory-symlink). Every rename
// is renameat(2) of one name between two directory descriptors opened
// through the roots, so a link planted in dst is never followed out of it.
func mergeTree(src, dst *os.Root) error {
	sd, err := src.Open(".")
	if err != nil {
		return err
	}
	defer sd.Close()
	dd, err := dst.Open(".")
	if err != nil {
		return err
	}
	defer dd.Close()
	ents, err := sd.ReadDir(-1)
	if err != nil {
		return err
	}
	move := func(name string) error {
		return os.NewSyscallError("renameat", unix.Renameat(int(sd.Fd()), name, int(dd.Fd()), name))
	}
	for _, e := range ents {
		name := e.Name()
		tfi, err := dst.Lstat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = move(name)
		case err != nil:
		case e.IsDir() && tfi.IsDir():
			err = mergeSubdir(src, dst, name)
		case tfi.IsDir():
			if err = dst.RemoveAll(name); err == nil {
				err = move(name)
			}
		case e.IsDir():
			if err = dst.Remove(name); err == nil {
				err = move(name)
			}
		default:
			err = move(name) // atomically replaces a file or link
		}
		if err != nil {
			return fmt.Errorf("move %q into place: %w", name, err)
		}
	}
	return nil
}

func mergeSubdir(src, dst *os.Root, name string) error {
	s, err := src.OpenRoot(name)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := dst.OpenRoot(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return mergeTree(s, d)
}

// writeTar writes the tree at rel (relative to root) to tw, with names
// relative to rel; a single file or link is written under its base name.
// Symbolic links are stored, never followed. It stops with an ErrTooLarge
// error when the archive would exceed the limits of b.
func writeTar(ctx context.Context, root *os.Root, rel string, tw *tar.Writer, b *downloadBudget) error {
	fi, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return writeEntry(root, rel, path.Base(rel), fi, tw, b)
	}
	return fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == rel {
			return nil
		}
		name := p
		if rel != "." {
			name = strings.TrimPrefix(p, rel+"/")
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		return writeEntry(root, p, name, fi, tw, b)
	})
}

// writeEntry writes one file, directory or symlink, within the limits of
// b; other types are skipped. A regular file's holes are not read (see
// copyData).
func writeEntry(root *os.Root, p, name string, fi fs.FileInfo, tw *tar.Writer, b *downloadBudget) error {
	var link string
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := root.Readlink(p)
		if err != nil {
			return err
		}
		link = l
	case fi.IsDir(), fi.Mode().IsRegular():
	default:
		return nil // sockets, devices, fifos
	}
	hdr, err := tarball.Header(fi, name, link)
	if err != nil {
		return err
	}
	if err := b.add(hdr.Size); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return tw.WriteHeader(hdr)
	}
	// O_NONBLOCK: sandboxed code may swap the file for a fifo meanwhile.
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return nil // removed or replaced by a link meanwhile
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return err // replaced by something else: skip it
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	return copyData(tw, f, hdr.Size)
}
