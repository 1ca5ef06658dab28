package server

import (
	"context"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

// noFiles is the answer of a files operation on a backend without the
// extension; withoutExtensions answers such requests before they reach a
// handler, so this is only a safety net.
var noFiles = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the files extension"}

// ReadFile streams one file.
func (h *handlers) ReadFile(ctx context.Context, req noxapi.ReadFileRequestObject) (noxapi.ReadFileResponseObject, error) {
	return noFiles, nil
}

// WriteFile writes one file from the raw request body.
func (h *handlers) WriteFile(ctx context.Context, req noxapi.WriteFileRequestObject) (noxapi.WriteFileResponseObject, error) {
	return noFiles, nil
}

// StatFile describes one path.
func (h *handlers) StatFile(ctx context.Context, req noxapi.StatFileRequestObject) (noxapi.StatFileResponseObject, error) {
	return noFiles, nil
}

// ListDir lists a directory a page at a time.
func (h *handlers) ListDir(ctx context.Context, req noxapi.ListDirRequestObject) (noxapi.ListDirResponseObject, error) {
	return noFiles, nil
}

// MakeDir creates a directory.
func (h *handlers) MakeDir(ctx context.Context, req noxapi.MakeDirRequestObject) (noxapi.MakeDirResponseObject, error) {
	return noFiles, nil
}

// RemovePath removes a file or directory.
func (h *handlers) RemovePath(ctx context.Context, req noxapi.RemovePathRequestObject) (noxapi.RemovePathResponseObject, error) {
	return noFiles, nil
}

// MovePath renames a path.
func (h *handlers) MovePath(ctx context.Context, req noxapi.MovePathRequestObject) (noxapi.MovePathResponseObject, error) {
	return noFiles, nil
}

// WatchPath streams the changes below a directory.
func (h *handlers) WatchPath(ctx context.Context, req noxapi.WatchPathRequestObject) (noxapi.WatchPathResponseObject, error) {
	return noFiles, nil
}
