package membackend

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
	"path/filepath"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/tarball"
)

// entry is one accepted archive entry, held until the whole archive was
// read (the server bounds the archive's size).
type entry struct {
	hdr  *tar.Header
	body []byte
}

// Upload extracts a tar archive (gzip or plain) into dest, all or nothing:
// every entry is read and checked before the first one is written.
func (b *Backend) Upload(ctx context.Context, id, dest string, archive io.Reader) (driver.UploadResult, error) {
	s, err := b.lookup(id, true)
	if err != nil {
		return driver.UploadResult{}, err
	}
	hostDest, err := s.hostPath("dest", dest)
	if err != nil {
		return driver.UploadResult{}, err
	}
	entries, err := b.readArchive(archive)
	if err != nil {
		return driver.UploadResult{}, err
	}
	if err := os.MkdirAll(hostDest, 0o755); err != nil {
		return driver.UploadResult{}, fmt.Errorf("dest: %w", err)
	}
	var res driver.UploadResult
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := writeEntry(hostDest, e); err != nil {
			return res, fmt.Errorf("archive entry %q: %w", e.hdr.Name, err)
		}
		if e.hdr.Typeflag == tar.TypeReg {
			res.Files++
			res.Bytes += int64(len(e.body))
		}
	}
	return res, nil
}

// readArchive reads and checks every entry of a (gzip) tar stream.
func (b *Backend) readArchive(archive io.Reader) ([]entry, error) {
	br := bufio.NewReader(archive)
	var r io.Reader = br
	if magic, _ := br.Peek(2); tarball.IsGzip(magic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("body: not a gzip stream: %v: %w", err, driver.ErrInvalidArgument)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	var entries []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, nil
		}
		if errors.Is(err, driver.ErrTooLarge) {
			return nil, err // the server's body limit
		}
		if err != nil {
			return nil, fmt.Errorf("body: not a tar archive: %v: %w", err, driver.ErrInvalidArgument)
		}
		if int64(len(entries)) >= b.cfg.Limits.MaxUploadEntries {
			return nil, fmt.Errorf("archive holds more than %d entries: %w", b.cfg.Limits.MaxUploadEntries, driver.ErrTooLarge)
		}
		if !b.cfg.Faults.UploadFollowsDotDot {
			if why := unsafeEntry(hdr); why != "" {
				return nil, fmt.Errorf("archive entry %q: %s: %w", hdr.Name, why, driver.ErrInvalidArgument)
			}
		}
		body, err := io.ReadAll(tr)
		if errors.Is(err, driver.ErrTooLarge) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("archive entry %q: %v: %w", hdr.Name, err, driver.ErrInvalidArgument)
		}
		entries = append(entries, entry{hdr, body})
	}
}

// unsafeEntry says why an entry may not be extracted, or "".
func unsafeEntry(h *tar.Header) string {
	name, err := tarball.CleanName(h.Name)
	if err != nil {
		return err.Error()
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		if err := tarball.CheckSymlink(name, h.Linkname, ""); err != nil {
			return "symlink: " + err.Error()
		}
	case tar.TypeLink:
		if _, err := tarball.CleanName(h.Linkname); err != nil {
			return "hard link: " + err.Error()
		}
	default:
		return "unsupported entry type (devices and fifos are refused)"
	}
	return ""
}

// writeEntry writes one checked entry under dest.
func writeEntry(dest string, e entry) error {
	target := filepath.Join(dest, filepath.FromSlash(e.hdr.Name))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := fs.FileMode(e.hdr.Mode & 0o777)
	switch e.hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		return os.Chmod(target, mode|0o700)
	case tar.TypeReg:
		_ = os.Remove(target)
		if err := os.WriteFile(target, e.body, mode); err != nil {
			return err
		}
		return os.Chmod(target, mode)
	case tar.TypeSymlink:
		_ = os.Remove(target)
		return os.Symlink(e.hdr.Linkname, target)
	case tar.TypeLink:
		_ = os.Remove(target)
		return os.Link(filepath.Join(dest, filepath.FromSlash(e.hdr.Linkname)), target)
	}
	return nil
}

// Download streams a gzip tar of src: a directory's contents, or one file
// under its base name.
func (b *Backend) Download(ctx context.Context, id, src string) (io.ReadCloser, error) {
	s, err := b.lookup(id, true)
	if err != nil {
		return nil, err
	}
	host, err := s.hostPath("src", src)
	if err != nil {
		return nil, err
	}
	st, err := os.Lstat(host)
	if err != nil {
		return nil, fmt.Errorf("src: %q does not exist: %w", src, driver.ErrNotFound)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeArchive(ctx, pw, host, st))
	}()
	return pr, nil
}

// writeArchive writes host (a file or a directory's contents) as a gzip tar.
func writeArchive(ctx context.Context, w io.Writer, host string, st fs.FileInfo) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	var err error
	if !st.IsDir() {
		err = tarball.AddFile(tw, host, filepath.Base(host), st)
	} else {
		err = filepath.Walk(host, func(p string, fi fs.FileInfo, err error) error {
			if err != nil || p == host {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rel, _ := filepath.Rel(host, p)
			return tarball.AddFile(tw, p, filepath.ToSlash(rel), fi)
		})
	}
	return errors.Join(err, tw.Close(), zw.Close())
}
