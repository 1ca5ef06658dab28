package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
)

// refusedCodes are the answers a path the backend does not serve may get.
var refusedCodes = []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}

// expectRefused checks x refuses a path: one of refusedCodes with a JSON
// Error.
func expectRefused(x *Exchange) error {
	return expectError(x, refusedCodes...)
}

// escapeLinks are the links fs/paths-contained makes in /workspace, with
// a command.
const escapeLinks = `cd /workspace && ln -s /etc etc-link && ln -s ../.. up-link && ln -s /tmp tmp-link && ln -s /etc/passwd passwd-link && mkdir -p sub && ln -s ../../.. sub/up3 && printf src > mv-src1 && printf src > mv-src2`

func checkFSContained(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-contain")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, escapeLinks); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	errs = append(errs, containedReads(ctx, env, id)...)
	errs = append(errs, containedWrites(ctx, env, id)...)
	return errors.Join(errs...)
}

// containedReads reads, stats and lists /etc through .. and links: each
// answer must be what the direct path gets (refused, or the same
// content), never the host's files.
func containedReads(ctx context.Context, env *Env, id string) []error {
	var errs []error
	direct, err := env.readFile(ctx, id, "/etc/passwd", nil)
	if err != nil {
		return []error{err}
	}
	directOK := direct.Status == http.StatusOK
	host, _ := os.ReadFile("/etc/passwd") // the suite's host: the backend's too on one machine
	for _, p := range []string{"../../etc/passwd", "/workspace/../../../etc/passwd", "etc-link/passwd", "/workspace/passwd-link",
		"up-link/etc/passwd", "sub/up3/etc/passwd", "/workspace/sub/../etc-link/passwd"} {
		x, err := env.readFile(ctx, id, p, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case success(x.Status) && directOK && bytes.Equal(x.Body, direct.Body):
			// Confined: what /etc/passwd of the sandbox is.
		case success(x.Status):
			what := fmt.Sprintf("%d bytes", len(x.Body))
			if len(host) > 0 && bytes.Equal(x.Body, host) {
				what = "the host's /etc/passwd"
			}
			errs = append(errs, ownFinding(x, aspectStatus, fmt.Sprintf("status %d with %s", x.Status, what),
				fmt.Sprintf("refused like the direct path /etc/passwd (status %d)", direct.Status),
				fmt.Errorf("read of %s escaped: status %d with %s, while /etc/passwd itself is answered %d\n%s", p, x.Status, what, direct.Status, x)))
		default:
			if err := expectRefused(x); err != nil {
				errs = append(errs, fmt.Errorf("read of %s: %w", p, err))
			}
		}
	}
	for _, c := range []struct{ op, direct, via string }{
		{"stat", "/etc/passwd", "etc-link/passwd"},
		{"stat", "/etc/passwd", "up-link/etc/passwd"},
		{"list", "/etc", "etc-link"},
		{"list", "/etc", "/workspace/up-link/etc"},
		{"list", "/", "sub/up3"},
	} {
		dx, err := env.fsGet(ctx, id, c.op, pathQuery(c.direct))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if success(dx.Status) {
			continue // the backend serves it: nothing to escape to
		}
		x, err := env.fsGet(ctx, id, c.op, pathQuery(c.via))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if success(x.Status) {
			errs = append(errs, ownFinding(x, aspectStatus, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)),
				fmt.Sprintf("refused like the direct path %s (status %d)", c.direct, dx.Status),
				fmt.Errorf("%s of %s escaped through a link: status %d, while %s itself is answered %d\n%s", c.op, c.via, x.Status, c.direct, dx.Status, x)))
		} else if err := expectRefused(x); err != nil {
			errs = append(errs, fmt.Errorf("%s of %s: %w", c.op, c.via, err))
		}
	}
	return errs
}

// containedWrites writes, makes directories and moves through .. and
// links: refused when the direct path is, and otherwise landing where the
// direct path would.
func containedWrites(ctx context.Context, env *Env, id string) []error {
	var errs []error
	tag := env.ID("t")
	type attempt struct {
		op, via, direct string // direct is where via leads, lexically
	}
	var escaped []string
	for _, a := range []attempt{
		{"write", "up-link/nox-escape-" + tag, "/nox-escape-" + tag},
		{"write", "sub/up3/nox-escape3-" + tag, "/nox-escape3-" + tag},
		{"write", "../nox-escape-dd-" + tag, "/nox-escape-dd-" + tag},
		{"write", "tmp-link/nox-escape-" + tag, "/tmp/nox-escape-" + tag},
		{"write-parents", "up-link/nox-escape-p-" + tag + "/f", "/nox-escape-p-" + tag + "/f"},
		{"write-parents", "up-link/f-" + tag, "/f-" + tag},
		{"mkdir", "up-link/nox-escape-dir-" + tag, "/nox-escape-dir-" + tag},
		{"move", "up-link/nox-escape-mv-" + tag, "/nox-escape-mv-" + tag},
	} {
		directPath := path.Join(path.Dir(a.direct), "nox-direct-"+strings.TrimPrefix(path.Base(a.direct), "nox-"))
		do := func(p, src string) (*Exchange, error) {
			switch a.op {
			case "mkdir":
				return env.fsJSON(ctx, id, "mkdir", map[string]any{"path": p})
			case "move":
				return env.fsJSON(ctx, id, "move", map[string]any{"src": src, "dst": p})
			case "write-parents":
				return env.writeFile(ctx, id, p, []byte("escaped"), nil, "parents", "true")
			}
			return env.writeFile(ctx, id, p, []byte("escaped"), nil)
		}
		dx, err := do(directPath, "/workspace/mv-src1")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x, err := do(a.via, "/workspace/mv-src2")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !success(dx.Status) {
			if success(x.Status) {
				escaped = append(escaped, a.direct)
				errs = append(errs, ownFinding(x, aspectStatus, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)),
					fmt.Sprintf("refused like the direct path %s (status %d)", directPath, dx.Status),
					fmt.Errorf("%s to %s escaped: status %d, while %s itself is answered %d\n%s", a.op, a.via, x.Status, directPath, dx.Status, x)))
			} else if err := expectRefused(x); err != nil {
				errs = append(errs, fmt.Errorf("%s to %s: %w", a.op, a.via, err))
			}
			continue
		}
		if success(x.Status) && a.op != "mkdir" { // allowed: it must land where the direct path does
			rx, err := env.readFile(ctx, id, a.direct, nil)
			if err != nil {
				errs = append(errs, err)
			} else if !success(rx.Status) || (string(rx.Body) != "escaped" && string(rx.Body) != "src") {
				errs = append(errs, fmt.Errorf("%s to %s was accepted (%d) but %s does not hold what was written: the link was followed elsewhere\n%s\n%s", a.op, a.via, x.Status, a.direct, x, rx))
			}
		}
	}
	if len(escaped) > 0 {
		// Show what a command sees, for the report.
		out, _ := env.Sh(ctx, id, "for p in "+strings.Join(slices.Compact(escaped), " ")+"; do if [ -e \"$p\" ]; then echo \"$p\"; fi; done")
		if strings.TrimSpace(out) != "" {
			errs = append(errs, fmt.Errorf("a command in the sandbox sees the escaped paths %q", strings.Fields(out)))
		}
	}
	return errs
}

func checkFSErrors(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-errors")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "mkdir -p /workspace/dir && touch /workspace/file"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	tag := env.ID("m")
	missing := "/workspace/missing-" + tag + ".txt"
	type try struct {
		what string
		p    string
		code int
		send func() (*Exchange, error)
	}
	var errs []error
	for _, c := range []try{
		{"read of a missing file", missing, http.StatusNotFound, func() (*Exchange, error) { return env.readFile(ctx, id, missing, nil) }},
		{"read of a missing relative path", "rel-" + tag, http.StatusNotFound, func() (*Exchange, error) { return env.readFile(ctx, id, "rel-"+tag, nil) }},
		{"stat of a missing path", missing, http.StatusNotFound, func() (*Exchange, error) { return env.fsGet(ctx, id, "stat", pathQuery(missing)) }},
		{"list of a missing directory", missing, http.StatusNotFound, func() (*Exchange, error) { return env.fsGet(ctx, id, "list", pathQuery(missing)) }},
		{"remove of a missing path", missing, http.StatusNotFound, func() (*Exchange, error) {
			return env.fsJSON(ctx, id, "remove", map[string]any{"path": missing})
		}},
		{"move of a missing path", missing, http.StatusNotFound, func() (*Exchange, error) {
			return env.fsJSON(ctx, id, "move", map[string]any{"src": missing, "dst": "/workspace/dst"})
		}},
		{"read of a directory", "/workspace/dir", http.StatusConflict, func() (*Exchange, error) { return env.readFile(ctx, id, "/workspace/dir", nil) }},
		{"mkdir of an existing file", "/workspace/file", http.StatusConflict, func() (*Exchange, error) {
			return env.fsJSON(ctx, id, "mkdir", map[string]any{"path": "/workspace/file"})
		}},
	} {
		x, err := c.send()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectFSError(x, c.p, c.code); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
		}
	}
	x, err := env.readFile(ctx, id, "/workspace/a\x00b", nil)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := expectErrorNaming(x, http.StatusBadRequest, "path"); err != nil {
		errs = append(errs, fmt.Errorf("read of a path with a NUL byte: %w", err))
	}
	return errors.Join(errs...)
}

func checkFSUnknown(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	env.Track(id)
	const p = "/workspace/x.txt"
	sends := []struct {
		what string
		send func() (*Exchange, error)
	}{
		{"read", func() (*Exchange, error) { return env.readFile(ctx, id, p, nil) }},
		{"write", func() (*Exchange, error) { return env.writeFile(ctx, id, p, []byte("x"), nil) }},
		{"stat", func() (*Exchange, error) { return env.fsGet(ctx, id, "stat", pathQuery(p)) }},
		{"list", func() (*Exchange, error) { return env.fsGet(ctx, id, "list", pathQuery("/workspace")) }},
		{"mkdir", func() (*Exchange, error) { return env.fsJSON(ctx, id, "mkdir", map[string]any{"path": "/workspace/d"}) }},
		{"remove", func() (*Exchange, error) { return env.fsJSON(ctx, id, "remove", map[string]any{"path": p}) }},
		{"move", func() (*Exchange, error) {
			return env.fsJSON(ctx, id, "move", map[string]any{"src": p, "dst": "/workspace/y.txt"})
		}},
	}
	if env.Has("files.watch") {
		sends = append(sends, struct {
			what string
			send func() (*Exchange, error)
		}{"watch", func() (*Exchange, error) {
			w, x, err := env.openWatch(ctx, id, "/workspace", false)
			if w != nil {
				w.close()
			}
			return x, err
		}})
	}
	var errs []error
	for _, s := range sends {
		x, err := s.send()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectUnknown(x); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	return errors.Join(errs...)
}
