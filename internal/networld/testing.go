package networld

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// New starts a world for the test t and closes it at the end of the
// test. It skips t when the process is not root or the host has no
// network namespaces.
func New(t testing.TB) *World {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("networld needs root")
	}
	w, err := Start()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
		t.Skipf("no network namespace: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("networld: %v", err)
		}
	})
	return w
}
