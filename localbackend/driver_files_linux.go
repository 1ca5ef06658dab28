package localbackend

import (
	"context"
	"github.com/noxrunner/nox/api"
	"io"

	"github.com/noxrunner/nox/driver"
)

// The local backend implements the files.ops and files.watch extensions
// on /workspace.
var (
	_ driver.Files   = driverBackend{}
	_ driver.Watcher = driverBackend{}
)

// OpenFile opens the regular file path of sandbox id for reading.
func (d driverBackend) OpenFile(ctx context.Context, id, path string) (driver.File, error) {
	return d.b.store.openFile(ctx, id, path)
}

// WriteFile writes content to path atomically.
func (d driverBackend) WriteFile(ctx context.Context, id string, req driver.WriteFileRequest, content io.Reader) (driver.FileInfo, bool, error) {
	return d.b.store.writeFile(ctx, id, req, content)
}

// Stat describes path without following a final link.
func (d driverBackend) Stat(ctx context.Context, id, path string) (driver.FileInfo, error) {
	return d.b.store.stat(ctx, id, path)
}

// ListDir returns a page of the entries below req.Path.
func (d driverBackend) ListDir(ctx context.Context, id string, req driver.ListDirRequest) ([]driver.FileInfo, bool, error) {
	return d.b.store.listDir(ctx, id, req)
}

// MakeDir creates a directory.
func (d driverBackend) MakeDir(ctx context.Context, id string, req driver.MakeDirRequest) (driver.FileInfo, error) {
	return d.b.store.makeDir(ctx, id, req)
}

// Remove removes a path.
func (d driverBackend) Remove(ctx context.Context, id, path string, recursive bool) error {
	return d.b.store.removePath(ctx, id, path, recursive)
}

// Move renames req.Src to req.Dst.
func (d driverBackend) Move(ctx context.Context, id string, req driver.MoveRequest) (driver.FileInfo, error) {
	return d.b.store.movePath(ctx, id, req)
}

// Watch starts watching a directory.
func (d driverBackend) Watch(ctx context.Context, id string, req driver.WatchRequest) (driver.Watch, error) {
	return d.b.store.watch(ctx, id, req)
}

// fileExtensions lists the files extensions the backend offers.
func fileExtensions() []string { return []string{api.ExtFilesOps, api.ExtFilesWatch} }
