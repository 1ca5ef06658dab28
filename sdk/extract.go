package sdk

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/tarball"
)

// maxTrailingBytes bounds what ExtractTarGz reads after the tar end marker
// (tar writers pad archives to a multiple of 10 KiB records).
const maxTrailingBytes = 1 << 20

// ExtractTarGz extracts a gzip-compressed tar archive into dir with the
// default ExtractOptions; see ExtractTarGzWith.
func ExtractTarGz(r io.Reader, dir string) error {
	return ExtractTarGzWith(r, dir, ExtractOptions{})
}

// ExtractTarGzWith extracts a gzip-compressed tar archive (a plain tar is
// accepted too, detected by the gzip magic bytes) into dir, which is
// created when missing, within the caps of opts. It is safe on hostile
// archives: see ExtractTarWith.
func ExtractTarGzWith(r io.Reader, dir string, opts ExtractOptions) error {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && len(magic) == 0 {
		if err == io.EOF {
			return fmt.Errorf("extract: empty archive: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("extract: %w", err)
	}
	if !tarball.IsGzip(magic) {
		return ExtractTarWith(br, dir, opts)
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer gz.Close()
	return extractInto(dir, opts, func(x *extractor) error {
		if err := x.run(gz); err != nil {
			return err
		}
		// The tar end marker can come before the end of the gzip stream;
		// read on (a bounded amount: only padding may follow) so gzip
		// checks its CRC and length and a truncated download is an error.
		n, err := io.Copy(io.Discard, io.LimitReader(gz, maxTrailingBytes+1))
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if n > maxTrailingBytes {
			return fmt.Errorf("extract: more than %d bytes after the end of the tar archive", maxTrailingBytes)
		}
		return nil
	})
}

// ExtractTar extracts an uncompressed tar archive into dir with the
// default ExtractOptions; see ExtractTarWith.
func ExtractTar(r io.Reader, dir string) error {
	return ExtractTarWith(r, dir, ExtractOptions{})
}

// ExtractTarWith extracts an uncompressed tar archive into dir, which is
// created when missing. Existing files and links are replaced, each only
// once its new content is complete; existing directories are merged.
//
// It never writes outside dir: every operation goes through an os.Root
// opened on dir, and entries with absolute paths or ".." components,
// symbolic links whose target is absolute or leaves dir, and hard links to
// paths outside dir fail with an error wrapping ErrUnsafeArchive, as do
// sparse, device, fifo and other special entries. Permission bits (without
// setuid, setgid and sticky; directories stay usable by their owner,
// u+rwx) and modification times are kept; owners are not. Runs of zeros
// in files are written as holes where the file system supports them.
//
// An archive over a cap of opts (see ExtractOptions) fails with an error
// wrapping ErrTooLarge. Extraction stops at the first bad entry and then
// removes every file, link and directory it created, dir included when it
// made it; what existed before stays, except a file or link that an entry
// completed before the failure had already replaced.
func ExtractTarWith(r io.Reader, dir string, opts ExtractOptions) error {
	return extractInto(dir, opts, func(x *extractor) error { return x.run(r) })
}

// extractInto creates and opens dir, runs body with an extractor on it,
// and sets the directories' attributes; when any step fails it removes
// what the extraction created.
func extractInto(dir string, opts ExtractOptions, body func(*extractor) error) error {
	made, err := makeDir(dir)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		removeDirs(made)
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, j: journal{root: root}, b: budget{lim: opts.limits()}}
	err = body(x)
	if err == nil {
		err = x.setDirAttrs()
	}
	if err != nil {
		x.j.undo()
		removeDirs(made)
		// os.Root refuses paths that leave it with an unexported error;
		// report those as unsafe entries too.
		if !errors.Is(err, ErrUnsafeArchive) && strings.Contains(err.Error(), "path escapes from parent") {
			err = fmt.Errorf("%w: %w", err, ErrUnsafeArchive)
		}
	}
	return err
}

// extractor extracts one archive into root.
type extractor struct {
	root *os.Root
	j    journal
	b    budget
	dirs []dirMeta // in archive order; their attributes are set last
}

// dirMeta is the mode and mtime of an extracted directory.
type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// run extracts the entries of the tar stream r.
func (x *extractor) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract: reading the archive: %w", err)
		}
		if err := x.b.entry(hdr.Name); err != nil {
			return err
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
}

// entry extracts one entry, whose content tr holds.
func (x *extractor) entry(tr io.Reader, hdr *tar.Header) error {
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if tarball.IsSparse(hdr) {
		return unsafeEntry(hdr.Name, "sparse files are not extracted")
	}
	if name == "." && hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeXGlobalHeader {
		return unsafeEntry(hdr.Name, "only a directory can stand for the target directory")
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name == "." {
			return nil
		}
		if err := x.j.mkdirAll(name); err != nil {
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
		x.dirs = append(x.dirs, dirMeta{name, mode, hdr.ModTime})
		return nil
	case tar.TypeReg: // the reader reports the old TypeRegA as TypeReg
		if err := x.b.content(hdr.Name, hdr.Size); err != nil {
			return err
		}
		return x.create(hdr.Name, name, func(tmp string) error { return x.writeFile(tmp, tr, hdr, mode) })
	case tar.TypeSymlink:
		if err := tarball.CheckSymlink(name, hdr.Linkname, ""); err != nil {
			return unsafeEntry(hdr.Name, fmt.Sprintf("%v: %q", err, hdr.Linkname))
		}
		return x.create(hdr.Name, name, func(tmp string) error {
			if err := x.root.Symlink(hdr.Linkname, tmp); err != nil {
				return err
			}
			// A lexically safe target may still leave dir through a
			// symbolic link extracted earlier; os.Root reports that as an
			// escape.
			if _, err := x.root.Stat(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("link target %q: %w", hdr.Linkname, ErrUnsafeArchive)
			}
			return nil
		})
	case tar.TypeLink:
		target, err := tarball.HardLinkTarget(x.root, hdr.Linkname)
		if err != nil {
			return unsafeEntry(hdr.Name, fmt.Sprintf("%v: %q", err, hdr.Linkname))
		}
		return x.create(hdr.Name, name, func(tmp string) error { return x.root.Link(target, tmp) })
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return unsafeEntry(hdr.Name, "device and fifo entries are not extracted")
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return unsafeEntry(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
}

// create makes the file or link name (of the archive entry hdrName): build
// writes it under a temporary name beside it, which then replaces name.
// What build leaves behind when it fails is removed.
func (x *extractor) create(hdrName, name string, build func(tmp string) error) error {
	if err := x.j.mkdirAll(path.Dir(name)); err != nil {
		return fmt.Errorf("extract %q: %w", hdrName, err)
	}
	if fi, err := x.root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("extract %q: %w", hdrName, tarball.ErrIsDir)
	}
	tmp := x.j.tempName(name)
	err := build(tmp)
	if err == nil {
		err = x.j.place(tmp, name)
	}
	// After a failure, and after renaming a hard link onto a name of the
	// same file (which leaves both names), tmp is removed.
	_ = x.root.Remove(tmp)
	if err != nil {
		return fmt.Errorf("extract %q: %w", hdrName, err)
	}
	return nil
}

// writeFile writes the regular file tmp with the content of its entry.
func (x *extractor) writeFile(tmp string, tr io.Reader, hdr *tar.Header, mode fs.FileMode) error {
	f, err := x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = copySparse(f, tr, hdr.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := x.root.Chmod(tmp, mode); err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		_ = x.root.Chtimes(tmp, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// setDirAttrs sets the directories' modes and times, deepest first, so
// that a read-only directory does not block its own entries.
func (x *extractor) setDirAttrs() error {
	for _, d := range slices.Backward(x.dirs) {
		if err := x.root.Chmod(d.name, d.mode|0o700); err != nil {
			return fmt.Errorf("extract %q: %w", d.name, err)
		}
		if !d.mtime.IsZero() {
			_ = x.root.Chtimes(d.name, d.mtime, d.mtime)
		}
	}
	return nil
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("extract %q: %s: %w", name, why, ErrUnsafeArchive)
}

// entryName validates an archive path with tarball.CleanName and returns
// it cleaned, relative to the target directory ("." for the directory
// itself). Names a Windows host reads as rooted (a leading backslash, a
// drive letter) are refused too: the SDK may extract on such a host.
func entryName(name string) (string, error) {
	if strings.HasPrefix(name, `\`) || (len(name) >= 2 && name[1] == ':') {
		return "", unsafeEntry(name, tarball.ErrAbsolute.Error())
	}
	clean, err := tarball.CleanName(name)
	if err != nil {
		return "", unsafeEntry(name, err.Error())
	}
	return clean, nil
}
