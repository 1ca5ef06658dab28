package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"sync"

	"github.com/noxrunner/nox/gen/noxapi"
)

// WriteFile writes data to the file at p (absolute, or relative to
// DefaultWorkdir), replacing it atomically (a reader sees the old content
// or the new, never a part) or creating it with mode perm (0: the
// backend's default, 0644); an existing file keeps its mode unless perm
// is given. It returns the new file's description. It is retried like an
// idempotent call (the body is replayable). See WriteFileWith for
// parents and conditional writes.
//
// On a backend without ExtFilesOps it uploads a one-entry tar archive
// instead (missing parents are then always created, the returned
// FileInfo has no ETag and the replace is as atomic as the backend's
// uploads).
//
//meta:operation PUT /v1/sandboxes/{sessionId}/fs/file
func (s *Sandbox) WriteFile(ctx context.Context, p string, data []byte, perm fs.FileMode) (FileInfo, error) {
	return s.WriteFileWith(ctx, p, data, WriteOptions{Mode: perm})
}

// WriteFileWith is WriteFile with all of WriteOptions. A conditional
// write (IfMatch, CreateOnly) is never retried, and fails with an error
// matching ErrUnsupported on a backend without ExtFilesOps.
func (s *Sandbox) WriteFileWith(ctx context.Context, p string, data []byte, opts WriteOptions) (FileInfo, error) {
	return s.WriteFileFrom(ctx, p, bytes.NewReader(data), opts)
}

// WriteFileFrom writes what remains of r to the file at p (absolute, or
// relative to DefaultWorkdir), as WriteFileWith writes data. When r is an
// io.ReadSeeker whose size can be found (a file, a bytes.Reader), it is
// sent with a Content-Length, and retried as WriteFileWith is (r is
// rewound); on a backend without ExtFilesOps its one-file tar archive is
// built around it without a copy. Any other reader streams as CreateFile
// streams.
func (s *Sandbox) WriteFileFrom(ctx context.Context, p string, r io.Reader, opts WriteOptions) (FileInfo, error) {
	const op = "writeFile"
	if err := checkID(op, s.id); err != nil {
		return FileInfo{}, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return FileInfo{}, err
	}
	if r == nil {
		return FileInfo{}, fmt.Errorf("nox: %s: nil reader: %w", op, ErrInvalidArgument)
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		if start, size, err := remaining(rs); err == nil {
			content := &offsetSeeker{rs: rs, start: start}
			ok, err := s.filesOps(ctx)
			if err != nil {
				return FileInfo{}, fmt.Errorf("nox: %s: %w", op, err)
			}
			if !ok {
				if err := checkTarWrite(opts); err != nil {
					return FileInfo{}, err
				}
				return s.writeTar(ctx, abs, content, size, opts)
			}
			cl := call{op: op, idempotent: opts.IfMatch == "" && !opts.CreateOnly, rewind: func() error {
				_, err := content.Seek(0, io.SeekStart)
				return err
			}}
			return s.writeFile(ctx, abs, rs, size, opts, cl)
		}
	}
	w, err := s.CreateFile(ctx, abs, opts)
	if err != nil {
		return FileInfo{}, err
	}
	if _, err := io.Copy(w, readerOnly{r}); err != nil {
		return FileInfo{}, w.CloseWithError(err)
	}
	if err := w.Close(); err != nil {
		return FileInfo{}, err
	}
	return w.Info(), nil
}

// offsetSeeker is rs seen from its offset start: Seek(0, io.SeekStart)
// goes back to start.
type offsetSeeker struct {
	rs    io.ReadSeeker
	start int64
}

func (o *offsetSeeker) Read(p []byte) (int, error) { return o.rs.Read(p) }

func (o *offsetSeeker) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		off += o.start
	}
	n, err := o.rs.Seek(off, whence)
	return n - o.start, err
}

// writeFile sends body, of size bytes (-1: unknown, sent chunked).
func (s *Sandbox) writeFile(ctx context.Context, abs string, body io.Reader, size int64, opts WriteOptions, cl call) (FileInfo, error) {
	params := &noxapi.WriteFileParams{Path: abs, Mode: formatMode(opts.Mode)}
	if opts.Parents {
		params.Parents = &opts.Parents
	}
	if opts.IfMatch != "" {
		params.IfMatch = &opts.IfMatch
	}
	if opts.CreateOnly {
		star := "*"
		params.IfNoneMatch = &star
	}
	body = readerOnly{body}
	if size == 0 {
		body = http.NoBody
	}
	setLength := func(_ context.Context, req *http.Request) error {
		if size >= 0 {
			req.ContentLength = size
		}
		return nil
	}
	resp, err := s.c.do(ctx, cl, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.WriteFileWithBody(ctx, s.id, params, "application/octet-stream", body, setLength)
	})
	if err != nil {
		return FileInfo{}, s.c.unsupported(ctx, cl.op, ExtFilesOps, err)
	}
	var g noxapi.FileInfo
	decodeOptionalJSON(resp, &g)
	fi := fromGenFileInfo(&g)
	if fi.Path == "" {
		fi.Path, fi.Type = abs, TypeFile
		fi.Name = baseName(abs)
	}
	if fi.ETag == "" {
		fi.ETag = resp.Header.Get("ETag")
	}
	return fi, nil
}

// checkTarWrite rejects what the tar fallback cannot do.
func checkTarWrite(opts WriteOptions) error {
	if opts.IfMatch != "" || opts.CreateOnly {
		return fmt.Errorf("nox: writeFile: conditional writes (IfMatch, CreateOnly) need extension %s: %w", ExtFilesOps, ErrUnsupported)
	}
	return nil
}

// FileWriter is the stream CreateFile returns: what is written to it becomes
// the file's content when Close succeeds. It is not safe for concurrent
// use.
type FileWriter struct {
	w      io.Writer
	finish func(abort error) (FileInfo, error)
	once   sync.Once
	info   FileInfo
	err    error
}

// Write writes p to the file's content. An error means the write failed
// (the upload ended early, or the spool could not be written); Close then
// says why.
func (w *FileWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

// Close ends the content and waits until the backend has stored the file;
// its error is the write's. It may be called more than once.
func (w *FileWriter) Close() error { return w.CloseWithError(nil) }

// CloseWithError ends the write: with a nil err as Close; otherwise the
// write is abandoned (the file is left as it was, the upload is cut) and
// err is returned, or the upload's own error when the upload failed first
// (a Write failed because the backend refused the content).
func (w *FileWriter) CloseWithError(err error) error {
	w.once.Do(func() { w.info, w.err = w.finish(err) })
	return w.err
}

// Info describes the file written, once Close succeeded.
func (w *FileWriter) Info() FileInfo { return w.info }

// CreateFile returns a writer whose (Create creates the sandbox itself) content replaces (or creates) the file at
// p (absolute, or relative to DefaultWorkdir) when it is closed; see
// WriteOptions. The content streams: to a backend with ExtFilesOps it is
// sent as it is written (Transfer-Encoding: chunked, never retried), and
// the replace is atomic. Memory use does not grow with the file's size.
// The caller must Close the writer (or CloseWithError, to abandon the
// write); cancelling ctx abandons it too.
//
// On a backend without ExtFilesOps the content is spooled to a temporary
// file (unlinked at once) and uploaded on Close as a one-entry tar archive
// (missing parents are always created; conditional writes fail with an
// error matching ErrUnsupported).
func (s *Sandbox) CreateFile(ctx context.Context, p string, opts WriteOptions) (*FileWriter, error) {
	const op = "writeFile"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return nil, err
	}
	ok, err := s.filesOps(ctx)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if !ok {
		if err := checkTarWrite(opts); err != nil {
			return nil, err
		}
		return s.createSpooled(ctx, abs, opts)
	}
	pr, pw := io.Pipe()
	type result struct {
		info FileInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		fi, err := s.writeFile(ctx, abs, pr, -1, opts, call{op: op, noReplay: true})
		pr.CloseWithError(errUploadEnded) // a writer still writing learns it ended
		done <- result{fi, err}
	}()
	finish := func(abort error) (FileInfo, error) {
		if abort != nil {
			pw.CloseWithError(abort)
			r := <-done
			if errors.Is(abort, errUploadEnded) && r.err != nil {
				return FileInfo{}, r.err
			}
			return FileInfo{}, abort
		}
		pw.Close()
		r := <-done
		return r.info, r.err
	}
	return &FileWriter{w: pw, finish: finish}, nil
}

// createSpooled is CreateFile for a backend without ExtFilesOps.
func (s *Sandbox) createSpooled(ctx context.Context, abs string, opts WriteOptions) (*FileWriter, error) {
	f, err := os.CreateTemp("", "nox-write-*")
	if err != nil {
		return nil, fmt.Errorf("nox: writeFile: spooling: %w", err)
	}
	name := f.Name()
	unlinked := os.Remove(name) == nil
	cleanup := func() {
		f.Close()
		if !unlinked {
			os.Remove(name)
		}
	}
	finish := func(abort error) (FileInfo, error) {
		defer cleanup()
		if abort != nil {
			return FileInfo{}, abort
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			return FileInfo{}, fmt.Errorf("nox: writeFile: spooling: %w", err)
		}
		return s.writeTar(ctx, abs, f, size, opts)
	}
	return &FileWriter{w: ctxWriter{ctx: ctx, w: f}, finish: finish}, nil
}
