package conformance

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/tarball"
)

// TarEntry is one entry of an archive the suite builds or reads: its Name,
// type flag (Type, tar.TypeReg when zero), permission bits (Mode, 0644 or
// 0755 for a directory when zero), a regular file's Body, a link's
// Linkname, and a device's Devmajor and Devminor.
type TarEntry = tarball.Entry

// BuildTar returns a tar archive of entries, gzip-compressed when gz.
func BuildTar(entries []TarEntry, gz bool) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, e := range entries {
		if err := tarball.WriteEntry(tw, e, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// ReadTarGz reads a gzip-compressed tar archive. Entry names are cleaned
// of a leading "./"; the root entry "." is dropped.
func ReadTarGz(b []byte) ([]TarEntry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not gzip-compressed: %w", err)
	}
	tr := tar.NewReader(zr)
	var out []TarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, fmt.Errorf("tar: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "" || name == "." || name == "./" {
			continue
		}
		e := TarEntry{Name: strings.TrimSuffix(name, "/"), Type: h.Typeflag, Mode: h.Mode & 0o7777, Linkname: h.Linkname}
		if h.Typeflag == tar.TypeReg { // the reader turns old TypeRegA entries into TypeReg
			e.Type = tar.TypeReg
			e.Body, err = io.ReadAll(tr)
			if err != nil {
				return out, fmt.Errorf("tar entry %q: %w", h.Name, err)
			}
		}
		out = append(out, e)
	}
	if err := zr.Close(); err != nil {
		return out, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

// tarNameContained reports whether an archive entry name is relative and
// stays inside the archive root.
func tarNameContained(name string) bool {
	return !path.IsAbs(name) && !tarball.Escapes(name)
}

func newGzip(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// streamedFile is a regular file of a streamed archive: size bytes of fill.
type streamedFile struct {
	name string
	size int64
	fill byte
}

// streamTar describes a plain (uncompressed) tar archive of files without
// building it: it returns the archive's size and a function that returns a
// new reader of it, which generates the content as it is read.
func streamTar(files []streamedFile) (int64, func() io.Reader, error) {
	const block = 512
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	headers := make([][]byte, len(files))
	var size int64
	for i, f := range files {
		var buf bytes.Buffer
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: f.size, ModTime: mtime, Format: tar.FormatUSTAR}
		if err := tar.NewWriter(&buf).WriteHeader(h); err != nil { // the header blocks only
			return 0, nil, fmt.Errorf("tar header %q: %w", f.name, err)
		}
		headers[i] = buf.Bytes()
		size += int64(len(headers[i])) + (f.size+block-1)/block*block
	}
	size += 2 * block // the end marker
	open := func() io.Reader {
		var parts []io.Reader
		for i, f := range files {
			pad := (block - f.size%block) % block
			parts = append(parts, bytes.NewReader(headers[i]), io.LimitReader(fillReader(f.fill), f.size), io.LimitReader(fillReader(0), pad))
		}
		return io.MultiReader(append(parts, io.LimitReader(fillReader(0), 2*block))...)
	}
	return size, open, nil
}

// fillReader is an endless stream of one byte.
type fillReader byte

func (f fillReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}
