package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// The files.ops operations. Each checks the session id, resolves its
// paths with resolvePath and calls the backend's driver.Files; the
// endpoints of a backend without it never reach these handlers
// (withoutExtensions answers them 404).

// The defaults of listDir.
const (
	defaultListPageSize = 1000
	defaultListDepth    = 1
)

// noFiles answers a files operation on a backend without driver.Files,
// should one reach a handler despite withoutExtensions.
var noFiles = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the files extension"}

// filesFor checks the session id and that the backend serves files.ops.
func (h *handlers) filesFor(id string) (driver.Files, error) {
	if err := checkSessionID(id); err != nil {
		return nil, err
	}
	if h.files == nil {
		return nil, errNoFiles
	}
	return h.files, nil
}

// errNoFiles is filesFor's error for a backend without driver.Files.
var errNoFiles = noFilesError{}

type noFilesError struct{}

func (noFilesError) Error() string { return noFiles.msg }

// fileErr answers err, which may be errNoFiles.
func (h *handlers) fileErr(ctx context.Context, err error) errorResponse {
	if err == errNoFiles {
		return noFiles
	}
	return h.errorFor(ctx, err)
}

// ReadFile streams one file through http.ServeContent, which answers
// ranges (206, 416) and conditional requests (304, If-Range) from the
// file's ETag and modification time.
func (h *handlers) ReadFile(ctx context.Context, req noxapi.ReadFileRequestObject) (noxapi.ReadFileResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	p, err := resolvePath("path", req.Params.Path)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	r := httpRequestFrom(ctx)
	if r == nil {
		return nil, errNoRequest
	}
	f, err := files.OpenFile(ctx, req.SessionID, p)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return &fileContent{f: f, r: r}, nil
}

// WriteFile writes one file from the raw request body, atomically.
func (h *handlers) WriteFile(ctx context.Context, req noxapi.WriteFileRequestObject) (noxapi.WriteFileResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	w, err := writeRequest(req.Params, h.opts.MaxUploadBytes)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	fi, created, err := files.WriteFile(ctx, req.SessionID, w, uploadBody{r: req.Body, what: "body"})
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return writtenFile{info: fileInfo(fi), etag: fi.ETag, created: created}, nil
}

// writeRequest checks a write's parameters.
func writeRequest(p noxapi.WriteFileParams, maxBytes int64) (driver.WriteFileRequest, error) {
	var w driver.WriteFileRequest
	var err error
	if w.Path, err = resolvePath("path", p.Path); err != nil {
		return w, err
	}
	w.HasMode = p.Mode != nil
	if w.Mode, err = parseMode("mode", p.Mode, 0o644); err != nil {
		return w, err
	}
	w.Parents = p.Parents != nil && *p.Parents
	if p.IfMatch != nil {
		w.IfMatch = strings.TrimSpace(*p.IfMatch)
		if w.IfMatch == "" || w.IfMatch == "*" || strings.HasPrefix(w.IfMatch, "W/") {
			return w, invalid("If-Match: %q must be one strong ETag as readFile answers it", *p.IfMatch)
		}
	}
	if p.IfNoneMatch != nil {
		if strings.TrimSpace(*p.IfNoneMatch) != "*" {
			return w, invalid("If-None-Match: only * (create only) is supported on writes, not %q", *p.IfNoneMatch)
		}
		w.CreateOnly = true
	}
	if w.IfMatch != "" && w.CreateOnly {
		return w, invalid("If-Match: cannot be combined with If-None-Match: *")
	}
	w.MaxBytes = maxBytes
	return w, nil
}

// StatFile describes one path without following a final link.
func (h *handlers) StatFile(ctx context.Context, req noxapi.StatFileRequestObject) (noxapi.StatFileResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	p, err := resolvePath("path", req.Params.Path)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	fi, err := files.Stat(ctx, req.SessionID, p)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.StatFile200JSONResponse(fileInfo(fi)), nil
}

// ListDir lists a directory a page at a time. The page token is the path
// of the last entry of the previous page, base64url: it must lie below
// the listed directory.
func (h *handlers) ListDir(ctx context.Context, req noxapi.ListDirRequestObject) (noxapi.ListDirResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	l, err := listRequest(req.Params, h.info.Limits.MaxListPageSize)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	page, more, err := files.ListDir(ctx, req.SessionID, l)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	out := noxapi.FileList{Entries: make([]noxapi.FileInfo, 0, len(page))}
	for _, fi := range page {
		out.Entries = append(out.Entries, fileInfo(fi))
	}
	if more && len(page) > 0 {
		tok := base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].Path))
		out.NextPageToken = &tok
	}
	return noxapi.ListDir200JSONResponse(out), nil
}

// listRequest checks a listing's parameters and applies the defaults; a
// pageSize above maxPage (when set) is lowered to it.
func listRequest(p noxapi.ListDirParams, maxPage int) (driver.ListDirRequest, error) {
	l := driver.ListDirRequest{Depth: defaultListDepth, Limit: defaultListPageSize}
	var err error
	if l.Path, err = resolvePath("path", p.Path); err != nil {
		return l, err
	}
	if p.Depth != nil {
		if *p.Depth < 1 {
			return l, invalid("depth: must be at least 1")
		}
		l.Depth = int(*p.Depth)
	}
	if p.PageSize != nil {
		if *p.PageSize < 1 {
			return l, invalid("pageSize: must be at least 1")
		}
		l.Limit = int(*p.PageSize)
	}
	if maxPage > 0 {
		l.Limit = min(l.Limit, maxPage)
	}
	if p.PageToken != nil && *p.PageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*p.PageToken)
		after := string(raw)
		if err != nil || !strings.HasPrefix(after, strings.TrimSuffix(l.Path, "/")+"/") || after == l.Path {
			return l, invalid("pageToken: not a continuation token of this listing")
		}
		l.After = after
	}
	return l, nil
}

// MakeDir creates a directory (with parents: like mkdir -p).
func (h *handlers) MakeDir(ctx context.Context, req noxapi.MakeDirRequestObject) (noxapi.MakeDirResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	m := driver.MakeDirRequest{Parents: req.Body.Parents != nil && *req.Body.Parents}
	if m.Path, err = resolvePath("path", req.Body.Path); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if m.Mode, err = parseMode("mode", req.Body.Mode, 0o755); err != nil {
		return h.errorFor(ctx, err), nil
	}
	fi, err := files.MakeDir(ctx, req.SessionID, m)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.MakeDir200JSONResponse(fileInfo(fi)), nil
}

// RemovePath removes a file, link or directory. / and /workspace
// themselves are refused (their contents can be removed).
func (h *handlers) RemovePath(ctx context.Context, req noxapi.RemovePathRequestObject) (noxapi.RemovePathResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	p, err := resolvePath("path", req.Body.Path)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if p == "/" || p == api.Workspace {
		return h.errorFor(ctx, invalid("path: %s itself cannot be removed (its contents can)", p)), nil
	}
	if err := files.Remove(ctx, req.SessionID, p, req.Body.Recursive != nil && *req.Body.Recursive); err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.RemovePath204Response{}, nil
}

// MovePath renames src to dst.
func (h *handlers) MovePath(ctx context.Context, req noxapi.MovePathRequestObject) (noxapi.MovePathResponseObject, error) {
	files, err := h.filesFor(req.SessionID)
	if err != nil {
		return h.fileErr(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	m := driver.MoveRequest{Overwrite: req.Body.Overwrite != nil && *req.Body.Overwrite}
	if m.Src, err = resolvePath("src", req.Body.Src); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if m.Dst, err = resolvePath("dst", req.Body.Dst); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if m.Src == "/" || m.Src == api.Workspace {
		return h.errorFor(ctx, invalid("src: %s itself cannot be moved", m.Src)), nil
	}
	if strings.HasPrefix(m.Dst, m.Src+"/") {
		return h.errorFor(ctx, invalid("dst: %q lies inside src %q (a directory cannot move into itself)", m.Dst, m.Src)), nil
	}
	fi, err := files.Move(ctx, req.SessionID, m)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.MovePath200JSONResponse(fileInfo(fi)), nil
}

// writtenFile answers a write: 201 when the file was created, 200 when
// replaced, with its ETag.
type writtenFile struct {
	info    noxapi.FileInfo
	etag    string
	created bool
}

// VisitWriteFileResponse writes the answer.
func (wf writtenFile) VisitWriteFileResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	if wf.etag != "" {
		w.Header().Set("ETag", wf.etag)
	}
	status := http.StatusOK
	if wf.created {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(wf.info)
}
