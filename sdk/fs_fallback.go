package sdk

// The tar fallback of the file helpers, for backends without ExtFilesOps:
// single files travel as one-entry archives through Download and
// UploadArchive.

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"
)

// maxLinkHops bounds the links the fallback follows for one read.
const maxLinkHops = 8

// tarEntry is the first entry of a downloaded archive and the open
// download, positioned at its content.
type tarEntry struct {
	hdr  *tar.Header // nil for an empty archive
	tr   *tar.Reader
	body io.Closer
}

// firstEntry downloads abs and reads the first header of its archive.
func (s *Sandbox) firstEntry(ctx context.Context, op, abs string) (*tarEntry, error) {
	rc, err := s.c.Download(ctx, s.id, abs)
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			apiErr.Operation = op
		}
		return nil, err
	}
	br := bufio.NewReader(rc)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("nox: %s %s: reading the download: %w", op, abs, err)
		}
		r = gz
	}
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err == io.EOF {
		return &tarEntry{tr: tr, body: rc}, nil
	}
	if err != nil {
		rc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
		return nil, fmt.Errorf("nox: %s %s: reading the download: %w", op, abs, err)
	}
	return &tarEntry{hdr: hdr, tr: tr, body: rc}, nil
}

// openTar is Open through Download.
func (s *Sandbox) openTar(ctx context.Context, abs string, opts OpenOptions) (io.ReadCloser, error) {
	const op = "readFile"
	for range maxLinkHops {
		e, err := s.firstEntry(ctx, op, abs)
		if err != nil {
			return nil, err
		}
		if e.hdr == nil || path.Clean(e.hdr.Name) != path.Base(abs) ||
			(e.hdr.Typeflag != tar.TypeReg && e.hdr.Typeflag != tar.TypeSymlink) {
			e.body.Close()
			return nil, fmt.Errorf("nox: %s: path %q: is a directory: %w", op, abs, ErrConflict)
		}
		if e.hdr.Typeflag == tar.TypeSymlink {
			e.body.Close()
			if path.IsAbs(e.hdr.Linkname) {
				abs = path.Clean(e.hdr.Linkname)
			} else {
				abs = path.Join(path.Dir(abs), e.hdr.Linkname)
			}
			continue
		}
		return skipRange(struct {
			io.Reader
			io.Closer
		}{io.LimitReader(e.tr, e.hdr.Size), e.body}, opts)
	}
	return nil, fmt.Errorf("nox: %s: path %q: too many links: %w", op, abs, ErrInvalidArgument)
}

// statTar is Stat through Download.
func (s *Sandbox) statTar(ctx context.Context, abs string) (FileInfo, error) {
	const op = "statFile"
	e, err := s.firstEntry(ctx, op, abs)
	if err != nil {
		return FileInfo{}, err
	}
	defer e.body.Close()
	fi := FileInfo{Path: abs, Name: baseName(abs), Type: TypeDir, Mode: 0o755}
	if e.hdr != nil && path.Clean(e.hdr.Name) == path.Base(abs) &&
		(e.hdr.Typeflag == tar.TypeReg || e.hdr.Typeflag == tar.TypeSymlink) {
		if _, err := e.tr.Next(); err == io.EOF {
			fi.Type, fi.Size, fi.ModTime = TypeFile, e.hdr.Size, e.hdr.ModTime
			fi.Mode = parseMode(fmt.Sprintf("%o", e.hdr.Mode))
			if e.hdr.Typeflag == tar.TypeSymlink {
				fi.Type, fi.Size, fi.LinkTarget = TypeSymlink, 0, e.hdr.Linkname
			}
		}
	}
	return fi, nil
}

// writeTar uploads content (size bytes) as the file abs, in a one-entry
// tar archive extracted into its directory.
func (s *Sandbox) writeTar(ctx context.Context, abs string, content io.Reader, size int64, opts WriteOptions) (FileInfo, error) {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o644
	}
	now := time.Now().Truncate(time.Second)
	hdr := &tar.Header{Name: baseName(abs), Typeflag: tar.TypeReg, Mode: int64(mode.Perm()), Size: size, ModTime: now, Format: tar.FormatPAX}
	_, err := s.c.UploadArchive(ctx, s.id, path.Dir(abs), func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, content, size); err != nil {
			return err
		}
		return tw.Close()
	})
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			apiErr.Operation = "writeFile"
		}
		return FileInfo{}, err
	}
	return FileInfo{Path: abs, Name: baseName(abs), Type: TypeFile, Size: size, Mode: mode.Perm(), ModTime: now}, nil
}

// baseName is the last element of an absolute path.
func baseName(abs string) string { return path.Base(abs) }
