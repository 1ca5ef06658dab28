package localbackend

import "errors"

// Category errors returned (wrapped) by the store and the archive code; the
// HTTP layer maps them to status codes with errors.Is.
var (
	// ErrNotFound: the sandbox or a path does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a request field is invalid (400). The message names the field.
	ErrInvalid = errors.New("invalid argument")
	// ErrTooLarge: an upload exceeds a size, entry-count or storage limit (413).
	ErrTooLarge = errors.New("too large")
	// ErrBusy: the server is at its limit of concurrent commands (503).
	ErrBusy = errors.New("busy")
	// ErrUnavailable: the sandbox is being deleted or the backend is closed (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrDataDirLocked: New found Config.DataDir locked by another server
	// (another process, or another Backend in this one).
	ErrDataDirLocked = errors.New("data dir locked by another server")
)
