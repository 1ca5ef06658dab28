package sdk

// The tar fallback of the file helpers, for backends without ExtFilesOps:
// single files travel as one-entry archives through Download and
// UploadArchive.

import (
	"archive/tar"
	"bufio"
	"bytes"
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

// writeTar uploads content (size bytes from its start) as the file abs,
// in a one-entry plain tar archive extracted into its directory. The
// archive's size is known, so it is sent with a Content-Length (to any
// backend, without spooling it again) and may be retried like an upload.
func (s *Sandbox) writeTar(ctx context.Context, abs string, content io.ReadSeeker, size int64, opts WriteOptions) (FileInfo, error) {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o644
	}
	now := time.Now().Truncate(time.Second)
	hdr := &tar.Header{Name: baseName(abs), Typeflag: tar.TypeReg, Mode: int64(mode.Perm()), Size: size, ModTime: now, Format: tar.FormatPAX}
	var hb bytes.Buffer
	if err := tar.NewWriter(&hb).WriteHeader(hdr); err != nil {
		return FileInfo{}, fmt.Errorf("nox: writeFile %s: %w", abs, err)
	}
	// The content is padded to a block, and two zero blocks end the
	// archive.
	arch := &oneFileTar{hdr: hb.Bytes(), trailer: make([]byte, (512-size%512)%512+1024), content: content, size: size}
	if err := arch.rewind(); err != nil {
		return FileInfo{}, fmt.Errorf("nox: writeFile %s: %w", abs, err)
	}
	total := int64(len(arch.hdr)) + size + int64(len(arch.trailer))
	_, err := s.c.upload(ctx, s.id, path.Dir(abs), arch, total, call{op: "writeFile", rewind: arch.rewind})
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Path: abs, Name: baseName(abs), Type: TypeFile, Size: size, Mode: mode.Perm(), ModTime: now}, nil
}

// oneFileTar reads a one-entry tar archive: a header, size bytes of
// content and the trailer.
type oneFileTar struct {
	hdr, trailer []byte
	content      io.ReadSeeker
	size         int64
	r            io.Reader
}

// rewind starts the archive over.
func (t *oneFileTar) rewind() error {
	if _, err := t.content.Seek(0, io.SeekStart); err != nil {
		return err
	}
	t.r = io.MultiReader(bytes.NewReader(t.hdr), &exactReader{r: t.content, n: t.size}, bytes.NewReader(t.trailer))
	return nil
}

func (t *oneFileTar) Read(p []byte) (int, error) { return t.r.Read(p) }

// exactReader reads exactly n bytes of r: fewer is io.ErrUnexpectedEOF
// (the content shrank under the upload), more are not read.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// baseName is the last element of an absolute path.
func baseName(abs string) string { return path.Base(abs) }
