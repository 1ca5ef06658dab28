package sandbox

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/api"
	"golang.org/x/sys/unix"
)

// innerUID is the sandbox user as seen inside (TierNamespaces).
const innerUID = 1000

// registerUIDs registers the state directory in the host's uid registry
// (path, DefaultUIDRegistry when empty) and keeps its range.
func (m *Manager) registerUIDs(path string) error {
	if path == "" {
		path = DefaultUIDRegistry
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("uid registry %q is not an absolute path", path)
	}
	reg := hostUIDRegistry(path)
	r, err := reg.register(m.stateDir)
	if err != nil {
		return err
	}
	m.uidRange, m.registry = r, reg
	return nil
}

// allocUID picks the host uid of a sandbox when the server is root: a slot
// of the Manager's registered range derived from Spec.Key, so that a
// restarted server maps a workspace to the same owner (the next free one
// when two running keys collide).
func (m *Manager) allocUID(key string) (int, int) {
	if !m.root {
		return os.Getuid(), os.Getgid()
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	r := m.uidRange
	slot := int(h.Sum32() % uint32(r.Count))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < r.Count; i++ {
		uid := r.First + (slot+i)%r.Count
		if owner, used := m.uids[uid]; !used || owner == key {
			m.uids[uid] = key
			return uid, uid
		}
	}
	return r.First + slot, r.First + slot // all taken: share (never in practice)
}

// releaseUID frees uid when key still holds it.
func (m *Manager) releaseUID(uid int, key string) {
	m.mu.Lock()
	if m.uids[uid] == key {
		delete(m.uids, uid)
	}
	m.mu.Unlock()
}

// chownTree gives the workspace to the sandbox uid (when it is not already
// its owner: a full walk only after a change of uid).
func chownTree(dir string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// buildIDFiles builds the sandbox's /etc/passwd and /etc/group: the
// host's, without the entries of uid/gid innerUID or named "sandbox", plus
// "sandbox" (innerUID, home /workspace). Root and the host's system users
// keep their names for tools like ls -l.
func (m *Manager) buildIDFiles() error {
	gen := func(host, entry string, idField int) (string, error) {
		data, err := os.ReadFile(host)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Split(l, ":")
			if strings.TrimSpace(l) == "" || (len(f) > idField && (f[idField] == strconv.Itoa(innerUID) || f[0] == "sandbox")) {
				continue
			}
			b.WriteString(l + "\n")
		}
		b.WriteString(entry + "\n")
		if b.Len() > 256<<10 {
			return "", errors.New("too large to pass to the init")
		}
		return b.String(), nil
	}
	u := strconv.Itoa(innerUID)
	passwd, err := gen("/etc/passwd", "sandbox:x:"+u+":"+u+":sandbox:"+api.Workspace+":/bin/sh", 2)
	if err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	group, err := gen("/etc/group", "sandbox:x:"+u+":", 2)
	if err != nil {
		return fmt.Errorf("group: %w", err)
	}
	m.passwd, m.group = passwd, group
	return nil
}
