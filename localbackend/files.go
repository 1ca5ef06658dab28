package localbackend

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
)

// upload extracts a (gzip) tar archive under dest, all or nothing: the
// archive is extracted into a staging directory and moved into place only
// when every entry was accepted. Staging is charged against the sandbox's
// storage: it lies on the sandbox's image when it has one (and the final
// renames stay on that file system), else concurrent uploads share the
// room the workspace has left (stageBudget). Running out of space is an
// ErrInsufficientStorage error naming no host path.
func (s *store) upload(ctx context.Context, id, dest string, body io.Reader) (extractStats, error) {
	destRel, err := workspaceRel("dest", dest)
	if err != nil {
		return extractStats{}, err
	}
	b, _, err := s.acquire(ctx, id, false)
	if err != nil {
		return extractStats{}, err
	}
	defer s.release(b, false)
	st, err := s.uploadTo(ctx, b, dest, destRel, body)
	if err != nil && !errors.Is(err, ErrInsufficientStorage) && isNoSpace(err) {
		err = noSpaceError(b.meta.StorageBytes)
	}
	return st, err
}

// uploadTo is upload once b is acquired.
func (s *store) uploadTo(ctx context.Context, b *box, dest, destRel string, body io.Reader) (extractStats, error) {
	// The environment decides who owns the files: build it when stopped.
	env, err := s.startEnv(ctx, b)
	if err != nil {
		return extractStats{}, err
	}
	key := b.meta.Key
	lim := extractLimits{maxEntries: s.cfg.MaxUploadEntries}
	if b.meta.StorageBytes > 0 && !s.onImage(key) {
		room, err := s.storageRoom(b)
		if err != nil {
			return extractStats{}, err
		}
		budget := &stageBudget{s: s, b: b, room: room, limit: b.meta.StorageBytes}
		defer budget.release()
		lim.charge = budget.charge
	}

	if err := os.MkdirAll(s.stagingDir(key), 0o700); err != nil {
		return extractStats{}, fmt.Errorf("staging: %w", err)
	}
	stagingRoot, err := os.OpenRoot(s.stagingDir(key))
	if err != nil {
		return extractStats{}, fmt.Errorf("staging: %w", err)
	}
	defer stagingRoot.Close()
	staging, err := os.MkdirTemp(s.stagingDir(key), "u-")
	if err != nil {
		return extractStats{}, fmt.Errorf("staging: %w", err)
	}
	defer stagingRoot.RemoveAll(filepath.Base(staging))
	sroot, err := os.OpenRoot(staging)
	if err != nil {
		return extractStats{}, fmt.Errorf("staging: %w", err)
	}
	defer sroot.Close()

	st, err := extractTar(ctx, body, sroot, path.Join(workspaceDir, destRel), lim)
	if err != nil {
		return st, err
	}
	if owner, ok := env.(fileOwner); ok {
		uid, gid := owner.HostOwner()
		if err := chownTree(sroot, uid, gid); err != nil {
			return st, fmt.Errorf("chown upload: %w", err)
		}
	}
	// Resolve dest inside the workspace only: links planted by sandboxed
	// code are followed no further than the workspace.
	ws, err := os.OpenRoot(s.workspacePath(key))
	if err != nil {
		return st, fmt.Errorf("open workspace: %w", err)
	}
	defer ws.Close()
	if fi, err := ws.Stat(destRel); err == nil && !fi.IsDir() {
		return st, fmt.Errorf("dest: %q exists and is not a directory: %w", dest, ErrInvalid)
	}
	missing := missingDirs(ws, destRel)
	if err := ws.MkdirAll(destRel, 0o755); err != nil {
		if isNoSpace(err) {
			return st, err // upload answers it without the path
		}
		return st, fmt.Errorf("dest: %q cannot be created inside %s (%v): %w", dest, workspaceDir, err, ErrInvalid)
	}
	if owner, ok := env.(fileOwner); ok {
		// The directories made for dest belong to the sandbox's user,
		// like the files extracted into them.
		uid, gid := owner.HostOwner()
		for _, d := range missing {
			if err := ws.Lchown(d, uid, gid); err != nil {
				return st, fmt.Errorf("chown dest: %w", err)
			}
		}
	}
	droot, err := ws.OpenRoot(destRel)
	if err != nil {
		return st, fmt.Errorf("dest: %q cannot be opened inside %s (%v): %w", dest, workspaceDir, err, ErrInvalid)
	}
	defer droot.Close()
	if err := mergeTree(sroot, droot); err != nil {
		return st, fmt.Errorf("upload into %q: %w", dest, err)
	}
	applyDirAttrs(droot, st.dirs)
	return st, nil
}

// missingDirs returns the directories of rel (a path inside root) that do
// not exist yet, outermost first.
func missingDirs(root *os.Root, rel string) []string {
	var out []string
	for p := path.Clean(rel); p != "." && p != "/"; p = path.Dir(p) {
		if _, err := root.Lstat(p); err == nil {
			break
		}
		out = append(out, p)
	}
	slices.Reverse(out)
	return out
}

// chownTree changes the owner of everything in root, links not followed.
func chownTree(root *os.Root, uid, gid int) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, uid, gid)
	})
}

// download returns a gzip-compressed tar of src, produced while the
// returned reader is read. A missing src is an ErrNotFound naming the path.
func (s *store) download(ctx context.Context, id, src string) (io.ReadCloser, error) {
	rel, err := workspaceRel("src", src)
	if err != nil {
		return nil, err
	}
	b, _, err := s.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(s.workspacePath(b.meta.Key))
	if err != nil {
		s.release(b, false)
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	if _, err := root.Lstat(rel); err != nil {
		root.Close()
		s.release(b, false)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("src %q: no such file or directory: %w", src, ErrNotFound)
		}
		return nil, fmt.Errorf("src %q: %v: %w", src, err, ErrInvalid)
	}
	// Over a limit is a 413 before the 200 is sent.
	budget := &downloadBudget{src: src, maxBytes: s.cfg.MaxDownloadBytes, maxEntries: s.cfg.MaxDownloadEntries}
	if err := checkDownload(ctx, root, rel, budget); err != nil {
		root.Close()
		s.release(b, false)
		if errors.Is(err, ErrTooLarge) || ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("src %q: measuring: %w", src, err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer s.release(b, false)
		defer root.Close()
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		err := writeTar(ctx, root, rel, tw, budget)
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			s.log.Warn("download failed", "sessionId", id, "src", src, "err", err)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}
