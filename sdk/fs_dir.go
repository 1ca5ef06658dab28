package sdk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

// maxPageSize is the largest pageSize the contract accepts.
const maxPageSize = 10000

// ReadDir lists the directory p (absolute, or relative to DefaultWorkdir)
// in lexical order of the entries' paths, a page at a time as the loop
// asks for more; with opts.Depth > 1 it descends that many levels (a
// directory's entries follow it). Links are listed, never followed. An
// error ends the sequence: a missing directory matches ErrNotFound, a
// file ErrConflict, a backend without ExtFilesOps ErrUnsupported.
//
//meta:operation GET /v1/sandboxes/{sessionId}/fs/list
func (s *Sandbox) ReadDir(ctx context.Context, p string, opts ReadDirOptions) iter.Seq2[FileInfo, error] {
	const op = "listDir"
	return func(yield func(FileInfo, error) bool) {
		if err := checkID(op, s.id); err != nil {
			yield(FileInfo{}, err)
			return
		}
		abs, err := resolvePath(op, p)
		if err != nil {
			yield(FileInfo{}, err)
			return
		}
		if err := s.needFilesOps(ctx, op); err != nil {
			yield(FileInfo{}, err)
			return
		}
		params := &noxapi.ListDirParams{Path: abs}
		if opts.Depth > 1 {
			d := int32(min(opts.Depth, 64))
			params.Depth = &d
		}
		if opts.PageSize > 0 {
			ps := int32(min(opts.PageSize, maxPageSize))
			params.PageSize = &ps
		}
		seen := map[string]bool{}
		for {
			resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
				return s.c.gen.ListDir(ctx, s.id, params)
			})
			if err != nil {
				yield(FileInfo{}, s.c.unsupported(ctx, op, ExtFilesOps, err))
				return
			}
			var page noxapi.FileList
			if _, err := decodeJSON(op, resp, &page); err != nil {
				yield(FileInfo{}, err)
				return
			}
			for i := range page.Entries {
				if !yield(fromGenFileInfo(&page.Entries[i]), nil) {
					return
				}
			}
			next := deref(page.NextPageToken)
			if next == "" {
				return
			}
			if seen[next] {
				yield(FileInfo{}, fmt.Errorf("nox: %s: the backend repeated page token %q", op, next))
				return
			}
			seen[next] = true
			params.PageToken = &next
		}
	}
}

// needFilesOps returns an error matching ErrUnsupported when the backend
// does not advertise ExtFilesOps.
func (s *Sandbox) needFilesOps(ctx context.Context, op string) error {
	ok, err := s.filesOps(ctx)
	if err != nil {
		return fmt.Errorf("nox: %s: %w", op, err)
	}
	if !ok {
		return fmt.Errorf("nox: %s: the backend does not advertise extension %s: %w", op, ExtFilesOps, ErrUnsupported)
	}
	return nil
}

// Mkdir creates the directory p (absolute, or relative to DefaultWorkdir)
// with mode perm (0: 0755), like mkdir(2): an existing path is an error
// matching ErrConflict, a missing parent one matching ErrNotFound.
// Extension ExtFilesOps (ErrUnsupported without it).
func (s *Sandbox) Mkdir(ctx context.Context, p string, perm fs.FileMode) (FileInfo, error) {
	return s.makeDir(ctx, p, perm, false)
}

// MkdirAll creates the directory p and any missing parents with mode perm
// (0: 0755), like mkdir -p: an existing directory is no error. Extension
// ExtFilesOps (ErrUnsupported without it).
func (s *Sandbox) MkdirAll(ctx context.Context, p string, perm fs.FileMode) (FileInfo, error) {
	return s.makeDir(ctx, p, perm, true)
}

// makeDir is Mkdir and MkdirAll; with parents it is idempotent.
//
//meta:operation POST /v1/sandboxes/{sessionId}/fs/mkdir
func (s *Sandbox) makeDir(ctx context.Context, p string, perm fs.FileMode, parents bool) (FileInfo, error) {
	const op = "makeDir"
	if err := checkID(op, s.id); err != nil {
		return FileInfo{}, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return FileInfo{}, err
	}
	if err := s.needFilesOps(ctx, op); err != nil {
		return FileInfo{}, err
	}
	body := noxapi.MakeDirRequest{Path: abs, Mode: formatMode(perm)}
	if parents {
		body.Parents = &parents
	}
	resp, err := s.c.do(ctx, call{op: op, idempotent: parents}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.MakeDir(ctx, s.id, body)
	})
	if err != nil {
		return FileInfo{}, s.c.unsupported(ctx, op, ExtFilesOps, err)
	}
	var g noxapi.FileInfo
	decodeOptionalJSON(resp, &g)
	fi := fromGenFileInfo(&g)
	if fi.Path == "" {
		fi = FileInfo{Path: abs, Name: baseName(abs), Type: TypeDir}
	}
	return fi, nil
}

// Remove removes p (absolute, or relative to DefaultWorkdir): a file or
// link (never its target) or an empty directory, like remove(3). A
// missing path is an error matching ErrNotFound, a non-empty directory
// one matching ErrConflict. Extension ExtFilesOps (ErrUnsupported
// without it).
func (s *Sandbox) Remove(ctx context.Context, p string) error {
	return s.remove(ctx, p, false)
}

// RemoveAll removes p and everything below it, like rm -rf: a missing
// path is no error. DefaultWorkdir itself cannot be removed (its contents
// can). Extension ExtFilesOps (ErrUnsupported without it).
func (s *Sandbox) RemoveAll(ctx context.Context, p string) error {
	err := s.remove(ctx, p, true)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound && !errors.Is(err, ErrUnsupported) {
		return nil
	}
	return err
}

// remove is Remove and RemoveAll; the recursive one is idempotent.
//
//meta:operation POST /v1/sandboxes/{sessionId}/fs/remove
func (s *Sandbox) remove(ctx context.Context, p string, recursive bool) error {
	const op = "removePath"
	if err := checkID(op, s.id); err != nil {
		return err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return err
	}
	if err := s.needFilesOps(ctx, op); err != nil {
		return err
	}
	body := noxapi.RemoveRequest{Path: abs}
	if recursive {
		body.Recursive = &recursive
	}
	resp, err := s.c.do(ctx, call{op: op, idempotent: recursive}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.RemovePath(ctx, s.id, body)
	})
	if err != nil {
		return s.c.unsupported(ctx, op, ExtFilesOps, err)
	}
	drainClose(resp.Body)
	return nil
}

// RenameOptions are the optional parameters of RenameWith.
type RenameOptions struct {
	// Overwrite replaces an existing file (or empty directory) at the
	// destination; without it that is an error matching ErrConflict.
	Overwrite bool
}

// Rename renames src to dst (absolute, or relative to DefaultWorkdir)
// atomically, replacing an existing file at dst as rename(2) does, and
// describes the result. A directory moves with everything below it.
// Extension ExtFilesOps (ErrUnsupported without it). It is not retried.
func (s *Sandbox) Rename(ctx context.Context, src, dst string) (FileInfo, error) {
	return s.RenameWith(ctx, src, dst, RenameOptions{Overwrite: true})
}

// RenameWith is Rename with options: without Overwrite an existing dst is
// an error matching ErrConflict.
//
//meta:operation POST /v1/sandboxes/{sessionId}/fs/move
func (s *Sandbox) RenameWith(ctx context.Context, src, dst string, opts RenameOptions) (FileInfo, error) {
	const op = "movePath"
	if err := checkID(op, s.id); err != nil {
		return FileInfo{}, err
	}
	absSrc, err := resolvePath(op, src)
	if err != nil {
		return FileInfo{}, err
	}
	absDst, err := resolvePath(op, dst)
	if err != nil {
		return FileInfo{}, err
	}
	if err := s.needFilesOps(ctx, op); err != nil {
		return FileInfo{}, err
	}
	body := noxapi.MoveRequest{Src: absSrc, Dst: absDst}
	if opts.Overwrite {
		body.Overwrite = &opts.Overwrite
	}
	resp, err := s.c.do(ctx, call{op: op}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.MovePath(ctx, s.id, body)
	})
	if err != nil {
		return FileInfo{}, s.c.unsupported(ctx, op, ExtFilesOps, err)
	}
	var g noxapi.FileInfo
	decodeOptionalJSON(resp, &g)
	fi := fromGenFileInfo(&g)
	if fi.Path == "" {
		fi = FileInfo{Path: absDst, Name: baseName(absDst)}
	}
	return fi, nil
}
