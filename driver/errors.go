package driver

import "errors"

// The error categories a Backend returns (wrapped, with a message naming
// the field or path); the server maps each to its status code.
var (
	// ErrNotFound: the sandbox or a path does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument: a request field is invalid (400).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: an upload or a download exceeds a size, entry-count or
	// storage limit (413).
	ErrTooLarge = errors.New("too large")
	// ErrInsufficientStorage: the sandbox's storage is full, an upload
	// does not fit in it (507).
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrConflict: a path is of the wrong type for the operation, exists
	// where it must not, or is a non-empty directory (409).
	ErrConflict = errors.New("conflict")
	// ErrPreconditionFailed: a conditional write's If-Match or
	// If-None-Match did not hold (412).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrUnreachable: nothing accepts connections on a port inside the
	// sandbox (502).
	ErrUnreachable = errors.New("unreachable")
	// ErrBusy: the backend is at its limit of concurrent commands (503 with
	// Retry-After).
	ErrBusy = errors.New("busy")
	// ErrUnavailable: the sandbox is being deleted or the backend is
	// closed (503 with Retry-After).
	ErrUnavailable = errors.New("unavailable")
)
