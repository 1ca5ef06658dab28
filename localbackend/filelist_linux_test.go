package localbackend

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/noxrunner/nox/driver"
)

// TestFilesListDirPaging lists a tree whose names sort around "/" (a-b
// and a.txt sort between a and a/x) at every depth and page size: the
// pages joined are the tree's paths in lexical order, as a whole-tree
// walk sorts them.
func TestFilesListDirPaging(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	for _, p := range []string{"a/x", "a/y/z", "a/y/zz/deep", "a-b", "a.txt", "b", "a0/q", "c/d/e/f/g"} {
		f.put(t, p, p)
	}
	f.link(t, "/etc", "a/link") // listed, never followed
	for depth := 1; depth <= 5; depth++ {
		var want []string
		_ = filepath.WalkDir(f.ws, func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(f.ws, p)
			if rel == "." {
				return nil
			}
			if n := strings.Count(rel, "/") + 1; n > depth {
				return fs.SkipDir
			}
			want = append(want, path.Join(workspaceDir, rel))
			return nil
		})
		slices.Sort(want)
		for _, limit := range []int{1, 2, 3, 7, 100} {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				page, more, err := f.d.ListDir(context.Background(), f.id, driver.ListDirRequest{Path: "/workspace", Depth: depth, Limit: limit, After: after})
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > limit || (more && len(page) == 0) || pages > 100 {
					t.Fatalf("depth %d limit %d: page of %d, more %v", depth, limit, len(page), more)
				}
				for _, fi := range page {
					got = append(got, fi.Path)
					if fi.Path == "/workspace/a/link" && (fi.Type != driver.TypeSymlink || fi.LinkTarget != "/etc") {
						t.Errorf("link listed as %+v", fi)
					}
				}
				if !more {
					break
				}
				after = page[len(page)-1].Path
			}
			if !slices.Equal(got, want) {
				t.Fatalf("depth %d limit %d:\n got %v\nwant %v", depth, limit, got, want)
			}
		}
	}
	// Listing a file or a missing path.
	if _, _, err := f.d.ListDir(context.Background(), f.id, driver.ListDirRequest{Path: "/workspace/b", Depth: 1, Limit: 1}); !errors.Is(err, driver.ErrConflict) {
		t.Errorf("list of a file: %v", err)
	}
	if _, _, err := f.d.ListDir(context.Background(), f.id, driver.ListDirRequest{Path: "/workspace/none", Depth: 1, Limit: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("list of a missing path: %v", err)
	}
}
