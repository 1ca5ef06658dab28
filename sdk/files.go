package sdk

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/tarball"
)

// Upload sends a tar archive (gzip-compressed or plain; the backend tells
// them apart by the gzip magic bytes) and has the backend extract it under
// dest (empty means DefaultWorkdir). When tarStream is an io.Seeker (a
// file, a bytes.Reader), what remains of it is sent with a Content-Length,
// and the upload may be retried (RetryPolicy.RetryNonIdempotent); any
// other reader is sent as UploadArchive sends an archive.
//
//meta:operation POST /v1/sandboxes/{sessionId}/files/upload
func (c *Client) Upload(ctx context.Context, id, dest string, tarStream io.Reader) (*UploadResult, error) {
	const op = "uploadFiles"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if tarStream == nil {
		return nil, fmt.Errorf("nox: %s: nil archive: %w", op, ErrInvalidArgument)
	}
	if s, ok := tarStream.(io.Seeker); ok {
		if start, size, err := remaining(s); err == nil {
			cl := call{op: op, rewind: func() error {
				_, err := s.Seek(start, io.SeekStart)
				return err
			}}
			return c.upload(ctx, id, dest, tarStream, size, cl)
		}
	}
	return c.UploadArchive(ctx, id, dest, func(w io.Writer) error {
		_, err := io.Copy(w, tarStream)
		return err
	})
}

// remaining returns the offset of s and the number of bytes after it,
// leaving s where it was.
func remaining(s io.Seeker) (start, size int64, err error) {
	if start, err = s.Seek(0, io.SeekCurrent); err != nil {
		return 0, 0, err
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, err
	}
	if _, err := s.Seek(start, io.SeekStart); err != nil {
		return 0, 0, err
	}
	return start, max(end-start, 0), nil
}

// UploadArchive uploads the tar archive (gzip-compressed or plain) that
// write writes, and has the backend extract it under dest (empty means
// DefaultWorkdir). write is called once. How the archive travels depends
// on the backend, as its Info says (fetched once per Client):
//
//   - to a backend that advertises ExtUploadChunked, it streams: write
//     runs in a goroutine while the request sends what it writes, with
//     Transfer-Encoding: chunked, and the upload is never retried;
//   - to any other backend (a plain v1 one, or when Info cannot be
//     fetched), write fills a temporary file first, which is then sent with
//     a Content-Length (simple servers read only that) and may be retried;
//     the file is unlinked at once and gone when the call returns, whatever
//     happens.
//
// Memory use does not grow with the archive's size either way. An error
// of write is returned as an archiving error (it says more than the
// failed request it causes).
func (c *Client) UploadArchive(ctx context.Context, id, dest string, write func(w io.Writer) error) (*UploadResult, error) {
	const op = "uploadFiles"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if write == nil {
		return nil, fmt.Errorf("nox: %s: nil archive writer: %w", op, ErrInvalidArgument)
	}
	chunked, err := c.acceptsChunked(ctx)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if chunked {
		return c.uploadStreamed(ctx, id, dest, write)
	}
	return c.uploadSpooled(ctx, id, dest, write)
}

// acceptsChunked reports whether the backend advertises chunked uploads.
// When its Info cannot be fetched the answer is false (a Content-Length
// works everywhere), unless the context ended.
func (c *Client) acceptsChunked(ctx context.Context) (bool, error) {
	info, err := c.Capabilities(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, nil
	}
	return info.Supports(ExtUploadChunked), nil
}

// uploadStreamed sends what write writes as it writes it (chunked).
func (c *Client) uploadStreamed(ctx context.Context, id, dest string, write func(io.Writer) error) (*UploadResult, error) {
	const op = "uploadFiles"
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil closes with io.EOF
		done <- err
	}()
	res, err := c.upload(ctx, id, dest, pr, -1, call{op: op, noReplay: true})
	pr.CloseWithError(errUploadEnded) // stops the writer if it still runs
	werr := <-done
	if werr != nil && !errors.Is(werr, errUploadEnded) && !errors.Is(werr, io.ErrClosedPipe) {
		if err != nil {
			return nil, fmt.Errorf("nox: %s: archiving: %w (the upload then failed: %v)", op, werr, err)
		}
		return nil, fmt.Errorf("nox: %s: archiving: %w", op, werr)
	}
	return res, err
}

// uploadSpooled writes the archive to an unlinked temporary file, then
// sends it with a Content-Length.
func (c *Client) uploadSpooled(ctx context.Context, id, dest string, write func(io.Writer) error) (*UploadResult, error) {
	const op = "uploadFiles"
	f, err := os.CreateTemp("", "nox-upload-*.tar")
	if err != nil {
		return nil, fmt.Errorf("nox: %s: spooling the archive: %w", op, err)
	}
	name := f.Name()
	unlinked := os.Remove(name) == nil // where open files can be removed
	defer func() {
		f.Close()
		if !unlinked {
			os.Remove(name)
		}
	}()
	bw := bufio.NewWriterSize(ctxWriter{ctx: ctx, w: f}, 64<<10)
	if err := write(bw); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
		return nil, fmt.Errorf("nox: %s: archiving: %w", op, err)
	}
	if err := bw.Flush(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
		return nil, fmt.Errorf("nox: %s: spooling the archive: %w", op, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, fmt.Errorf("nox: %s: spooling the archive: %w", op, err)
	}
	cl := call{op: op, rewind: func() error {
		_, err := f.Seek(0, io.SeekStart)
		return err
	}}
	return c.upload(ctx, id, dest, f, size, cl)
}

// ctxWriter fails writes once its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// upload sends body, of size bytes (-1: unknown, sent chunked).
func (c *Client) upload(ctx context.Context, id, dest string, body io.Reader, size int64, cl call) (*UploadResult, error) {
	if dest == "" {
		dest = DefaultWorkdir
	}
	params := &noxapi.UploadFilesParams{Dest: &dest}
	body = readerOnly{body} // net/http must neither close it nor look at its type
	if size == 0 {
		body = http.NoBody
	}
	setLength := func(_ context.Context, req *http.Request) error {
		if size >= 0 {
			req.ContentLength = size
		}
		return nil
	}
	resp, err := c.do(ctx, cl, func(ctx context.Context) (*http.Response, error) {
		return c.gen.UploadFilesWithBody(ctx, id, params, "application/x-tar", body, setLength)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.UploadResult
	decodeOptionalJSON(resp, &g)
	return fromGenUpload(&g), nil
}

// readerOnly hides every method of a reader but Read.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// UploadFiles uploads files, a map from slash-separated relative paths to
// contents, under dest (empty means DefaultWorkdir), like the Python
// client's upload_files. Files get mode 0644 and missing parent directories
// 0755. The archive is built in memory and sent with a Content-Length, so
// the call may be retried.
func (c *Client) UploadFiles(ctx context.Context, id, dest string, files map[string][]byte) (*UploadResult, error) {
	const op = "uploadFiles"
	var buf bytes.Buffer
	if err := writeFilesTarGz(&buf, files); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	return c.Upload(ctx, id, dest, bytes.NewReader(buf.Bytes()))
}

// writeFilesTarGz writes the gzip tar UploadFiles sends. The archive is
// written to memory, so an error of tarball.WriteFiles can only be a name
// it refuses: an invalid argument.
func writeFilesTarGz(w io.Writer, files map[string][]byte) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tarball.WriteFiles(tw, files, time.Now().Truncate(time.Second)); err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalidArgument)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// UploadDir uploads the contents of the local directory localDir under dest
// (empty means DefaultWorkdir), keeping permission bits, modification times,
// nested and empty directories and symbolic links (not followed). When
// localDir is a file, that file is uploaded under its base name. Sockets,
// devices and fifos are skipped. The gzip tar is written by WriteTarGz and
// sent as UploadArchive sends an archive: streamed to a backend that
// advertises chunked uploads (never retried), else spooled to a temporary
// file and sent with a Content-Length. Memory use does not grow with the
// directory's size.
func (c *Client) UploadDir(ctx context.Context, id, dest, localDir string) (*UploadResult, error) {
	const op = "uploadFiles"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if _, err := os.Stat(localDir); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	return c.UploadArchive(ctx, id, dest, func(w io.Writer) error {
		if err := WriteTarGz(w, localDir); err != nil {
			return fmt.Errorf("%s: %w", localDir, err)
		}
		return nil
	})
}

// errUploadEnded stops the archive writer of an upload that ended.
var errUploadEnded = errors.New("upload ended")

// WriteTarGz writes a gzip-compressed tar (at gzip.BestSpeed) of the
// contents of dir to w, with paths relative to dir. Permission bits,
// modification times, empty directories and symbolic links (not followed)
// are kept; sockets, devices and fifos are skipped. When dir is a file, the archive holds that file
// under its base name. It streams: memory use does not depend on the size
// of the files.
func WriteTarGz(w io.Writer, dir string) error {
	// BestSpeed: uploads are bound by compression speed far more than by
	// the few percent of size the default level saves.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err := WriteTar(gz, dir); err != nil {
		return err
	}
	return gz.Close()
}

// WriteTar is WriteTarGz without the compression.
func WriteTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if err := tarball.AddFile(tw, dir, filepath.Base(dir), fi); err != nil {
			return err
		}
		return tw.Close()
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return tarball.AddFile(tw, p, filepath.ToSlash(rel), fi)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Download returns a stream of the gzip-compressed tar of src in the
// sandbox (empty means DefaultWorkdir): every file and directory under it
// with paths relative to src, or the single file when src is a file. The
// caller must close it. Extract it with ExtractTarGz, or use DownloadTo.
// A backend answers a src over its download limits (Info's
// Limits.MaxDownloadBytes and MaxDownloadEntries) with an error matching
// ErrTooLarge.
//
//meta:operation GET /v1/sandboxes/{sessionId}/files/download
func (c *Client) Download(ctx context.Context, id, src string) (io.ReadCloser, error) {
	const op = "downloadFiles"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if src == "" {
		src = DefaultWorkdir
	}
	params := &noxapi.DownloadFilesParams{Src: &src}
	resp, err := c.do(ctx, call{op: op, idempotent: true, streaming: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.DownloadFiles(ctx, id, params)
	})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// DownloadTo downloads src from the sandbox and extracts it into the
// local directory localDir (created when missing) with the default
// ExtractOptions; see DownloadToWith.
func (c *Client) DownloadTo(ctx context.Context, id, src, localDir string) error {
	return c.DownloadToWith(ctx, id, src, localDir, ExtractOptions{})
}

// DownloadToWith downloads src from the sandbox and extracts it safely
// into the local directory localDir (created when missing) with
// ExtractTarGzWith, within the caps of opts. A failed download or
// extraction removes what it created; an archive over a cap fails with an
// error wrapping ErrTooLarge, as does a backend's 413 for a source over
// its download limit.
func (c *Client) DownloadToWith(ctx context.Context, id, src, localDir string, opts ExtractOptions) error {
	rc, err := c.Download(ctx, id, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := ExtractTarGzWith(rc, localDir, opts); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("nox: downloadFiles: %w", cerr)
		}
		return fmt.Errorf("nox: downloadFiles: %w", err)
	}
	return nil
}
