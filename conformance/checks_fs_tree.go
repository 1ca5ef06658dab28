package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

func checkFSStat(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-stat")
	if err != nil {
		return err
	}
	// The links are made by a command, with targets relative to them.
	if _, err := env.Sh(ctx, id, "mkdir -p /workspace/s/d && printf 12345 > /workspace/s/f.txt && chmod 640 /workspace/s/f.txt && chmod 750 /workspace/s/d && cd /workspace/s && ln -s f.txt link && ln -s d dlink && ln -s no-such-target dangling"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, c := range []struct {
		path, want, typ, mode, target string
		size                          int64
	}{
		{"/workspace/s/f.txt", "/workspace/s/f.txt", "file", "0640", "", 5},
		{"s/f.txt", "/workspace/s/f.txt", "file", "0640", "", 5},
		{"/workspace/s/d", "/workspace/s/d", "dir", "0750", "", -1},
		{"/workspace/s/link", "/workspace/s/link", "symlink", "", "f.txt", -1},
		{"/workspace/s/dlink", "/workspace/s/dlink", "symlink", "", "d", -1},
		{"/workspace/s/dangling", "/workspace/s/dangling", "symlink", "", "no-such-target", -1},
	} {
		x, err := env.fsGet(ctx, id, "stat", pathQuery(c.path))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.judge()
		if err := expectStatus(x, http.StatusOK); err != nil {
			errs = append(errs, fmt.Errorf("stat %s: %w", c.path, err))
			continue
		}
		fi, err := decodeInfo(x)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want(&errs, "path of "+c.path, fi.Path, c.want, x)
		want(&errs, "name of "+c.path, fi.Name, c.want[len(c.want)-len(lastElem(c.want)):], x)
		want(&errs, "type of "+c.path, fi.Type, c.typ, x)
		if c.mode != "" {
			want(&errs, "mode of "+c.path, fi.Mode, c.mode, x)
		}
		if c.size >= 0 {
			want(&errs, "size of "+c.path, fi.Size, c.size, x)
		}
		want(&errs, "linkTarget of "+c.path, fi.LinkTarget, c.target, x)
		if c.typ == "file" && fi.Etag == "" {
			errs = append(errs, fmt.Errorf("stat %s: no etag for a file\n%s", c.path, x))
		}
	}
	return errors.Join(errs...)
}

// lastElem is the last element of a slash-separated path.
func lastElem(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// listAll lists dir with depth, pageSize (0: the backend's default)
// page after page, judging every answer, and returns the entries and the
// exchanges of the pages.
func listAll(ctx context.Context, env *Env, id, dir string, depth, pageSize int) ([]fsInfo, []*Exchange, error) {
	var out []fsInfo
	var xs []*Exchange
	token := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return out, xs, errors.New("more than 1000 pages: nextPageToken never ends")
		}
		q := pathQuery(dir, "depth", strconv.Itoa(depth))
		if pageSize > 0 {
			q.Set("pageSize", strconv.Itoa(pageSize))
		}
		if token != "" {
			q.Set("pageToken", token)
		}
		x, err := env.fsGet(ctx, id, "list", q)
		if err != nil {
			return out, xs, err
		}
		x.judge()
		xs = append(xs, x)
		var l fsListPage
		if err := expectJSON(x, http.StatusOK, &l); err != nil {
			return out, xs, fmt.Errorf("list %s (page %d): %w", dir, page+1, err)
		}
		if pageSize > 0 && len(l.Entries) > pageSize {
			return out, xs, fmt.Errorf("page of %d entries with pageSize %d\n%s", len(l.Entries), pageSize, x)
		}
		out = append(out, l.Entries...)
		if l.NextPageToken == nil {
			return out, xs, nil
		}
		if *l.NextPageToken == "" {
			return out, xs, fmt.Errorf("empty nextPageToken (absent means the last page)\n%s", x)
		}
		token = *l.NextPageToken
	}
}

// paths are the paths of entries, with their types: "/a (file)".
func paths(entries []fsInfo) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Path + " (" + e.Type + ")"
	}
	return out
}

// listTree makes the tree the listing checks list, below dir.
const listTree = `mkdir -p %[1]s/b-dir/inner && cd %[1]s && touch c.txt a.txt B.txt 'a b.txt' b-dir/x.txt b-dir/inner/y.txt && ln -s a.txt zlink`

func checkFSList(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-list")
	if err != nil {
		return err
	}
	const d = "/workspace/l"
	if _, err := env.Sh(ctx, id, fmt.Sprintf(listTree, d)); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	level1 := []string{d + "/B.txt (file)", d + "/a b.txt (file)", d + "/a.txt (file)", d + "/b-dir (dir)", d + "/c.txt (file)", d + "/zlink (symlink)"}
	level2 := append(slices.Clone(level1), d+"/b-dir/inner (dir)", d+"/b-dir/x.txt (file)")
	level3 := append(slices.Clone(level2), d+"/b-dir/inner/y.txt (file)")
	for _, l := range [][]string{level2, level3} {
		slices.Sort(l) // lexical order of the paths
	}
	var errs []error
	for _, c := range []struct {
		dir   string
		depth int
		want  []string
	}{{d, 1, level1}, {"l", 1, level1}, {d, 2, level2}, {d, 3, level3}} {
		got, xs, err := listAll(ctx, env, id, c.dir, c.depth, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if g := paths(got); !slices.Equal(g, c.want) {
			errs = append(errs, ownFinding(xs[0], aspectBody, fmt.Sprintf("%q", g), fmt.Sprintf("%q", c.want),
				fmt.Errorf("list %s depth %d: entries\n  %q\nwant, in this order,\n  %q\n%s", c.dir, c.depth, g, c.want, xs[0])))
		}
	}
	for _, c := range []struct {
		p    string
		code int
	}{{d + "/a.txt", http.StatusConflict}, {d + "/missing", http.StatusNotFound}} {
		x, err := env.fsGet(ctx, id, "list", pathQuery(c.p))
		if err != nil {
			errs = append(errs, err)
		} else if err := expectError(x, c.code); err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", c.p, err))
		}
	}
	return errors.Join(errs...)
}

func checkFSListPaging(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-paging")
	if err != nil {
		return err
	}
	const d = "/workspace/p"
	if _, err := env.Sh(ctx, id, fmt.Sprintf(listTree, d)+" && touch f1 f2 f3 f4 f5"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, depth := range []int{1, 2} {
		whole, _, err := listAll(ctx, env, id, d, depth, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, size := range []int{1, 2, 3} {
			paged, xs, err := listAll(ctx, env, id, d, depth, size)
			if err != nil {
				errs = append(errs, fmt.Errorf("depth %d, pageSize %d: %w", depth, size, err))
				continue
			}
			if g, w := paths(paged), paths(whole); !slices.Equal(g, w) {
				errs = append(errs, ownFinding(xs[len(xs)-1], aspectBody, fmt.Sprintf("%q", g), fmt.Sprintf("%q", w),
					fmt.Errorf("depth %d, pageSize %d: the %d pages list\n  %q\nwant what one page lists\n  %q\nthe last page was:\n%s", depth, size, len(xs), g, w, xs[len(xs)-1])))
			}
			if min := (len(whole) + size - 1) / size; len(xs) < min {
				errs = append(errs, fmt.Errorf("depth %d, pageSize %d: %d pages for %d entries", depth, size, len(xs), len(whole)))
			}
		}
	}
	return errors.Join(errs...)
}

// fsExpect judges x, the answer to what: status code, with a FileInfo at
// path at of type typ for 200, or a JSON Error for 4xx.
func fsExpect(x *Exchange, what string, code int, at, typ string) error {
	var err error
	switch {
	case code >= 400:
		err = expectError(x, code)
	case code == http.StatusOK && at != "":
		x.judge()
		if err = expectStatus(x, code); err == nil {
			_, err = expectInfo(x, at, typ, -1)
		}
	default:
		x.judge()
		err = expectStatus(x, code)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func checkFSMkdir(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-mkdir")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "touch /workspace/file"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	yes := true
	for _, c := range []struct {
		what string
		req  map[string]any
		code int
		at   string
	}{
		{"mkdir m", map[string]any{"path": "/workspace/m"}, http.StatusOK, "/workspace/m"},
		{"mkdir m again", map[string]any{"path": "/workspace/m"}, http.StatusConflict, ""},
		{"mkdir with a missing parent", map[string]any{"path": "/workspace/x/y"}, http.StatusNotFound, ""},
		{"mkdir -p of a chain", map[string]any{"path": "/workspace/p/q/r", "parents": yes}, http.StatusOK, "/workspace/p/q/r"},
		{"mkdir -p of an existing directory", map[string]any{"path": "/workspace/p/q", "parents": yes}, http.StatusOK, "/workspace/p/q"},
		{"mkdir -p over a file", map[string]any{"path": "/workspace/file", "parents": yes}, http.StatusConflict, ""},
		{"mkdir of a relative path with mode 0700", map[string]any{"path": "rel", "mode": "0700"}, http.StatusOK, "/workspace/rel"},
	} {
		x, err := env.fsJSON(ctx, id, "mkdir", c.req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fsExpect(x, c.what, c.code, c.at, "dir"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := env.shOutput(ctx, id, "test -d /workspace/m && test -d /workspace/p/q/r && test ! -e /workspace/x && stat -c %a /workspace/rel",
		"700\n", "the directories after the mkdirs"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkFSRemove(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-remove")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "cd /workspace && mkdir -p tree/a/b empty keep && touch f tree/a/b/c keep/k && ln -s keep keeplink && echo marker > marker"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, c := range []struct {
		what string
		req  map[string]any
		code []int
	}{
		{"remove a file", map[string]any{"path": "/workspace/f"}, []int{http.StatusNoContent}},
		{"remove a missing path", map[string]any{"path": "/workspace/f"}, []int{http.StatusNotFound}},
		{"remove a non-empty directory without recursive", map[string]any{"path": "/workspace/tree"}, []int{http.StatusConflict}},
		{"remove an empty directory", map[string]any{"path": "empty"}, []int{http.StatusNoContent}},
		{"remove a tree with recursive", map[string]any{"path": "/workspace/tree", "recursive": true}, []int{http.StatusNoContent}},
		{"remove a link to a directory", map[string]any{"path": "/workspace/keeplink", "recursive": true}, []int{http.StatusNoContent}},
		{"remove /workspace itself", map[string]any{"path": "/workspace", "recursive": true}, []int{http.StatusBadRequest, http.StatusConflict}},
		{"remove . (/workspace itself)", map[string]any{"path": ".", "recursive": true}, []int{http.StatusBadRequest, http.StatusConflict}},
	} {
		x, err := env.fsJSON(ctx, id, "remove", c.req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.code[0] >= 400 {
			err = expectError(x, c.code...)
		} else {
			x.judge()
			err = expectStatus(x, c.code...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
		}
	}
	if err := env.shOutput(ctx, id, "cd /workspace && ls -A | sort | tr '\\n' ' '; cat keep/k marker",
		"keep marker marker\n", "/workspace after the removes (keep/ and marker stay: a link's target is kept, /workspace is not removed)"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkFSMove(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-move")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "cd /workspace && printf a > a && printf b > b && printf c > c && mkdir -p d/sub && printf in > d/sub/f"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, c := range []struct {
		what     string
		req      map[string]any
		code     []int
		at, typ  string
		checkSrc bool
	}{
		{"move a to a2", map[string]any{"src": "/workspace/a", "dst": "/workspace/a2"}, []int{http.StatusOK}, "/workspace/a2", "file", false},
		{"move onto an existing file without overwrite", map[string]any{"src": "/workspace/b", "dst": "/workspace/c"}, []int{http.StatusConflict}, "", "", false},
		{"move onto an existing file with overwrite", map[string]any{"src": "b", "dst": "c", "overwrite": true}, []int{http.StatusOK}, "/workspace/c", "file", false},
		{"move a directory", map[string]any{"src": "/workspace/d", "dst": "/workspace/e"}, []int{http.StatusOK}, "/workspace/e", "dir", false},
		{"move a directory into itself", map[string]any{"src": "/workspace/e", "dst": "/workspace/e/sub/e"}, []int{http.StatusBadRequest, http.StatusConflict}, "", "", false},
		{"move a missing path", map[string]any{"src": "/workspace/missing", "dst": "/workspace/x"}, []int{http.StatusNotFound}, "", "", false},
	} {
		x, err := env.fsJSON(ctx, id, "move", c.req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.code[0] >= 400 {
			err = expectError(x, c.code...)
		} else {
			err = fsExpect(x, c.what, c.code[0], c.at, c.typ)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
		}
	}
	if err := env.shOutput(ctx, id, "cd /workspace && ls -A | sort | tr '\\n' ' '; cat a2 c e/sub/f",
		"a2 c e abin", "/workspace after the moves"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
