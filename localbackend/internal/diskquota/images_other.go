//go:build !linux

package diskquota

import (
	"context"
	"errors"
)

// ErrUnsupported reports that per-sandbox images cannot work on this host.
var ErrUnsupported = errors.New("per-sandbox ext4 images unavailable")

// Images is the real Disks; it exists on Linux only.
type Images struct{ Disks }

// Probe always fails off Linux.
func Probe(context.Context, string) (*Images, error) {
	return nil, errors.Join(ErrUnsupported, errors.New("not Linux"))
}

// Mounted reports false off Linux.
func Mounted(string) bool { return false }
