package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/internal/egress"
	"golang.org/x/sys/unix"
)

// hostSystemDirs returns the host directories a sandbox sees read-only when
// Spec.RootFS is empty (symlinks such as /bin -> usr/bin are recreated).
func hostSystemDirs() []string {
	return []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}
}

// reservedTop reports the top-level names the sandbox provides itself.
func reservedTop(name string) bool {
	switch name {
	case "workspace", "tmp", "proc", "dev", "sys":
		return true
	}
	return false
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// setupMounts builds the sandbox's root on a private tmpfs and pivots into
// it. It runs in the init, in the new mount namespace. ws and rootfs are
// detached mount trees from the server, or nil to bind the config's paths.
func setupMounts(c *initConfig, ws, rootfs *os.File) error {
	// Nothing may propagate back to the host; pivot_root also needs this.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return wrap("make / private", err)
	}
	var pinned []*os.File
	defer func() { closeFiles(pinned) }()
	wsPath, rootfsPath, err := pinSources(c, ws, rootfs, &pinned)
	if err != nil {
		return err
	}
	tmpPath := c.TmpHost
	if c.TmpHost != "" && c.tmpTree == nil {
		if tmpPath, err = pinPath(c.TmpHost, &pinned); err != nil {
			return err
		}
	}
	// The new root's mount point: any directory will do in our private
	// mount namespace, and /tmp exists and is reachable for every uid.
	const root = "/tmp"
	if err := unix.Mount("sandbox", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m,nr_inodes=4k"); err != nil {
		return wrap("root tmpfs", err)
	}
	if err := bindSystem(root, c, rootfs, rootfsPath); err != nil {
		return err
	}
	if err := attach(ws, wsPath, filepath.Join(root, "workspace"), false); err != nil {
		return err
	}
	if err := mountTmp(root, c, tmpPath); err != nil {
		return err
	}
	if err := mountProc(root); err != nil {
		return err
	}
	if err := setupDev(filepath.Join(root, "dev")); err != nil {
		return err
	}
	return pivotRoot(root)
}

// pinSources returns the paths to bind the workspace and RootFS from.
// Without detached trees it pins the config's paths before /tmp is
// covered (they may lie below it): mount then binds from /proc/self/fd.
// The pinned files are appended to pinned, for the caller to close.
func pinSources(c *initConfig, ws, rootfs *os.File, pinned *[]*os.File) (wsPath, rootfsPath string, err error) {
	pin := func(path string) (string, error) { return pinPath(path, pinned) }
	wsPath, rootfsPath = c.Workspace, c.RootFS
	if ws == nil {
		if wsPath, err = pin(wsPath); err != nil {
			return "", "", err
		}
	}
	if rootfs == nil && rootfsPath != "" {
		if rootfsPath, err = pin(rootfsPath); err != nil {
			return "", "", err
		}
	}
	return wsPath, rootfsPath, nil
}

// pinPath opens the directory path (O_PATH), appends it to pinned and
// returns its /proc/self/fd path, which mount can bind from.
func pinPath(path string, pinned *[]*os.File) (string, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", wrap("open "+path, err)
	}
	*pinned = append(*pinned, f)
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())), nil
}

// bindSystem fills root with read-only binds of the system directories:
// the top-level entries of RootFS (staged below root), or the host's
// system directories and generated /etc/passwd and /etc/group naming the
// sandbox user; and, in both cases, a generated /etc/resolv.conf naming
// the egress gateway's resolver (egress.ResolvConf: without a gateway,
// lookups fail at once, refused) and /etc/hosts naming localhost and the
// sandbox's hostname. The stage is gone when it returns: only the binds of its
// entries stay, so RootFS's own /proc, /sys, /tmp and the like never
// show.
func bindSystem(root string, c *initConfig, rootfs *os.File, rootfsPath string) (err error) {
	roBinds := hostSystemDirs()
	if rootfs != nil || c.RootFS != "" {
		// Stage the root filesystem, bind its entries, drop the stage.
		stage := filepath.Join(root, ".rootfs")
		if err := attach(rootfs, rootfsPath, stage, true); err != nil {
			return err
		}
		defer func() {
			if uerr := unix.Unmount(stage, unix.MNT_DETACH); uerr != nil && err == nil {
				err = wrap("unmount the root filesystem's stage", uerr)
			}
			if rerr := os.Remove(stage); rerr != nil && err == nil {
				err = wrap("remove the root filesystem's stage", rerr)
			}
		}()
		ents, err := os.ReadDir(stage)
		if err != nil {
			return wrap("read root filesystem", err)
		}
		roBinds = nil
		for _, e := range ents {
			roBinds = append(roBinds, filepath.Join(stage, e.Name()))
		}
	}
	for _, src := range roBinds {
		if err := bindTop(root, src); err != nil {
			return err
		}
	}
	files := map[string]string{"resolv.conf": egress.ResolvConf, "hosts": hostsFile(c.Hostname)}
	if rootfs == nil && c.RootFS == "" {
		files["passwd"], files["group"] = c.Passwd, c.Group
	}
	return overlayEtc(root, files)
}

// bindTop binds src read-only at root/<its name>, or recreates it there
// when it is a symlink. Missing sources, names the sandbox provides itself
// and files that are neither directories nor regular are skipped.
func bindTop(root, src string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return nil
	}
	base := filepath.Base(src)
	if reservedTop(base) {
		return nil
	}
	dst := filepath.Join(root, base)
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return wrap("readlink "+src, err)
		}
		return wrap("symlink "+src, os.Symlink(target, dst))
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil
	}
	return bindMount(src, dst, fi.IsDir(), true)
}

// mountTmp mounts the sandbox's private, size-limited /tmp: a tmpfs, or
// the host directory TmpHost (from tmpPath, its detached tree when there
// is one), which shares the workspace's quota.
func mountTmp(root string, c *initConfig, tmpPath string) error {
	tmp := filepath.Join(root, "tmp")
	if c.TmpHost != "" {
		return attach(c.tmpTree, tmpPath, tmp, false)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return wrap("mkdir /tmp", err)
	}
	return wrap("mount /tmp", unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("mode=1777,size=%d,nr_inodes=%d", c.TmpBytes, c.TmpInodes)))
}

// mountProc mounts the pid namespace's /proc, with the parts that reach
// the host's kernel bound read-only over themselves.
func mountProc(root string) error {
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		return wrap("mkdir /proc", err)
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return wrap("mount /proc", err)
	}
	unprivilegedPorts(proc)
	for _, p := range []string{"sys", "sysrq-trigger", "irq", "bus", "fs"} {
		p = filepath.Join(proc, p)
		if fi, err := os.Stat(p); err == nil {
			if err := bindMount(p, p, fi.IsDir(), true); err != nil {
				return err
			}
		}
	}
	return nil
}

// pivotRoot makes root the root, with pivot_root(".", ".") and a lazy
// unmount of the old root as runc does, and makes it read-only.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return wrap("chdir new root", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return wrap("pivot_root", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return wrap("unmount old root", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return wrap("chdir /", err)
	}
	return wrap("read-only /", unix.MountSetattr(-1, "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}))
}

// hostsFile is the sandbox's /etc/hosts: localhost, and its hostname on
// a loopback address (as Debian names a host without a fixed address)
// unless it holds characters that the file's syntax would misread.
func hostsFile(hostname string) string {
	h := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" && !strings.ContainsFunc(hostname, func(r rune) bool { return r <= ' ' || r == '#' || r > '~' }) {
		h += "127.0.1.1\t" + hostname + "\n"
	}
	return h
}

// overlayEtc binds files with the given contents read-only over
// root/etc/<name> (what a symlink there leads to, within root: see
// etcTarget). Each is written to the root tmpfs, bound, and unlinked:
// only the bind mount keeps it. An empty content, or a name root lacks,
// is left alone (the read-only /etc has no room for a new file).
func overlayEtc(root string, files map[string]string) error {
	for name, content := range files {
		if content == "" {
			continue
		}
		dst, err := etcTarget(root, "/etc/"+name)
		if err != nil || dst == "" {
			return err
		}
		src := filepath.Join(root, ".nox-"+name)
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			return wrap("write "+name, err)
		}
		err = bindMount(src, dst, false, true)
		_ = os.Remove(src)
		if err != nil {
			return err
		}
	}
	return nil
}

// etcTarget returns the file of the new root to bind over for path, as
// a path below root: path itself when it is a regular file; when it is a
// symlink (/etc/resolv.conf often is), the regular file it leads to,
// resolved within root (openat2 RESOLVE_IN_ROOT); when that is missing
// and the link points into a top-level directory the root lacks (the
// host's /run/systemd/resolve/stub-resolv.conf), a new empty file there
// on the root tmpfs. "" when there is nothing to cover.
func etcTarget(root, path string) (string, error) {
	fi, err := os.Lstat(root + path)
	switch {
	case err != nil:
		return "", nil
	case fi.Mode().IsRegular():
		return root + path, nil
	case fi.Mode()&os.ModeSymlink == 0:
		return "", nil
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", wrap("open the new root", err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err == unix.ENOENT {
		return danglingTarget(root, path)
	}
	if err != nil {
		return "", nil // a loop or the like: leave it alone
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", nil
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !strings.HasPrefix(real, root+"/") {
		return "", nil
	}
	return real, nil
}

// danglingTarget creates, on the root tmpfs, the file that the symlink
// root+path points to, when the target lies in a top-level directory
// the root lacks: every directory on the way is then new, made here.
func danglingTarget(root, path string) (string, error) {
	link, err := os.Readlink(root + path)
	if err != nil {
		return "", nil
	}
	if !filepath.IsAbs(link) {
		link = filepath.Join(filepath.Dir(path), link)
	}
	link = filepath.Clean(link)
	top, _, _ := strings.Cut(strings.TrimPrefix(link, "/"), "/")
	if top == "" || top == link[1:] || reservedTop(top) {
		return "", nil // the root itself, or a file at the top
	}
	if _, err := os.Lstat(filepath.Join(root, top)); err == nil {
		return "", nil
	}
	dst := root + link
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", wrap("mkdir "+filepath.Dir(link), err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return "", wrap("create "+link, err)
	}
	f.Close()
	return dst, nil
}

// attach mounts a detached tree (or, without one, binds path) on dir.
func attach(tree *os.File, path, dir string, ro bool) error {
	if tree == nil {
		return bindMount(path, dir, true, ro)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return wrap("mkdir "+dir, err)
	}
	return wrap("attach "+path, unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH))
}

// detachedTree clones the mount tree at path (open_tree(2), needs root in
// our mount namespace) with nosuid, nodev and maybe rdonly set.
func detachedTree(path string, ro bool) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, fmt.Errorf("clone mount tree %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount_setattr %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// bindMount binds src on dst (created) and sets nosuid, nodev and maybe
// rdonly on the whole subtree with mount_setattr(2), which, unlike
// MS_REMOUNT, needs no restating of flags locked in a user namespace.
func bindMount(src, dst string, dir, ro bool) error {
	if dir {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return wrap("mkdir "+dst, err)
		}
	} else if _, err := os.Stat(dst); err != nil {
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return wrap("create "+dst, err)
		}
		f.Close()
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return wrap("bind "+src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if strings.HasPrefix(src, "/dev/") {
		attr.Attr_set &^= unix.MOUNT_ATTR_NODEV // device nodes must work
	}
	return wrap("mount_setattr "+dst, unix.MountSetattr(-1, dst, unix.AT_RECURSIVE, &attr))
}

// setupDev builds a minimal /dev: the harmless device nodes bound from
// the host, the usual symlinks, /dev/shm and a private devpts.
func setupDev(dev string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return wrap("mkdir /dev", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64"); err != nil {
		return wrap("mount /dev", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := bindMount("/dev/"+d, filepath.Join(dev, d), false, false); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return wrap("symlink /dev/"+name, err)
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		return wrap("mkdir /dev/shm", err)
	}
	if err := unix.Mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=16m,nr_inodes=1k"); err != nil {
		return wrap("mount /dev/shm", err)
	}
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return wrap("mkdir /dev/pts", err)
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		// Not essential: no pseudo-terminals then.
		_ = os.Remove(filepath.Join(dev, "ptmx"))
	}
	return nil
}

// loopbackUp brings up lo in the network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
