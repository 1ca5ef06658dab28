package sdk

import (
	"archive/tar"
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
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/tarball"
)

// Upload sends a tar archive (gzip-compressed or plain; the backend tells
// them apart by the gzip magic bytes) and has the backend extract it under
// dest (empty means DefaultWorkdir). The archive is streamed from tarStream.
// Upload is not retried unless RetryPolicy.RetryNonIdempotent is set and
// tarStream is an io.Seeker.
//
//meta:operation POST /v1/sandboxes/{sessionId}/files/upload
func (c *Client) Upload(ctx context.Context, id, dest string, tarStream io.Reader) (*UploadResult, error) {
	cl := call{op: "uploadFiles"}
	if s, ok := tarStream.(io.Seeker); ok {
		start, err := s.Seek(0, io.SeekCurrent)
		if err == nil {
			cl.rewind = func() error {
				_, err := s.Seek(start, io.SeekStart)
				return err
			}
		} else {
			cl.noReplay = true
		}
	} else {
		cl.noReplay = true
	}
	return c.upload(ctx, id, dest, tarStream, cl)
}

func (c *Client) upload(ctx context.Context, id, dest string, body io.Reader, cl call) (*UploadResult, error) {
	if err := checkID(cl.op, id); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, fmt.Errorf("nox: %s: nil archive: %w", cl.op, ErrInvalidArgument)
	}
	if dest == "" {
		dest = DefaultWorkdir
	}
	params := &noxapi.UploadFilesParams{Dest: &dest}
	resp, err := c.do(ctx, cl, func(ctx context.Context) (*http.Response, error) {
		return c.gen.UploadFilesWithBody(ctx, id, params, "application/x-tar", requestBody(body))
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.UploadResult
	decodeOptionalJSON(resp, &g)
	return fromGenUpload(&g), nil
}

// requestBody returns the reader to send as a request body. In-memory
// readers are passed as they are, so that net/http sends a Content-Length;
// any other reader is wrapped so that net/http neither closes the caller's
// reader (an *os.File, say) nor looks at its type, and sends it chunked.
func requestBody(r io.Reader) io.Reader {
	switch r.(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader:
		return r
	}
	return readerOnly{r}
}

// readerOnly hides every method of a reader but Read.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// UploadFiles uploads files, a map from slash-separated relative paths to
// contents, under dest (empty means DefaultWorkdir), like the Python
// client's upload_files. Files get mode 0644 and missing parent directories
// 0755. The archive is built in memory, so the call may be retried.
func (c *Client) UploadFiles(ctx context.Context, id, dest string, files map[string][]byte) (*UploadResult, error) {
	const op = "uploadFiles"
	var buf bytes.Buffer
	if err := writeFilesTarGz(&buf, files); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	data := buf.Bytes()
	var r *bytes.Reader
	cl := call{op: op, rewind: func() error { r.Reset(data); return nil }}
	r = bytes.NewReader(data)
	return c.upload(ctx, id, dest, r, cl)
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
// devices and fifos are skipped. The gzip tar is written by a goroutine into
// an io.Pipe while the request sends it, so memory use does not grow with
// the directory's size; the upload is therefore never retried.
func (c *Client) UploadDir(ctx context.Context, id, dest, localDir string) (*UploadResult, error) {
	const op = "uploadFiles"
	if _, err := os.Stat(localDir); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := WriteTarGz(pw, localDir)
		pw.CloseWithError(err) // nil closes with io.EOF
		done <- err
	}()
	res, err := c.upload(ctx, id, dest, pr, call{op: op, noReplay: true})
	pr.CloseWithError(errUploadEnded) // stops the writer if it still runs
	werr := <-done
	if errors.Is(werr, errUploadEnded) || errors.Is(werr, io.ErrClosedPipe) {
		werr = nil // the writer was stopped, it did not fail
	}
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("%w (archiving %s: %v)", err, localDir, werr)
		}
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("nox: %s: archiving %s: %w", op, localDir, werr)
	}
	return res, nil
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

// DownloadTo downloads src from the sandbox and extracts it safely into the
// local directory localDir (created when missing) with ExtractTarGz.
func (c *Client) DownloadTo(ctx context.Context, id, src, localDir string) error {
	rc, err := c.Download(ctx, id, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := ExtractTarGz(rc, localDir); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("nox: downloadFiles: %w", cerr)
		}
		return fmt.Errorf("nox: downloadFiles: %w", err)
	}
	return nil
}
