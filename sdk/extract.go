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
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/tarball"
)

// maxTrailingBytes bounds what ExtractTarGz reads after the tar end marker
// (tar writers pad archives to a multiple of 10 KiB records).
const maxTrailingBytes = 1 << 20

// ExtractTarGz extracts a gzip-compressed tar archive (a plain tar is
// accepted too, detected by the gzip magic bytes) into dir, which is created
// when missing. It is safe on hostile archives: see ExtractTar.
func ExtractTarGz(r io.Reader, dir string) error {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && len(magic) == 0 {
		if err == io.EOF {
			return fmt.Errorf("extract: empty archive: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("extract: %w", err)
	}
	if tarball.IsGzip(magic) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		defer gz.Close()
		if err := ExtractTar(gz, dir); err != nil {
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
	}
	return ExtractTar(br, dir)
}

// ExtractTar extracts an uncompressed tar archive into dir, which is created
// when missing. Existing files are replaced.
//
// It never writes outside dir: every operation goes through an os.Root
// opened on dir, and entries with absolute paths or ".." components,
// symbolic links whose target is absolute or leaves dir, and hard links to
// paths outside dir fail with an error wrapping ErrUnsafeArchive, as do
// device, fifo and other special entries. Permission bits (without setuid,
// setgid and sticky; directories stay usable by their owner, u+rwx) and
// modification times are kept; owners are not.
// Extraction stops at the first bad entry; entries before it stay
// extracted.
func ExtractTar(r io.Reader, dir string) error {
	err := extractTar(r, dir)
	// os.Root refuses paths that leave it with an unexported error; report
	// those as unsafe entries too.
	if err != nil && !errors.Is(err, ErrUnsafeArchive) && strings.Contains(err.Error(), "path escapes from parent") {
		err = fmt.Errorf("%w: %w", err, ErrUnsafeArchive)
	}
	return err
}

func extractTar(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()

	type dirMeta struct {
		name  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirMeta
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract: reading the archive: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		if tarball.IsSparse(hdr) {
			return unsafeEntry(hdr.Name, "sparse files are not extracted")
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "." {
				continue
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirMeta{name, mode, hdr.ModTime})
		case tar.TypeReg: // the reader reports the old TypeRegA as TypeReg
			if name == "." {
				return unsafeEntry(hdr.Name, "a file cannot replace the target directory")
			}
			if err := tarball.Prepare(root, name); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			if !hdr.ModTime.IsZero() {
				_ = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			}
		case tar.TypeSymlink:
			if name == "." {
				return unsafeEntry(hdr.Name, "a link cannot replace the target directory")
			}
			if err := tarball.CheckSymlink(name, hdr.Linkname, ""); err != nil {
				return unsafeEntry(hdr.Name, fmt.Sprintf("%v: %q", err, hdr.Linkname))
			}
			if err := tarball.Prepare(root, name); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			// A lexically safe target may still leave dir through a symbolic
			// link extracted earlier; os.Root reports that as an escape.
			if _, err := root.Stat(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				_ = root.Remove(name)
				return fmt.Errorf("extract %q: link target %q: %w", hdr.Name, hdr.Linkname, ErrUnsafeArchive)
			}
		case tar.TypeLink:
			if name == "." {
				return unsafeEntry(hdr.Name, "a link cannot replace the target directory")
			}
			target, err := tarball.HardLinkTarget(root, hdr.Linkname)
			if err != nil {
				return unsafeEntry(hdr.Name, fmt.Sprintf("%v: %q", err, hdr.Linkname))
			}
			if err := tarball.Prepare(root, name); err != nil {
				return fmt.Errorf("extract %q: %w", hdr.Name, err)
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("extract %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return unsafeEntry(hdr.Name, "device and fifo entries are not extracted")
		case tar.TypeXGlobalHeader:
			continue
		default:
			return unsafeEntry(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
		}
	}
	// Directory modes and times last, deepest first, so that a read-only
	// directory does not block its own entries.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := root.Chmod(d.name, d.mode|0o700); err != nil {
			return fmt.Errorf("extract %q: %w", d.name, err)
		}
		if !d.mtime.IsZero() {
			_ = root.Chtimes(d.name, d.mtime, d.mtime)
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
