package conformance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/noxrunner/nox/api"
)

func filesChecks() []Check {
	return []Check{
		{ID: "files/upload-gzip", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload: gzip tar extracted under dest (created), nested dirs, binary content, modes kept",
			Run:  func(ctx context.Context, env *Env) error { return checkUpload(ctx, env, true) }},
		{ID: "files/upload-plain-tar", Level: LevelRecommended, Parallel: true,
			Requirement: Should, Operations: []string{"uploadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload: an uncompressed tar is accepted too (detected by magic bytes)",
			Run:  func(ctx context.Context, env *Env) error { return checkUpload(ctx, env, false) }},
		{ID: "files/default-paths", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles", "downloadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload and GET .../files/download: dest and src default to /workspace",
			Run:  checkDefaultPaths},
		{ID: "files/download-roundtrip", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"downloadFiles"}, Anchor: anchorDownload,
			Spec: "GET .../files/download: gzip tar of src, paths relative to src, contents byte-equal, modes kept",
			Run:  checkDownloadRoundtrip},
		{ID: "files/download-single-file", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"downloadFiles"}, Anchor: anchorDownload,
			Spec: "GET .../files/download: src naming a file gives an archive of that single file",
			Run:  checkDownloadSingleFile},
		{ID: "files/download-missing-404", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"downloadFiles"}, Anchor: anchorDownloadGone,
			Spec: "GET .../files/download: 404 JSON Error when src does not exist",
			Run:  checkDownloadMissing},
		{ID: "files/unknown-sandbox-404", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles", "downloadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload, GET .../files/download: 404 JSON Error for an unknown sandbox",
			Run:  checkFilesUnknown},
		{ID: "files/upload-invalid-archive-400", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles"}, Anchor: anchorUploadInvalid,
			Spec: "POST .../files/upload: 400 JSON Error when the body is not a (gzip) tar archive",
			Run:  checkUploadInvalid},
		{ID: "files/hostile-archives-contained", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload: entries with .., absolute paths, symlink or hardlink escapes, devices and fifos are rejected; nothing is written outside dest",
			Run:  checkHostileArchives},
		{ID: "files/upload-chunked", Level: LevelRecommended, Parallel: true,
			Requirement: Should, Operations: []string{"uploadFiles"}, Extensions: []string{api.ExtUploadChunked}, Anchor: anchorUploadChunked,
			Spec: "POST .../files/upload: a body sent chunked, without Content-Length, is accepted and extracted (SHOULD; MUST when the backend advertises upload.chunked)",
			Run:  checkUploadChunked},
		{ID: "files/upload-dest-writable", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles"}, Anchor: anchorUpload,
			Spec: "POST .../files/upload: a dest that does not exist is created, with its missing parents, writable by the sandbox's user",
			Run:  checkUploadDestWritable},
	}
}

// chunkedRefused is the finding of a chunked upload that was not
// accepted: a MUST when the backend advertises upload.chunked.
func chunkedRefused(x *Exchange, advertised bool) *finding {
	f := &finding{key: keyUploadChunked, req: Should, anchor: anchorUploadChunked, aspect: aspectStatus, x: x,
		title:    "uploads sent chunked, without Content-Length, are not accepted",
		observed: fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), expected: "a success (2xx) extracting the archive, as with Content-Length",
		err: fmt.Errorf("an upload sent chunked, without Content-Length, answered %d, want a success as with Content-Length\n%s", x.Status, x)}
	if advertised {
		f.req = Must
		f.title += " although the backend advertises upload.chunked"
	}
	return f
}

func checkUploadChunked(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "chunked")
	if err != nil {
		return err
	}
	name := "chunked-" + env.ID("f") + ".txt"
	archive, err := BuildTar([]TarEntry{{Name: name, Body: []byte("sent chunked\n")}}, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	dest := "/workspace/chunked"
	x, err := env.uploadStream(ctx, id, dest, int64(len(archive)), true, func() io.Reader { return bytes.NewReader(archive) })
	if err != nil {
		return err
	}
	advertised := env.Has(api.ExtUploadChunked)
	if !success(x.Status) {
		return chunkedRefused(x, advertised)
	}
	// A server reading the body by Content-Length only sees it empty.
	out, err := env.Sh(ctx, id, "cat '"+dest+"/"+name+"' 2>/dev/null || true")
	if err != nil {
		return err
	}
	if out != "sent chunked\n" {
		f := chunkedRefused(x, advertised)
		f.observed = fmt.Sprintf("status %d, then %s/%s holds %q", x.Status, dest, name, out)
		f.err = fmt.Errorf("an upload sent chunked, without Content-Length, answered %d but %s/%s holds %q, want \"sent chunked\\n\" (was the body read by Content-Length only?)\n%s",
			x.Status, dest, name, out, x)
		return f
	}
	return nil
}

func checkUploadDestWritable(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "dest-w")
	if err != nil {
		return err
	}
	parent := "/workspace/made-" + env.ID("d")
	dest := parent + "/sub"
	archive, err := BuildTar([]TarEntry{{Name: "f.txt", Mode: 0o644, Body: []byte("f\n")}}, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	x, err := env.UploadOK(ctx, id, dest, archive)
	if err != nil {
		return err
	}
	out, err := env.Sh(ctx, id, fmt.Sprintf(`bad=""
for d in '%s' '%s'; do
  if ( : > "$d/.nox-writable" ) 2>/dev/null && mkdir "$d/.nox-dir" 2>/dev/null; then rm -rf "$d/.nox-writable" "$d/.nox-dir"; else bad="$bad $d"; fi
done
if [ -n "$bad" ]; then echo "not writable:$bad"; ls -ld '%s' '%s'; id; fi`, dest, parent, parent, dest))
	if err != nil {
		return err
	}
	if out != "" {
		return ownFinding(x, aspectNone, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "), "dest and its new parents writable by the sandbox's user",
			fmt.Errorf("after an upload to the new dest %s, the sandbox's user cannot write there:\n%s\nthe upload was:\n%s", dest, out, x))
	}
	return nil
}

// sampleTree is the archive the upload checks send.
func sampleTree() []TarEntry {
	bin := make([]byte, 70_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(r.UintN(256))
	}
	copy(bin, []byte{0, 0x1f, 0x8b, 0xff, 0xfe, '\n', '\r'})
	return []TarEntry{
		{Name: "hello.txt", Mode: 0o644, Body: []byte("hello, sandbox\n")},
		{Name: "run.sh", Mode: 0o755, Body: []byte("#!/bin/sh\necho ran\n")},
		{Name: "secret.key", Mode: 0o600, Body: []byte("k3y")},
		{Name: "empty.txt", Mode: 0o644, Body: nil},
		{Name: "nested", Type: tar.TypeDir, Mode: 0o755},
		{Name: "nested/deep/data.bin", Mode: 0o644, Body: bin}, // parent dir implicit
		{Name: "nested/ünï code.txt", Mode: 0o644, Body: []byte("ünï\n")},
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// verifyTree checks in the sandbox that the regular files of entries exist
// under dir with their sizes, digests and permission bits.
func verifyTree(ctx context.Context, env *Env, id, dir string, entries []TarEntry) error {
	var script strings.Builder
	fmt.Fprintf(&script, "cd '%s' || exit 1\n", dir)
	var files []TarEntry
	for _, e := range entries {
		if e.Type == 0 || e.Type == tar.TypeReg {
			files = append(files, e)
			fmt.Fprintf(&script, "printf '%%s %%s ' \"$(stat -c %%a '%s')\" \"$(stat -c %%s '%s')\"; sha256sum < '%s' | cut -d' ' -f1\n", e.Name, e.Name, e.Name)
		}
	}
	out, err := env.Sh(ctx, id, script.String())
	if err != nil {
		return fmt.Errorf("inspect uploaded files: %w", err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(files) {
		return fmt.Errorf("inspect uploaded files: got %d lines, want %d: %q", len(lines), len(files), out)
	}
	var errs []error
	for i, e := range files {
		wantLine := fmt.Sprintf("%o %d %s", e.Mode, len(e.Body), sha(e.Body))
		if lines[i] != wantLine {
			errs = append(errs, fmt.Errorf("%s/%s: mode size sha256 = %q, want %q", dir, e.Name, lines[i], wantLine))
		}
	}
	return errors.Join(errs...)
}

func checkUpload(ctx context.Context, env *Env, gz bool) error {
	id, err := env.NewSandbox(ctx, "upload")
	if err != nil {
		return err
	}
	tree := sampleTree()
	archive, err := BuildTar(tree, gz)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	dest := "/workspace/up/new/deeper" // does not exist yet
	x, err := env.Upload(ctx, id, dest, archive)
	if err != nil {
		return err
	}
	if gz { // this check judges the answer; files/upload-plain-tar judges the extraction
		x.judge()
		err = expectStatus(x, http.StatusOK)
		if err != nil {
			return fmt.Errorf("upload must answer 200 (the Python client treats anything else as failure): %w", err)
		}
	} else if err := expectSuccess(x); err != nil {
		return err
	}
	var errs []error
	if err := verifyTree(ctx, env, id, dest, tree); err != nil {
		errs = append(errs, err)
	}
	req := argv("./run.sh")
	req.Workdir = &dest
	if res, rx, err := env.ExecOK(ctx, id, req); err != nil {
		errs = append(errs, err)
	} else if res.Stdout != "ran\n" {
		errs = append(errs, fmt.Errorf("uploaded executable run.sh: stdout %q, want \"ran\\n\"\n%s", res.Stdout, rx))
	}
	return errors.Join(errs...)
}

func checkDefaultPaths(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "defaults")
	if err != nil {
		return err
	}
	name := "default-" + env.ID("f") + ".txt"
	archive, err := BuildTar([]TarEntry{{Name: name, Body: []byte("default\n")}}, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	if _, err := env.UploadOK(ctx, id, "", archive); err != nil {
		return err
	}
	var errs []error
	if err := env.shOutput(ctx, id, "cat /workspace/"+name, "default\n", "upload without dest: /workspace/"+name); err != nil {
		errs = append(errs, err)
	}
	dx, err := env.Download(ctx, id, "")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := expectSuccess(dx); err != nil {
		return errors.Join(append(errs, err)...)
	}
	entries, err := ReadTarGz(dx.Body)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("download without src: %w\n%s", err, dx))...)
	}
	if !slices.ContainsFunc(entries, func(e TarEntry) bool { return e.Name == name && string(e.Body) == "default\n" }) {
		errs = append(errs, fmt.Errorf("download without src: no entry %q with the uploaded content among %s\n%s", name, entryNames(entries), dx))
	}
	return errors.Join(errs...)
}

func entryNames(es []TarEntry) string {
	n := make([]string, len(es))
	for i, e := range es {
		n[i] = e.Name
	}
	return fmt.Sprintf("%q", n)
}

func checkDownloadRoundtrip(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "download")
	if err != nil {
		return err
	}
	tree := sampleTree()
	archive, err := BuildTar(tree, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	dir := "/workspace/round"
	if _, err := env.UploadOK(ctx, id, dir, archive); err != nil {
		return err
	}
	dx, err := env.Download(ctx, id, dir)
	if err != nil {
		return err
	}
	dx.judge() // this check judges the download's answer
	if err := expectStatus(dx, http.StatusOK); err != nil {
		return err
	}
	if !bytes.HasPrefix(dx.Body, []byte{0x1f, 0x8b}) {
		return fmt.Errorf("download is not gzip-compressed (the Python CLI reads it with a gzip-only reader)\n%s", dx)
	}
	got, err := ReadTarGz(dx.Body)
	if err != nil {
		return fmt.Errorf("download is not a readable tar.gz: %w\n%s", err, dx)
	}
	var errs []error
	byName := map[string]TarEntry{}
	for _, e := range got {
		if !tarNameContained(e.Name) || strings.HasPrefix(e.Name, "workspace/") || strings.HasPrefix(e.Name, "round/") {
			errs = append(errs, fmt.Errorf("entry %q: paths must be relative to src %s", e.Name, dir))
		}
		byName[e.Name] = e
	}
	for _, w := range tree {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("entry %q missing from the download (entries: %s)", w.Name, entryNames(got)))
		case w.Type == tar.TypeDir:
			if g.Type != tar.TypeDir {
				errs = append(errs, fmt.Errorf("entry %q has type %q, want a directory", w.Name, g.Type))
			}
		case g.Type != tar.TypeReg:
			errs = append(errs, fmt.Errorf("entry %q has type %q, want a regular file", w.Name, g.Type))
		case !bytes.Equal(g.Body, w.Body):
			errs = append(errs, fmt.Errorf("entry %q: %d bytes sha256 %s, want the uploaded %d bytes sha256 %s", w.Name, len(g.Body), sha(g.Body), len(w.Body), sha(w.Body)))
		case g.Mode&0o111 != w.Mode&0o111:
			errs = append(errs, fmt.Errorf("entry %q: mode %o, want %o (executable bits lost)", w.Name, g.Mode, w.Mode))
		}
	}
	if _, ok := byName["nested/deep"]; !ok {
		errs = append(errs, fmt.Errorf("directory entry nested/deep missing from the download (entries: %s)", entryNames(got)))
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("the download was:\n%s", dx))
	}
	return errors.Join(errs...)
}

func checkDownloadSingleFile(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "single")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "mkdir -p /workspace/one && printf 'single file\\n' > /workspace/one/file.txt && echo other > /workspace/one/other.txt"); err != nil {
		return err
	}
	dx, err := env.Download(ctx, id, "/workspace/one/file.txt")
	if err != nil {
		return err
	}
	if err := expectSuccess(dx); err != nil {
		return err
	}
	got, err := ReadTarGz(dx.Body)
	if err != nil {
		return fmt.Errorf("download is not a readable tar.gz: %w\n%s", err, dx)
	}
	if len(got) != 1 || got[0].Type != tar.TypeReg || path.Base(got[0].Name) != "file.txt" || string(got[0].Body) != "single file\n" {
		return fmt.Errorf("want exactly one regular entry file.txt holding \"single file\\n\", got entries %s\n%s", entryNames(got), dx)
	}
	return nil
}

func checkDownloadMissing(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "missing")
	if err != nil {
		return err
	}
	dx, err := env.Download(ctx, id, "/workspace/no-such-file-"+env.ID("x"))
	if err != nil {
		return err
	}
	return expectError(dx, http.StatusNotFound)
}

func checkFilesUnknown(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	env.Track(id)
	archive, err := BuildTar([]TarEntry{{Name: "a.txt", Body: []byte("a")}}, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	var errs []error
	if x, err := env.Upload(ctx, id, "/workspace", archive); err != nil {
		errs = append(errs, err)
	} else if err := expectUnknown(x); err != nil {
		errs = append(errs, fmt.Errorf("upload: %w", err))
	}
	if x, err := env.Download(ctx, id, "/workspace"); err != nil {
		errs = append(errs, err)
	} else if err := expectUnknown(x); err != nil {
		errs = append(errs, fmt.Errorf("download: %w", err))
	}
	return errors.Join(errs...)
}

func checkUploadInvalid(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "badtar")
	if err != nil {
		return err
	}
	good, err := BuildTar([]TarEntry{{Name: "a.txt", Body: bytes.Repeat([]byte("a"), 4096)}}, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	var errs []error
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"text", []byte("this is not a tar archive, just some words that go on for a while to fill a block")},
		{"truncated gzip", good[:len(good)/2]},
		{"gzip of text", gzipBytes([]byte("not a tar inside the gzip either; not a tar inside the gzip either"))},
	} {
		x, err := env.Upload(ctx, id, "/workspace/bad", c.body)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := newGzip(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func checkHostileArchives(ctx context.Context, env *Env) error {
	a, err := env.NewSandbox(ctx, "hostile")
	if err != nil {
		return err
	}
	b, err := env.NewSandbox(ctx, "witness")
	if err != nil {
		return err
	}
	tag := env.ID("t")
	h := "/workspace/h"
	dest := h + "/in"
	if _, err := env.Sh(ctx, a, fmt.Sprintf("mkdir -p %s && printf original > %s/outside.txt", dest, h)); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	esc := func(s string) string { return "esc-" + s + "-" + tag }
	archives := []struct {
		name    string
		entries []TarEntry
	}{
		{"dot-dot", []TarEntry{
			{Name: "../" + esc("dd1"), Body: []byte("x")},
			{Name: "../../" + esc("dd2"), Body: []byte("x")},
			{Name: "../../../" + esc("dd3"), Body: []byte("x")},
			{Name: "sub/../../" + esc("dd4"), Body: []byte("x")},
		}},
		{"absolute", []TarEntry{
			{Name: "/tmp/" + esc("abs1"), Body: []byte("x")},
			{Name: "/workspace/" + esc("abs2"), Body: []byte("x")},
		}},
		{"symlink-dir", []TarEntry{
			{Name: "sl", Type: tar.TypeSymlink, Linkname: ".."},
			{Name: "sl/" + esc("sym1"), Body: []byte("x")},
		}},
		{"symlink-absolute", []TarEntry{
			{Name: "sla", Type: tar.TypeSymlink, Linkname: "/tmp"},
			{Name: "sla/" + esc("sym2"), Body: []byte("x")},
		}},
		{"symlink-overwrite", []TarEntry{
			{Name: "so", Type: tar.TypeSymlink, Linkname: "../outside.txt"},
			{Name: "so", Body: []byte("pwned")},
		}},
		{"hardlink-overwrite", []TarEntry{
			{Name: "hl", Type: tar.TypeLink, Linkname: "../outside.txt"},
			{Name: "hl", Body: []byte("pwned")},
		}},
		{"hardlink-absolute", []TarEntry{
			{Name: "hla", Type: tar.TypeLink, Linkname: h + "/outside.txt"},
		}},
		{"device", []TarEntry{
			{Name: "dev-" + tag, Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		}},
		{"fifo", []TarEntry{
			{Name: "fifo-" + tag, Type: tar.TypeFifo, Mode: 0o644},
		}},
	}
	var errs []error
	for _, ar := range archives {
		body, err := BuildTar(ar.entries, true)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSuite, err)
		}
		x, err := env.Upload(ctx, a, dest, body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s archive: %w", ar.name, err))
			continue
		}
		switch {
		case x.Status == http.StatusBadRequest:
			if err := expectError(x, http.StatusBadRequest); err != nil {
				errs = append(errs, fmt.Errorf("%s archive: %w", ar.name, err))
			}
		case success(x.Status):
			// Accepted: allowed only if contained, verified below.
		default:
			errs = append(errs, fmt.Errorf("%s archive: %w", ar.name, expectStatus(x, http.StatusBadRequest)))
		}
	}
	// Nothing appeared outside dest, seen from the sandbox itself...
	var paths []string
	for _, dir := range []string{h, "/workspace", "/", "/tmp"} {
		for _, s := range []string{"dd1", "dd2", "dd3", "dd4", "abs1", "abs2", "sym1", "sym2"} {
			paths = append(paths, path.Join(dir, esc(s)))
		}
	}
	probe := "for p in " + strings.Join(paths, " ") + "; do if [ -e \"$p\" ]; then echo \"$p\"; fi; done"
	devices := fmt.Sprintf("for p in %s/dev-%s %s/fifo-%s; do if [ -c \"$p\" ] || [ -b \"$p\" ] || [ -p \"$p\" ]; then echo \"$p\"; fi; done; ", dest, tag, dest, tag)
	out, err := env.Sh(ctx, a, probe+"; "+devices+"printf 'outside.txt=%s links=%s\\n' \"$(cat "+h+"/outside.txt)\" \"$(stat -c %h "+h+"/outside.txt)\"")
	if err != nil {
		errs = append(errs, fmt.Errorf("inspect the sandbox: %w", err))
	} else {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		if found := lines[:len(lines)-1]; len(found) > 0 {
			errs = append(errs, fmt.Errorf("hostile archive entries were written outside dest %s, or device or fifo entries created: %q", dest, found))
		}
		if last != "outside.txt=original links=1" {
			errs = append(errs, fmt.Errorf("a file outside dest was changed or linked through a symlink or hardlink entry: %s", last))
		}
	}
	// ... and from a second sandbox.
	if out, err := env.Sh(ctx, b, probe); err != nil {
		errs = append(errs, fmt.Errorf("inspect a second sandbox: %w", err))
	} else if strings.TrimSpace(out) != "" {
		errs = append(errs, fmt.Errorf("hostile archive entries uploaded to one sandbox appeared in another: %q", strings.Fields(out)))
	}
	// The sandbox still works.
	if err := env.shOutput(ctx, a, "echo ok", "ok\n", "exec after hostile uploads"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
