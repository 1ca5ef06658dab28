package sdk

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
)

// journal records every path an extraction creates under its root, so that
// a failed extraction can remove them and leave what was there before.
type journal struct {
	root    *os.Root
	created []string // relative to root, in the order of creation
}

// mkdirAll is root.MkdirAll that records the directories it creates.
// Existing components are followed within the root (a link planted there
// that leads out of it is an escape error).
func (j *journal) mkdirAll(name string) error {
	if name == "." {
		return nil
	}
	var missing []string
	for p := name; p != "."; p = path.Dir(p) {
		fi, err := j.root.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%q is not a directory", p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
	}
	for _, p := range slices.Backward(missing) {
		if err := j.root.Mkdir(p, 0o755); err != nil {
			return err
		}
		j.created = append(j.created, p)
	}
	return nil
}

// tempName returns an unused name in the directory of name for an entry
// written before it is renamed into place.
func (j *journal) tempName(name string) string {
	for {
		t := path.Join(path.Dir(name), fmt.Sprintf(".nox-extract-%08x", rand.Uint32()))
		if _, err := j.root.Lstat(t); errors.Is(err, fs.ErrNotExist) {
			return t
		}
	}
}

// place renames the finished entry tmp to name, atomically replacing a
// file or link there; an existing directory is not replaced. It records
// name when nothing was there before.
func (j *journal) place(tmp, name string) error {
	existed := true
	switch fi, err := j.root.Lstat(name); {
	case errors.Is(err, fs.ErrNotExist):
		existed = false
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("replaces a directory")
	}
	if err := j.root.Rename(tmp, name); err != nil {
		return err
	}
	if !existed {
		j.created = append(j.created, name)
	}
	return nil
}

// undo removes what the extraction created, newest first. A directory
// that is no longer empty (something else wrote into it) stays.
func (j *journal) undo() {
	for _, p := range slices.Backward(j.created) {
		_ = j.root.Remove(p)
	}
	j.created = nil
}

// makeDir creates dir and its missing parents, and returns those it
// created, outermost first.
func makeDir(dir string) ([]string, error) {
	var missing []string
	for p := filepath.Clean(dir); ; {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	slices.Reverse(missing)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

// removeDirs removes the directories makeDir created, innermost first,
// where they are empty.
func removeDirs(dirs []string) {
	for _, d := range slices.Backward(dirs) {
		_ = os.Remove(d)
	}
}
