package diskquota

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// Fake is the test double of Images: Create writes an empty image file
// and makes mnt a plain directory, so a store can be tested without root;
// nothing is enforced. It records the mounts it holds.
type Fake struct {
	// CreateErr, when set, is the error of every Create.
	CreateErr error

	mu      sync.Mutex
	mounted map[string]bool
}

var _ Disks = (*Fake)(nil)

// Mechanism implements Disks.
func (f *Fake) Mechanism() string { return "kernel quota: per-sandbox image (test double)" }

// Create implements Disks.
func (f *Fake) Create(_ context.Context, img, mnt string, size int64) error {
	if f.CreateErr != nil {
		return f.CreateErr
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	if err := os.MkdirAll(mnt, 0o711); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mounted == nil {
		f.mounted = map[string]bool{}
	}
	f.mounted[mnt] = true
	return nil
}

// Mount implements Disks.
func (f *Fake) Mount(_ context.Context, img, mnt string) error {
	if _, err := os.Stat(img); err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mounted == nil {
		f.mounted = map[string]bool{}
	}
	f.mounted[mnt] = true
	return nil
}

// Unmount implements Disks.
func (f *Fake) Unmount(mnt string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, mnt)
	return nil
}

// Mounts returns how many file systems are mounted.
func (f *Fake) Mounts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mounted)
}
