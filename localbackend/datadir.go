package localbackend

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// The layout of the data directory (see the package documentation):
// lock, meta/<key>.json, sandboxes/<key>/{workspace,upload}, runtime/.

// sandboxKey is the opaque host-side name of a session id's state.
func sandboxKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func (s *store) metaPath(key string) string {
	return filepath.Join(s.dataDir, "meta", key+".json")
}

// boxDir is the host directory holding a sandbox's workspace and upload staging area.
func (s *store) boxDir(key string) string { return filepath.Join(s.dataDir, "sandboxes", key) }

// workspacePath is the host directory of a sandbox's workspace: on its
// image when it has one.
func (s *store) workspacePath(key string) string {
	if s.onImage(key) {
		return filepath.Join(s.fsPath(key), "workspace")
	}
	return filepath.Join(s.boxDir(key), "workspace")
}

// makeBoxDirs creates a sandbox's directory (0711) and workspace (0700;
// the runtime gives it to the sandbox's uid).
func (s *store) makeBoxDirs(key string) error {
	if err := os.MkdirAll(s.boxDir(key), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(s.workspacePath(key), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// lockDataDir creates the data directory and takes its exclusive lock, so
// that two servers never share it. Directories leading to workspaces are
// searchable but not listable (0711): tiers without a mount namespace reach
// the workspace by its host path under the sandbox's uid.
func lockDataDir(dir string) (*os.File, error) {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o711}, {filepath.Join(dir, "meta"), 0o700}, {filepath.Join(dir, "sandboxes"), 0o711}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another nox server: %w", dir, ErrDataDirLocked)
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	return lock, nil
}

func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// unlock releases the data directory's lock.
func (s *store) unlock() {
	if s.lock != nil {
		unlockFile(s.lock)
		s.lock = nil
	}
}

// checkDataDirReachable fails when the tier runs commands under per-sandbox
// host uids that reach /workspace by its host path (landlock and
// none-unsafe, as root) and a parent of dataDir is not searchable by them:
// every exec would fail with "working directory does not exist". The
// directories under dataDir are the backend's own and made 0711.
func checkDataDirReachable(dataDir string, tier sandbox.Tier, root bool) error {
	if !root || (tier != sandbox.TierLandlock && tier != sandbox.TierNoneUnsafe) {
		return nil
	}
	dir, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("data dir %s: its parent %s (mode %04o) is not searchable by the sandboxes' uids, which reach /workspace by its host path with the %s tier: use a data dir whose parents are (e.g. /var/lib/nox) or run chmod o+x %s", dataDir, d, fi.Mode().Perm(), tier, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
