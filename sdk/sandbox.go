package sdk

import (
	"context"
	"io"
)

// Sandbox is a handle on one session id of a Client. Its methods are the
// Client's methods with the id filled in. It holds no state of its own, is
// cheap to make and safe for concurrent use.
type Sandbox struct {
	c  *Client
	id string
}

// Sandbox returns a handle on the sandbox of session id id. It makes no
// request: call Create to create the sandbox.
func (c *Client) Sandbox(id string) *Sandbox { return &Sandbox{c: c, id: id} }

// ID returns the sandbox's session id.
func (s *Sandbox) ID() string { return s.id }

// Client returns the Client the handle uses.
func (s *Sandbox) Client() *Client { return s.c }

// Create creates or ensures the sandbox; see Client.Create.
func (s *Sandbox) Create(ctx context.Context, opts CreateOptions) (*CreateResult, error) {
	return s.c.Create(ctx, s.id, opts)
}

// Touch extends the sandbox's TTL; see Client.Touch.
func (s *Sandbox) Touch(ctx context.Context) (*TouchResult, error) { return s.c.Touch(ctx, s.id) }

// Get returns the sandbox's status; see Client.Get.
func (s *Sandbox) Get(ctx context.Context) (*SandboxStatus, error) { return s.c.Get(ctx, s.id) }

// Delete deletes the sandbox; see Client.Delete.
func (s *Sandbox) Delete(ctx context.Context) error { return s.c.Delete(ctx, s.id) }

// WaitReady waits until the sandbox runs commands; see Client.WaitReady.
func (s *Sandbox) WaitReady(ctx context.Context, opts WaitOptions) error {
	return s.c.WaitReady(ctx, s.id, opts)
}

// Exec runs a command; see Client.Exec.
func (s *Sandbox) Exec(ctx context.Context, req ExecRequest) (*ExecResult, error) {
	return s.c.Exec(ctx, s.id, req)
}

// Shell runs a shell script; see Client.Shell.
func (s *Sandbox) Shell(ctx context.Context, script string, opts ShellOptions) (*ExecResult, error) {
	return s.c.Shell(ctx, s.id, script, opts)
}

// ExecStream runs a command and streams its output; see Client.ExecStream.
func (s *Sandbox) ExecStream(ctx context.Context, req ExecRequest, opts StreamOptions) (*ExecResult, error) {
	return s.c.ExecStream(ctx, s.id, req, opts)
}

// Upload uploads a tar archive; see Client.Upload.
func (s *Sandbox) Upload(ctx context.Context, dest string, tarStream io.Reader) (*UploadResult, error) {
	return s.c.Upload(ctx, s.id, dest, tarStream)
}

// UploadArchive uploads the archive write writes; see
// Client.UploadArchive.
func (s *Sandbox) UploadArchive(ctx context.Context, dest string, write func(w io.Writer) error) (*UploadResult, error) {
	return s.c.UploadArchive(ctx, s.id, dest, write)
}

// UploadFiles uploads in-memory files; see Client.UploadFiles.
func (s *Sandbox) UploadFiles(ctx context.Context, dest string, files map[string][]byte) (*UploadResult, error) {
	return s.c.UploadFiles(ctx, s.id, dest, files)
}

// UploadDir uploads a local directory; see Client.UploadDir.
func (s *Sandbox) UploadDir(ctx context.Context, dest, localDir string) (*UploadResult, error) {
	return s.c.UploadDir(ctx, s.id, dest, localDir)
}

// Download streams a gzip tar of src; see Client.Download.
func (s *Sandbox) Download(ctx context.Context, src string) (io.ReadCloser, error) {
	return s.c.Download(ctx, s.id, src)
}

// DownloadTo downloads src and extracts it into localDir; see
// Client.DownloadTo.
func (s *Sandbox) DownloadTo(ctx context.Context, src, localDir string) error {
	return s.c.DownloadTo(ctx, s.id, src, localDir)
}

// DownloadToWith downloads src and extracts it into localDir within the
// caps of opts; see Client.DownloadToWith.
func (s *Sandbox) DownloadToWith(ctx context.Context, src, localDir string, opts ExtractOptions) error {
	return s.c.DownloadToWith(ctx, s.id, src, localDir, opts)
}
