package localbackend

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/driver"
)

// maxLinkFollows bounds the links one path resolution follows (the
// kernel's own bound, ELOOP beyond).
const maxLinkFollows = 40

// wsRoot is an open workspace: the files API resolves every path from
// its descriptor, one component at a time with openat and O_NOFOLLOW,
// never through a host path. Links are followed by hand, and only while
// they stay inside the workspace: a relative target from the directory
// holding the link, an absolute one only when it names /workspace or a
// path below it (the sandbox's own view of it). A link leading anywhere
// else, or ".." above the workspace, is an ErrInvalid error naming the
// sandbox path.
type wsRoot struct {
	fd int // O_PATH|O_DIRECTORY
}

// openWorkspace opens the host directory dir as a wsRoot.
func openWorkspace(dir string) (*wsRoot, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	return &wsRoot{fd: fd}, nil
}

// Close releases the workspace's descriptor.
func (r *wsRoot) Close() error { return unix.Close(r.fd) }

// resolveOpts says how resolve treats a path.
type resolveOpts struct {
	// follow resolves a final link too (inside the workspace only).
	follow bool
	// mkdir creates missing parent directories (0755), owned by owner.
	mkdir bool
	owner *fileOwnerIDs
}

// splitRel splits a path relative to the workspace into its components,
// without empty and "." ones.
func splitRel(rel string) []string {
	var out []string
	for c := range strings.SplitSeq(rel, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks rel (relative to the workspace, as workspaceRel returns
// it) and returns an O_PATH descriptor of the directory holding its last
// element, and that element's name: "." when rel resolves to a directory
// as a whole (the workspace itself, or a final link to a directory with
// follow). The caller closes dirfd. sp is the sandbox path, for errors.
func (r *wsRoot) resolve(sp, rel string, o resolveOpts) (dirfd int, name string, err error) {
	var stack []int // directories below the workspace, the deepest last
	defer func() {
		for _, fd := range stack {
			_ = unix.Close(fd)
		}
	}()
	cur := func() int {
		if len(stack) == 0 {
			return r.fd
		}
		return stack[len(stack)-1]
	}
	comps := splitRel(rel)
	links := 0
	// follow queues the target of the link at name in cur() in front of
	// comps.
	follow := func(c string, rest []string) ([]string, error) {
		target, err := readlinkat(cur(), c)
		if err != nil {
			return nil, err
		}
		if links++; links > maxLinkFollows {
			return nil, fmt.Errorf("path %q: too many levels of links: %w", sp, ErrInvalid)
		}
		if path.IsAbs(target) {
			t := path.Clean(target)
			in, ok := strings.CutPrefix(t, workspaceDir)
			if !ok || in != "" && in[0] != '/' {
				return nil, escapeError(sp)
			}
			for _, fd := range stack {
				_ = unix.Close(fd)
			}
			stack = stack[:0]
			return append(splitRel(in), rest...), nil
		}
		return append(splitRel(target), rest...), nil
	}
	for len(comps) > 0 {
		c, rest := comps[0], comps[1:]
		last := len(rest) == 0
		if c == ".." {
			if len(stack) == 0 {
				return -1, "", escapeError(sp)
			}
			_ = unix.Close(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			comps = rest
			continue
		}
		if last {
			if !o.follow {
				fd, err := r.take(&stack)
				return fd, c, err
			}
			var st unix.Stat_t
			if err := unix.Fstatat(cur(), c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
				fd, err := r.take(&stack) // missing or not a link: the caller's concern
				return fd, c, err
			}
			if comps, err = follow(c, rest); err != nil {
				return -1, "", err
			}
			continue
		}
		fd, err := unix.Openat(cur(), c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			if len(stack) >= maxWalkDepth {
				_ = unix.Close(fd)
				return -1, "", fmt.Errorf("path %q: nested deeper than %d directories: %w", sp, maxWalkDepth, ErrInvalid)
			}
			stack = append(stack, fd)
			comps = rest
		case errors.Is(err, unix.ENOENT) && o.mkdir:
			if links++; links > maxLinkFollows { // removed as fast as made
				return -1, "", pathError(sp, err)
			}
			if err := mkdirOwned(cur(), c, 0o755, o.owner); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, "", pathError(sp, err)
			}
		case errors.Is(err, unix.ENOENT):
			return -1, "", fmt.Errorf("path %q: a parent directory does not exist: %w", sp, ErrNotFound)
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			next, lerr := follow(c, rest)
			if errors.Is(lerr, unix.EINVAL) {
				return -1, "", fmt.Errorf("path %q: a parent is not a directory: %w", sp, driver.ErrConflict)
			}
			if lerr != nil {
				return -1, "", pathError(sp, lerr)
			}
			comps = next
		default:
			return -1, "", pathError(sp, err)
		}
	}
	fd, err := r.take(&stack)
	return fd, ".", err
}

// take returns the deepest directory of stack, removed from it (a
// duplicate of the workspace's descriptor when stack is empty).
func (r *wsRoot) take(stack *[]int) (int, error) {
	s := *stack
	if len(s) == 0 {
		fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open workspace: %w", err)
		}
		return fd, nil
	}
	fd := s[len(s)-1]
	*stack = s[:len(s)-1]
	return fd, nil
}

// readlinkat returns the target of the link name in dirfd (EINVAL when it
// is not a link).
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// mkdirOwned makes the directory name in dirfd with mode (the umask not
// applied) owned by owner (nil: the server's user).
func mkdirOwned(dirfd int, name string, mode uint32, owner *fileOwnerIDs) error {
	if err := unix.Mkdirat(dirfd, name, mode); err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if owner != nil {
		if err := unix.Fchown(fd, owner.uid, owner.gid); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, mode)
}

// escapeError is the error of a path that leads out of the workspace.
func escapeError(sp string) error {
	return fmt.Errorf("path %q leads out of %s (through a link or ..); the files API reaches only %s: %w", sp, workspaceDir, workspaceDir, ErrInvalid)
}

// pathError turns a system call's error about the sandbox path sp into
// the error category it belongs to, naming sp and no host path.
func pathError(sp string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err // already one of ours
	}
	switch errno {
	case unix.ENOENT:
		return fmt.Errorf("path %q: not found: %w", sp, ErrNotFound)
	case unix.ENOTDIR:
		return fmt.Errorf("path %q: not a directory: %w", sp, driver.ErrConflict)
	case unix.EISDIR:
		return fmt.Errorf("path %q: is a directory: %w", sp, driver.ErrConflict)
	case unix.EEXIST:
		return fmt.Errorf("path %q: already exists: %w", sp, driver.ErrConflict)
	case unix.ENOTEMPTY:
		return fmt.Errorf("path %q: directory not empty: %w", sp, driver.ErrConflict)
	case unix.ENOSPC, unix.EDQUOT:
		return fmt.Errorf("path %q: no space left in the sandbox's storage: delete files first: %w", sp, driver.ErrInsufficientStorage)
	case unix.ELOOP:
		return fmt.Errorf("path %q: too many levels of links: %w", sp, ErrInvalid)
	case unix.ENAMETOOLONG:
		return fmt.Errorf("path %q: a name is too long: %w", sp, ErrInvalid)
	case unix.EXDEV:
		return fmt.Errorf("path %q: cannot be moved across file systems: %w", sp, driver.ErrConflict)
	}
	return fmt.Errorf("path %q: %s", sp, errno.Error())
}
