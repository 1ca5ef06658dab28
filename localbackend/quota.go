package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/noxrunner/nox/internal/quantity"
	"github.com/noxrunner/nox/localbackend/internal/diskquota"
)

// Values of Config.StorageEnforcement.
const (
	// StorageEnforcementAuto: a per-sandbox ext4 image where the host
	// allows it (root, loop devices, mkfs.ext4), else monitoring.
	StorageEnforcementAuto = "auto"
	// StorageEnforcementMonitor: always monitoring.
	StorageEnforcementMonitor = "monitor"
)

// The layout of a sandbox whose storage is an image (see the package
// documentation): sandboxes/<key>/disk.img mounted on sandboxes/<key>/fs,
// which holds workspace/ (/workspace), tmp/ (/tmp) and .staging/ (uploads
// in progress), all on the one file system the limit is the size of.
const (
	imageName   = "disk.img"
	fsName      = "fs"
	stagingName = ".staging"
	tmpName     = "tmp"
)

// probeDisks returns the per-sandbox images when cfg asks for them and
// the host allows them, else nil (monitoring), logging why.
func probeDisks(cfg Config) diskquota.Disks {
	if cfg.StorageEnforcement == StorageEnforcementMonitor {
		return nil
	}
	x, err := diskquota.Probe(context.Background(), filepath.Join(cfg.DataDir, "sandboxes"))
	if err != nil {
		cfg.Logger.Info("ephemeral storage falls back to monitoring", "reason", err)
		return nil
	}
	return x
}

func (s *store) imagePath(key string) string { return filepath.Join(s.boxDir(key), imageName) }
func (s *store) fsPath(key string) string    { return filepath.Join(s.boxDir(key), fsName) }

// onImage reports whether sandbox key's storage is an image.
func (s *store) onImage(key string) bool {
	s.imgMu.Lock()
	defer s.imgMu.Unlock()
	return s.imaged[key]
}

func (s *store) setOnImage(key string, on bool) {
	s.imgMu.Lock()
	defer s.imgMu.Unlock()
	if on {
		s.imaged[key] = true
	} else {
		delete(s.imaged, key)
	}
}

// makeBoxFS gives a new sandbox of storage limit size its image: created,
// mounted and laid out. Without images, or without a limit, the sandbox
// gets plain directories (makeBoxDirs) watched by the monitor.
func (s *store) makeBoxFS(ctx context.Context, key string, size int64) error {
	if s.disks == nil || size <= 0 {
		return s.makeBoxDirs(key)
	}
	if err := os.MkdirAll(s.boxDir(key), 0o711); err != nil {
		return err
	}
	if err := s.disks.Create(ctx, s.imagePath(key), s.fsPath(key), size); err != nil {
		// Out of loop devices, say: the sandbox still gets its limit,
		// enforced by the monitor.
		s.log.Error("per-sandbox image failed; the sandbox's storage falls back to monitoring", "key", key, "err", err)
		return s.makeBoxDirs(key)
	}
	s.setOnImage(key, true)
	if err := s.layoutFS(key); err != nil {
		_ = s.disks.Unmount(s.fsPath(key))
		s.setOnImage(key, false)
		return err
	}
	return nil
}

// layoutFS creates the directories of a mounted image: the workspace
// (0700; the runtime gives it to the sandbox's uid), /tmp (1777) and the
// staging area (0700, root's: never visible inside the sandbox).
func (s *store) layoutFS(key string) error {
	root := s.fsPath(key)
	if err := os.Chmod(root, 0o711); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{"workspace", 0o700}, {stagingName, 0o700}, {tmpName, 0o1777}} {
		p := filepath.Join(root, d.name)
		if err := os.Mkdir(p, d.mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(root, "lost+found")) // no fsck ever looks
	return nil
}

// mountBoxFS mounts sandbox key's image when it has one (at load: a server
// that crashed may have left it mounted, which is fine) and reports
// whether it has one.
func (s *store) mountBoxFS(key string) (bool, error) {
	if _, err := os.Lstat(s.imagePath(key)); errors.Is(err, fs.ErrNotExist) {
		return false, s.makeBoxDirs(key)
	}
	if s.disks == nil {
		return true, fmt.Errorf("its storage is an ext4 image, which this server cannot mount (not root, no loop devices or StorageEnforcement %q)", StorageEnforcementMonitor)
	}
	if err := s.disks.Mount(context.Background(), s.imagePath(key), s.fsPath(key)); err != nil {
		return true, err
	}
	s.setOnImage(key, true)
	if err := s.layoutFS(key); err != nil {
		return true, err
	}
	// Staging areas of uploads a crash interrupted.
	_ = os.RemoveAll(filepath.Join(s.fsPath(key), stagingName))
	return true, os.Mkdir(filepath.Join(s.fsPath(key), stagingName), 0o700)
}

// removeBoxDir unmounts sandbox key's image, if any, and removes its
// directory (with the image).
func (s *store) removeBoxDir(key string) error {
	if s.onImage(key) || diskquota.Mounted(s.fsPath(key)) {
		if s.disks == nil {
			return fmt.Errorf("sandbox directory %s: its image is mounted and this server cannot unmount it", key)
		}
		if err := s.disks.Unmount(s.fsPath(key)); err != nil {
			return err // never descend into a mounted image
		}
		s.setOnImage(key, false)
	}
	return os.RemoveAll(s.boxDir(key))
}

// unmountAll unmounts the image of every sandbox (Close).
func (s *store) unmountAll() error {
	s.imgMu.Lock()
	keys := make([]string, 0, len(s.imaged))
	for k := range s.imaged {
		keys = append(keys, k)
	}
	s.imgMu.Unlock()
	var errs []error
	for _, k := range keys {
		if err := s.disks.Unmount(s.fsPath(k)); err != nil {
			errs = append(errs, err)
		}
		s.setOnImage(k, false)
	}
	return errors.Join(errs...)
}

// freshTmp empties the /tmp of sandbox key (on its image) before its
// environment is built, as a tmpfs would be: links are removed, never
// followed.
func (s *store) freshTmp(key string) (string, error) {
	if !s.onImage(key) {
		return "", nil
	}
	tmp := filepath.Join(s.fsPath(key), tmpName)
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("empty /tmp: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("make /tmp: %w", err)
	}
	return tmp, os.Chmod(tmp, 0o1777)
}

// stagingDir is the directory holding sandbox key's uploads in progress:
// on its image (charged against its limit, renamed into place
// atomically) or, without one, beside the workspace.
func (s *store) stagingDir(key string) string {
	if s.onImage(key) {
		return filepath.Join(s.fsPath(key), stagingName)
	}
	return filepath.Join(s.boxDir(key), "upload")
}

// isNoSpace reports a write that failed for want of space or inodes.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// noSpaceError is the error of an upload that ran out of the sandbox's
// storage (507): no host path in it.
func noSpaceError(limit int64) error {
	return fmt.Errorf("no space left in the sandbox's ephemeral storage (limit %s, shared by /workspace, /tmp and uploads in progress): delete files first: %w", quantity.FormatBytes(limit), ErrInsufficientStorage)
}

// kernelStorageNote is the info note on per-sandbox images.
func kernelStorageNote(mechanism string) string {
	return fmt.Sprintf("ephemeralStorage: enforced by the kernel (%s): /workspace, /tmp and uploads in progress share one ext4 file system the size of the limit, with one inode per %d KiB of it (at least %d); writes beyond it fail with ENOSPC inside the sandbox, uploads answer 507, and an idle sandbox costs nothing", mechanism, diskquota.InodeRatio>>10, diskquota.MinInodes)
}
