package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/gen/noxapi"
)

// resolvePath returns p as an absolute, clean path inside the sandbox:
// relative paths are relative to DefaultWorkdir, as the files API and
// uploads take them; an empty path is DefaultWorkdir. A path with a NUL
// byte is an invalid argument.
func resolvePath(op, p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("nox: %s: path %q has a NUL byte: %w", op, p, ErrInvalidArgument)
	}
	if !path.IsAbs(p) {
		p = path.Join(DefaultWorkdir, p)
	}
	return path.Clean(p), nil
}

// filesOps reports whether the backend advertises ExtFilesOps. When its
// Info cannot be fetched the answer is false (the tar fallback works on
// every backend), unless ctx ended.
func (s *Sandbox) filesOps(ctx context.Context) (bool, error) {
	info, err := s.c.Capabilities(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, nil
	}
	return info.Supports(ExtFilesOps), nil
}

// ReadFile returns the content of the file at p (absolute, or relative to
// DefaultWorkdir). Links are followed while they stay inside the
// sandbox. A missing file is an error matching ErrNotFound, a directory
// one matching ErrConflict.
//
// On a backend without ExtFilesOps it downloads p as a one-entry tar
// archive (Download) instead, with the same results for a file.
func (s *Sandbox) ReadFile(ctx context.Context, p string) ([]byte, error) {
	rc, err := s.Open(ctx, p, OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("nox: readFile %s: %w", p, err)
	}
	return data, nil
}

// Open returns a stream of the content of the file at p (absolute, or
// relative to DefaultWorkdir), or of the byte range opts asks for. The
// caller closes it. Memory use does not grow with the file's size. See
// ReadFile for the errors; with opts.IfNoneMatch an unchanged file is an
// error matching ErrNotModified.
//
// On a backend without ExtFilesOps it downloads p as a one-entry tar
// archive instead, skipping the bytes before opts.Offset on the client
// (IfNoneMatch then fails with an error matching ErrUnsupported).
//
//meta:operation GET /v1/sandboxes/{sessionId}/fs/file
func (s *Sandbox) Open(ctx context.Context, p string, opts OpenOptions) (io.ReadCloser, error) {
	const op = "readFile"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return nil, err
	}
	if opts.Offset < 0 || opts.Length < 0 {
		return nil, fmt.Errorf("nox: %s %s: negative offset or length: %w", op, p, ErrInvalidArgument)
	}
	ok, err := s.filesOps(ctx)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if !ok {
		if opts.IfNoneMatch != "" {
			return nil, fmt.Errorf("nox: %s: IfNoneMatch needs extension %s: %w", op, ExtFilesOps, ErrUnsupported)
		}
		return s.openTar(ctx, abs, opts)
	}
	params := &noxapi.ReadFileParams{Path: abs}
	if opts.Offset > 0 || opts.Length > 0 {
		r := "bytes=" + strconv.FormatInt(opts.Offset, 10) + "-"
		if opts.Length > 0 {
			r += strconv.FormatInt(opts.Offset+opts.Length-1, 10)
		}
		params.Range = &r
	}
	resp, err := s.c.do(ctx, call{op: op, idempotent: true, streaming: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.ReadFile(ctx, s.id, params, func(_ context.Context, r *http.Request) error {
			if opts.IfNoneMatch != "" {
				r.Header.Set("If-None-Match", opts.IfNoneMatch)
			}
			return nil
		})
	})
	if err != nil {
		var apiErr *APIError
		if params.Range != nil && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The range starts at or past the end (of an empty file,
			// too): it reads nothing, as a read past the end does.
			return http.NoBody, nil
		}
		return nil, s.c.unsupported(ctx, op, ExtFilesOps, err)
	}
	if params.Range != nil && resp.StatusCode == http.StatusOK {
		// The backend ignored the range: skip and cut on this side.
		return skipRange(resp.Body, opts)
	}
	return resp.Body, nil
}

// skipRange returns what of the whole content rc opts asks for.
func skipRange(rc io.ReadCloser, opts OpenOptions) (io.ReadCloser, error) {
	if _, err := io.CopyN(io.Discard, rc, opts.Offset); err != nil && err != io.EOF {
		rc.Close()
		return nil, err
	}
	var r io.Reader = rc
	if opts.Length > 0 {
		r = io.LimitReader(rc, opts.Length)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, rc}, nil
}

// Stat describes the path p (absolute, or relative to DefaultWorkdir)
// without following a final link, like lstat(2). A missing path is an
// error matching ErrNotFound.
//
// On a backend without ExtFilesOps it downloads p as a tar archive and
// reads only its first header: a file is described from it (without
// ETag); anything else is reported as a directory (mode and time
// unknown, a directory holding only an entry of its own name looks like
// that file).
//
//meta:operation GET /v1/sandboxes/{sessionId}/fs/stat
func (s *Sandbox) Stat(ctx context.Context, p string) (FileInfo, error) {
	const op = "statFile"
	if err := checkID(op, s.id); err != nil {
		return FileInfo{}, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return FileInfo{}, err
	}
	ok, err := s.filesOps(ctx)
	if err != nil {
		return FileInfo{}, fmt.Errorf("nox: %s: %w", op, err)
	}
	if !ok {
		return s.statTar(ctx, abs)
	}
	resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.StatFile(ctx, s.id, &noxapi.StatFileParams{Path: abs})
	})
	if err != nil {
		return FileInfo{}, s.c.unsupported(ctx, op, ExtFilesOps, err)
	}
	var g noxapi.FileInfo
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return FileInfo{}, err
	}
	return fromGenFileInfo(&g), nil
}
