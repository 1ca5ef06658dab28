package localbackend

import (
	"errors"

	"github.com/noxrunner/nox/driver"
)

// Category errors returned (wrapped) by the backend: the driver's
// categories under the names this package has always used. The server
// layer maps them to status codes with errors.Is.
var (
	// ErrNotFound: the sandbox or a path does not exist (404).
	ErrNotFound = driver.ErrNotFound
	// ErrInvalid: a request field is invalid (400). The message names the field.
	ErrInvalid = driver.ErrInvalidArgument
	// ErrTooLarge: an upload or a download exceeds a size, entry-count or
	// storage limit (413).
	ErrTooLarge = driver.ErrTooLarge
	// ErrInsufficientStorage: an upload ran out of the sandbox's
	// ephemeral storage (507).
	ErrInsufficientStorage = driver.ErrInsufficientStorage
	// ErrBusy: the backend is at its limit of concurrent commands (503).
	ErrBusy = driver.ErrBusy
	// ErrUnavailable: the sandbox is being deleted or the backend is closed (503).
	ErrUnavailable = driver.ErrUnavailable
	// ErrDataDirLocked: New found Config.DataDir locked by another server
	// (another process, or another Backend in this one).
	ErrDataDirLocked = errors.New("data dir locked by another server")
)
