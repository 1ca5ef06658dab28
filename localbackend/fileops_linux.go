package localbackend

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// fileOp is one operation of the files API: it holds its sandbox (the
// reaper keeps away, and it counts as activity, like an upload) and its
// open workspace until end.
type fileOp struct {
	s    *store
	b    *box
	root *wsRoot
}

// beginFiles acquires sandbox id for a files operation and opens its
// workspace.
func (s *store) beginFiles(ctx context.Context, id string) (*fileOp, error) {
	b, _, err := s.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	root, err := openWorkspace(s.workspacePath(b.meta.Key))
	if err != nil {
		s.release(b, false)
		if s.deleted(b) {
			return nil, notFound(id)
		}
		return nil, err
	}
	return &fileOp{s: s, b: b, root: root}, nil
}

// end releases what beginFiles acquired.
func (op *fileOp) end() {
	_ = op.root.Close()
	op.s.release(op.b, false)
}

// owner returns the host owner of the sandbox's files, building its
// environment when it is stopped (as uploads do), or nil when files keep
// the server's own user (the test double).
func (op *fileOp) owner(ctx context.Context) (*fileOwnerIDs, error) {
	env, err := op.s.startEnv(ctx, op.b)
	if err != nil {
		return nil, err
	}
	if o, ok := env.(fileOwner); ok {
		uid, gid := o.HostOwner()
		return &fileOwnerIDs{uid, gid}, nil
	}
	return nil, nil
}

// statInfo describes the entry name of dirfd (a final link not followed)
// as the sandbox path sp.
func statInfo(dirfd int, name, sp string) (driver.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return driver.FileInfo{}, pathError(sp, err)
	}
	fi := fileInfo(sp, &st)
	if fi.Type == driver.TypeSymlink {
		fi.LinkTarget, _ = readlinkat(dirfd, name)
	}
	return fi, nil
}

// fileInfo converts st, the status of the sandbox path sp.
func fileInfo(sp string, st *unix.Stat_t) driver.FileInfo {
	fi := driver.FileInfo{
		Path:    sp,
		Mode:    api.ModeFromBits(st.Mode),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		fi.Type, fi.Size, fi.ETag = driver.TypeFile, st.Size, etagOf(st)
	case unix.S_IFDIR:
		fi.Type = driver.TypeDir
	case unix.S_IFLNK:
		fi.Type = driver.TypeSymlink
	default:
		fi.Type = driver.TypeOther
	}
	return fi
}

// etagOf is the ETag of a regular file: its device, inode, size and
// modification time in nanoseconds, in hex. A write through the files API
// makes a new inode; one in place changes the size or the time.
func etagOf(st *unix.Stat_t) string {
	ns := st.Mtim.Sec*1e9 + st.Mtim.Nsec
	return fmt.Sprintf(`"%x-%x-%x-%x"`, st.Dev, st.Ino, st.Size, ns)
}

// stat describes path p of sandbox id without following a final link.
func (s *store) stat(ctx context.Context, id, p string) (driver.FileInfo, error) {
	rel, err := workspaceRel("path", p)
	if err != nil {
		return driver.FileInfo{}, err
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer op.end()
	sp := path.Clean(p)
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{})
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer unix.Close(dirfd)
	return statInfo(dirfd, name, sp)
}

// makeDir creates a directory owned by the sandbox's user: like mkdir,
// or with Parents like mkdir -p (missing parents 0755, an existing
// directory, or link to one, is success).
func (s *store) makeDir(ctx context.Context, id string, req driver.MakeDirRequest) (driver.FileInfo, error) {
	rel, err := workspaceRel("path", req.Path)
	if err != nil {
		return driver.FileInfo{}, err
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer op.end()
	owner, err := op.owner(ctx)
	if err != nil {
		return driver.FileInfo{}, err
	}
	sp := path.Clean(req.Path)
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{mkdir: req.Parents, owner: owner})
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer unix.Close(dirfd)
	mode := api.ModeBits(req.Mode)
	if req.Mode == 0 {
		mode = 0o755
	}
	err = errExist
	if name != "." {
		err = mkdirOwned(dirfd, name, mode, owner)
	}
	switch {
	case err == nil:
	case errors.Is(err, errExist) || errors.Is(err, unix.EEXIST):
		if !req.Parents {
			return driver.FileInfo{}, fmt.Errorf("path %q: already exists: %w", sp, driver.ErrConflict)
		}
		if !op.isDir(sp, rel) {
			return driver.FileInfo{}, fmt.Errorf("path %q: exists and is not a directory: %w", sp, driver.ErrConflict)
		}
	default:
		return driver.FileInfo{}, pathError(sp, err)
	}
	return statInfo(dirfd, name, sp)
}

// errExist stands for EEXIST where no system call was made.
var errExist = errors.New("exists")

// isDir reports whether rel is a directory, a final link followed.
func (op *fileOp) isDir(sp, rel string) bool {
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{follow: true})
	if err != nil {
		return false
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// removePath removes a file or link, an empty directory or, with
// recursive, a tree, following no link. /workspace itself stays.
func (s *store) removePath(ctx context.Context, id, p string, recursive bool) error {
	rel, err := workspaceRel("path", p)
	if err != nil {
		return err
	}
	sp := path.Clean(p)
	if rel == "." {
		return fmt.Errorf("path %q: %s itself cannot be removed (its contents can): %w", sp, workspaceDir, ErrInvalid)
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return err
	}
	defer op.end()
	dirfd, name, err := op.root.resolve(sp, rel, resolveOpts{})
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError(sp, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return pathError(sp, unix.Unlinkat(dirfd, name, 0))
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if (errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)) && recursive {
		err = removeTree(ctx, dirfd, name, 1)
	}
	if errors.Is(err, errTooDeep) {
		return fmt.Errorf("path %q: %w; remove its deepest part from inside the sandbox first: %w", sp, err, driver.ErrConflict)
	}
	if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("path %q: directory not empty (remove it with recursive): %w", sp, driver.ErrConflict)
	}
	if err != nil {
		return pathError(sp, err)
	}
	return nil
}

// removeTree removes the directory name of dirfd (at depth) and
// everything below it, each directory opened relative to its parent with
// O_NOFOLLOW: a link is removed, never followed. It holds a descriptor
// per level and refuses trees deeper than maxWalkDepth.
func removeTree(ctx context.Context, dirfd int, name string, depth int) error {
	if depth > maxWalkDepth {
		return errTooDeep
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			unix.Close(fd)
			return err
		}
		ents, err := readDirents(fd, 512)
		if err != nil {
			unix.Close(fd)
			return err
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			err := unix.Unlinkat(fd, e.name, 0)
			if errors.Is(err, unix.EISDIR) {
				if err = unix.Unlinkat(fd, e.name, unix.AT_REMOVEDIR); errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
					err = removeTree(ctx, fd, e.name, depth+1)
				}
			}
			if err != nil && !errors.Is(err, unix.ENOENT) {
				unix.Close(fd)
				return err
			}
		}
		if _, err := unix.Seek(fd, 0, 0); err != nil {
			unix.Close(fd)
			return err
		}
	}
	unix.Close(fd)
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// movePath renames Src to Dst atomically, replacing an existing Dst only
// with Overwrite (RENAME_NOREPLACE otherwise), following no final link.
func (s *store) movePath(ctx context.Context, id string, req driver.MoveRequest) (driver.FileInfo, error) {
	srcRel, err := workspaceRel("src", req.Src)
	if err != nil {
		return driver.FileInfo{}, err
	}
	dstRel, err := workspaceRel("dst", req.Dst)
	if err != nil {
		return driver.FileInfo{}, err
	}
	src, dst := path.Clean(req.Src), path.Clean(req.Dst)
	switch {
	case srcRel == ".":
		return driver.FileInfo{}, fmt.Errorf("src %q: %s itself cannot be moved: %w", src, workspaceDir, ErrInvalid)
	case dstRel == ".":
		return driver.FileInfo{}, fmt.Errorf("dst %q: %s itself cannot be replaced: %w", dst, workspaceDir, driver.ErrConflict)
	case strings.HasPrefix(dstRel, srcRel+"/"):
		return driver.FileInfo{}, fmt.Errorf("dst %q: a directory cannot move into itself (%q): %w", dst, src, ErrInvalid)
	}
	op, err := s.beginFiles(ctx, id)
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer op.end()
	sfd, sname, err := op.root.resolve(src, srcRel, resolveOpts{})
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, sname, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return driver.FileInfo{}, pathError(src, err)
	}
	dfd, dname, err := op.root.resolve(dst, dstRel, resolveOpts{})
	if err != nil {
		return driver.FileInfo{}, err
	}
	defer unix.Close(dfd)
	flags := uint(unix.RENAME_NOREPLACE)
	if req.Overwrite {
		flags = 0
	}
	err = unix.Renameat2(sfd, sname, dfd, dname, flags)
	switch {
	case err == nil:
		return statInfo(dfd, dname, dst)
	case errors.Is(err, unix.EEXIST) && !req.Overwrite:
		return driver.FileInfo{}, fmt.Errorf("dst %q: already exists (set overwrite to replace it): %w", dst, driver.ErrConflict)
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY):
		return driver.FileInfo{}, fmt.Errorf("dst %q: a directory that is not empty cannot be replaced: %w", dst, driver.ErrConflict)
	case errors.Is(err, unix.EISDIR):
		return driver.FileInfo{}, fmt.Errorf("dst %q: is a directory and src %q is not: %w", dst, src, driver.ErrConflict)
	case errors.Is(err, unix.ENOTDIR):
		return driver.FileInfo{}, fmt.Errorf("dst %q: is not a directory and src %q is one: %w", dst, src, driver.ErrConflict)
	case errors.Is(err, unix.EINVAL):
		return driver.FileInfo{}, fmt.Errorf("dst %q: a directory cannot move into itself (%q): %w", dst, src, ErrInvalid)
	case errors.Is(err, unix.ENOENT):
		return driver.FileInfo{}, fmt.Errorf("dst %q: its parent directory does not exist: %w", dst, ErrNotFound)
	}
	return driver.FileInfo{}, pathError(dst, err)
}
