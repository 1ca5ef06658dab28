//go:build !linux

package networld

import (
	"errors"
	"net/netip"
)

// netns: network namespaces exist only on Linux.
type netns struct{ path string }

func newNetns([]netip.Prefix) (netns, error) {
	return netns{}, errors.New("network namespaces exist only on Linux")
}

func (netns) close() error { return nil }
