package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// expectInfo checks the FileInfo answered in x describes a path p of type
// typ, of size bytes when a file (size < 0: any).
func expectInfo(x *Exchange, p, typ string, size int64) (fsInfo, error) {
	fi, err := decodeInfo(x)
	if err != nil {
		return fi, err
	}
	var errs []error
	want(&errs, "path", fi.Path, p, x)
	want(&errs, "type", fi.Type, typ, x)
	if typ == "file" && size >= 0 {
		want(&errs, "size", fi.Size, size, x)
	}
	return fi, errors.Join(errs...)
}

func checkFSWriteCreateReplace(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-write")
	if err != nil {
		return err
	}
	const p = "/workspace/w.txt"
	var errs []error
	for i, c := range []struct {
		content string
		status  int
	}{{"created\n", http.StatusCreated}, {"replaced, longer\n", http.StatusOK}} {
		x, err := env.writeFile(ctx, id, p, []byte(c.content), nil)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		x.judge()
		if err := expectStatus(x, c.status); err != nil {
			errs = append(errs, fmt.Errorf("write %d of %s: %w", i+1, p, err))
			continue
		}
		fi, err := expectInfo(x, p, "file", int64(len(c.content)))
		if err != nil {
			errs = append(errs, err)
		}
		if h := x.Header.Get("ETag"); h == "" {
			errs = append(errs, ownFinding(x, aspectHeader, "no ETag", "the new file's ETag", fmt.Errorf("write answered no ETag header\n%s", x)))
		} else if fi.Etag != "" && fi.Etag != h {
			errs = append(errs, fmt.Errorf("write answered ETag %s but FileInfo.etag %s\n%s", h, fi.Etag, x))
		}
		if err := env.shOutput(ctx, id, "cat "+p, c.content, fmt.Sprintf("content after write %d", i+1)); err != nil {
			errs = append(errs, err)
		}
	}
	// Relative paths, an empty body, and a body sent chunked.
	if x, err := env.writeFile(ctx, id, "empty-rel.txt", nil, nil); err != nil {
		errs = append(errs, err)
	} else {
		x.judge()
		if err := expectStatus(x, http.StatusCreated); err != nil {
			errs = append(errs, fmt.Errorf("write of an empty body to the relative path empty-rel.txt: %w", err))
		} else if _, err := expectInfo(x, "/workspace/empty-rel.txt", "file", 0); err != nil {
			errs = append(errs, err)
		}
	}
	chunk := bytes.Repeat([]byte("chunked body\n"), 20_000)
	x, _, err := env.fsSend(ctx, fsReq{method: http.MethodPut, op: "file", id: id, query: pathQuery("/workspace/chunked.txt"),
		header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: bytes.NewReader(chunk), size: -1})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	x.judge()
	if !success(x.Status) {
		errs = append(errs, writeChunkedRefused(x, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)),
			fmt.Errorf("a write of %d bytes sent chunked, without Content-Length, answered %d, want 201\n%s", len(chunk), x.Status, x)))
	} else if err := expectStatus(x, http.StatusCreated); err != nil {
		errs = append(errs, fmt.Errorf("write of a %d-byte body sent chunked, without Content-Length: %w", len(chunk), err))
	} else if out, err := env.Sh(ctx, id, "wc -c < /workspace/chunked.txt | tr -d ' '; sha256sum < /workspace/chunked.txt | cut -d' ' -f1"); err != nil {
		errs = append(errs, err)
	} else if want := fmt.Sprintf("%d\n%s\n", len(chunk), sha(chunk)); out != want {
		errs = append(errs, writeChunkedRefused(x, "then the file's size and sha256 are "+strings.ReplaceAll(strings.TrimSpace(out), "\n", " "),
			fmt.Errorf("a write of %d bytes sent chunked answered %d, but the file's size and sha256 are %q, want %q (was the body read by Content-Length only?)\n%s", len(chunk), x.Status, out, want, x)))
	}
	return errors.Join(errs...)
}

// writeChunkedRefused is the finding of a write sent chunked that was
// refused or lost: the same deviation as uploads sent chunked (a server
// reading bodies by Content-Length only), a MUST for writeFile, whose
// contract takes chunked bodies.
func writeChunkedRefused(x *Exchange, observed string, err error) *finding {
	return &finding{key: keyUploadChunked, req: Must, anchor: anchorFSWrite, aspect: aspectStatus, x: x,
		title:    "request bodies sent chunked, without Content-Length, are not read (writeFile must read them)",
		observed: observed, expected: "the body written, as with Content-Length", err: err}
}

// slowReader gives n bytes of b in pieces of chunk bytes, pausing between
// them, so a write stays in progress long enough to be read during.
type slowReader struct {
	b            byte
	n, chunk     int
	pause        time.Duration
	sinceLastGap int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if r.sinceLastGap >= r.chunk {
		time.Sleep(r.pause)
		r.sinceLastGap = 0
	}
	n := min(len(p), r.n, r.chunk-r.sinceLastGap)
	for i := range n {
		p[i] = r.b
	}
	r.n -= n
	r.sinceLastGap += n
	return n, nil
}

// maxAtomicSize is the size of the versions fs/write-atomic writes (less
// when limits.maxUploadBytes is smaller).
const maxAtomicSize = 2 << 20

// uploadCap is n, or the advertised maxUploadBytes when smaller.
func uploadCap(env *Env, n int64) int64 {
	if mp := limits(env).MaxUploadBytes; mp != nil && *mp > 0 && *mp < n {
		return *mp
	}
	return n
}

func checkFSWriteAtomic(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-atomic")
	if err != nil {
		return err
	}
	const p = "/workspace/atomic.bin"
	size := int(uploadCap(env, maxAtomicSize))
	if _, err := env.writeOK(ctx, id, p, bytes.Repeat([]byte{'a'}, size)); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var torn []error
	reads := 0
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := readWhole(ctx, env, id, p, size, buf)
				mu.Lock()
				reads++
				if err != nil && len(torn) < 3 {
					torn = append(torn, err)
				}
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}
	var errs []error
	for i, b := range []byte("bcbd") {
		r := &slowReader{b: b, n: size, chunk: max(size/16, 1), pause: 10 * time.Millisecond}
		x, _, err := env.fsSend(ctx, fsReq{method: http.MethodPut, op: "file", id: id, query: pathQuery(p),
			header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: r, size: int64(size)})
		if err != nil {
			errs = append(errs, fmt.Errorf("replace %d: %w", i+1, err))
			break
		}
		if err := expectSuccess(x); err != nil {
			errs = append(errs, fmt.Errorf("replace %d: %w", i+1, err))
			break
		}
	}
	close(stop)
	wg.Wait()
	env.Notef("%d whole reads while 4 replaces of a %d-byte file were written", reads, size)
	errs = append(errs, torn...)
	return errors.Join(errs...)
}

// readWhole reads p streamed and checks it holds one version of
// fs/write-atomic in full: size copies of one byte.
func readWhole(ctx context.Context, env *Env, id, p string, size int, buf []byte) error {
	x, resp, err := env.fsSend(ctx, fsReq{method: http.MethodGet, op: "file", id: id, query: pathQuery(p), streamResponse: true})
	if err != nil || resp == nil {
		if err == nil {
			err = expectStatus(x, http.StatusOK)
		}
		return fmt.Errorf("read during a replace: %w", err)
	}
	defer resp.Body.Close()
	var first byte
	n := 0
	for {
		m, rerr := resp.Body.Read(buf)
		for _, c := range buf[:m] {
			if n == 0 {
				first = c
			}
			if c != first {
				return ownFinding(x, aspectBody, fmt.Sprintf("byte %d is %q after %q", n, c, first), "one version in full",
					fmt.Errorf("a read during a replace saw a mix of versions: byte %d is %q, earlier ones %q\n%s", n, c, first, x))
			}
			n++
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read during a replace: %w\n%s", rerr, x)
		}
	}
	if n != size {
		return ownFinding(x, aspectBody, fmt.Sprintf("%d bytes", n), fmt.Sprintf("%d bytes, one version in full", size),
			fmt.Errorf("a read during a replace saw %d bytes of %q, want a whole version of %d bytes (the file was visible half-written)\n%s", n, first, size, x))
	}
	return nil
}

func checkFSWriteConditional(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-cond-write")
	if err != nil {
		return err
	}
	const p = "/workspace/cas.txt"
	x, err := env.writeOK(ctx, id, p, []byte("v1"))
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	etag := x.Header.Get("ETag")
	if etag == "" {
		return Skip("the write answered no ETag to compare (fs/write-create-replace judges it)")
	}
	var errs []error
	step := func(name string, h http.Header, target, content string, code int, after string) {
		x, err := env.writeFile(ctx, id, target, []byte(content), h)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if code == http.StatusPreconditionFailed {
			err = expectError(x, code)
		} else {
			x.judge()
			err = expectStatus(x, code)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if after != "" {
			if err := env.shOutput(ctx, id, "cat "+target, after, "content after "+name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	step("If-Match: another ETag", http.Header{"If-Match": {`"nox-conformance-other"`}}, p, "lost", http.StatusPreconditionFailed, "v1")
	step("If-None-Match: * on an existing file", http.Header{"If-None-Match": {"*"}}, p, "lost", http.StatusPreconditionFailed, "v1")
	step("If-Match: the current ETag", http.Header{"If-Match": {etag}}, p, "v2", http.StatusOK, "v2")
	step("If-Match: the ETag before the last replace", http.Header{"If-Match": {etag}}, p, "lost", http.StatusPreconditionFailed, "v2")
	step("If-None-Match: * on a new path", http.Header{"If-None-Match": {"*"}}, "/workspace/cas-new.txt", "new", http.StatusCreated, "new")
	return errors.Join(errs...)
}

func checkFSWriteParentsMode(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-parents")
	if err != nil {
		return err
	}
	var errs []error
	const deep = "/workspace/a/b/c.txt"
	if x, err := env.writeFile(ctx, id, deep, []byte("deep"), nil); err != nil {
		return err
	} else if err := expectError(x, http.StatusNotFound); err != nil {
		errs = append(errs, fmt.Errorf("write below a missing directory without parents: %w", err))
	}
	if x, err := env.writeFile(ctx, id, deep, []byte("deep"), nil, "parents", "true"); err != nil {
		return errors.Join(append(errs, err)...)
	} else {
		x.judge()
		// 200 too: a backend that wrongly wrote the first time replaces
		// now (fs/write-create-replace judges 201 against 200).
		if err := expectStatus(x, http.StatusCreated, http.StatusOK); err != nil {
			errs = append(errs, fmt.Errorf("write with parents=true: %w", err))
		} else if err := env.shOutput(ctx, id, "test -d /workspace/a/b && cat "+deep, "deep", "file written with parents=true"); err != nil {
			errs = append(errs, err)
		}
	}
	const m = "/workspace/mode.txt"
	modes := func(what, want string) {
		if err := env.shOutput(ctx, id, "stat -c %a "+m, want+"\n", what); err != nil {
			errs = append(errs, err)
		}
	}
	if x, err := env.writeFile(ctx, id, m, []byte("m"), nil, "mode", "0640"); err != nil {
		return errors.Join(append(errs, err)...)
	} else {
		x.judge()
		if err := expectStatus(x, http.StatusCreated); err != nil {
			errs = append(errs, fmt.Errorf("write with mode=0640: %w", err))
		} else {
			if fi, err := decodeInfo(x); err != nil {
				errs = append(errs, err)
			} else {
				want(&errs, "FileInfo.mode of a file written with mode=0640", fi.Mode, "0640", x)
			}
			modes("permission bits of a file written with mode=0640", "640")
		}
	}
	if _, err := env.writeOK(ctx, id, m, []byte("m2")); err != nil {
		errs = append(errs, err)
	} else {
		modes("permission bits after a replace without mode (the file keeps its own)", "640")
	}
	if _, err := env.writeOK(ctx, id, m, []byte("m3"), "mode", "0600"); err != nil {
		errs = append(errs, err)
	} else {
		modes("permission bits after a replace with mode=0600", "600")
	}
	if x, err := env.writeFile(ctx, id, "/workspace/a", []byte("over a dir"), nil); err != nil {
		errs = append(errs, err)
	} else if err := expectError(x, http.StatusConflict); err != nil {
		errs = append(errs, fmt.Errorf("write to a path that is a directory: %w", err))
	}
	return errors.Join(errs...)
}

// maxTestedWrite is the largest maxUploadBytes fs/write-too-large-413
// sends more than; above it the check is skipped as too slow.
const maxTestedWrite = 64 << 20

func checkFSWriteTooLarge(ctx context.Context, env *Env) error {
	mp := limits(env).MaxUploadBytes
	if mp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxUploadBytes")
	}
	max := *mp
	if max > maxTestedWrite {
		return Skip(fmt.Sprintf("limits.maxUploadBytes %d is above %d: too slow to exceed", max, maxTestedWrite))
	}
	id, err := env.NewSandbox(ctx, "fs-too-large")
	if err != nil {
		return err
	}
	const p = "/workspace/big.bin"
	if _, err := env.writeOK(ctx, id, p, []byte("before")); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, target := range []string{p, "/workspace/big-new.bin"} {
		body := io.LimitReader(repeatByte('x'), max+1)
		x, _, err := env.fsSend(ctx, fsReq{method: http.MethodPut, op: "file", id: id, query: pathQuery(target),
			header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: body, size: max + 1})
		if err != nil {
			errs = append(errs, fmt.Errorf("write of %d bytes (maxUploadBytes %d) to %s: %w", max+1, max, target, err))
			continue
		}
		if err := expectError(x, http.StatusRequestEntityTooLarge); err != nil {
			errs = append(errs, fmt.Errorf("write of %d bytes (maxUploadBytes %d) to %s: %w", max+1, max, target, err))
		}
	}
	if err := env.shOutput(ctx, id, "cat "+p+"; test -e /workspace/big-new.bin && echo ' big-new.bin exists'; true", "before",
		"the files after the refused writes"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// repeatByte is an endless reader of b.
type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// allBytes is every byte value, up and down, then CR LF pairs and NULs.
func allBytes() []byte {
	b := make([]byte, 0, 600)
	for i := range 256 {
		b = append(b, byte(i))
	}
	for i := 255; i >= 0; i-- {
		b = append(b, byte(i))
	}
	return append(b, "\r\n\r\n\x00\x00\xff\xfe"...)
}

func checkFSBinarySafe(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-binary")
	if err != nil {
		return err
	}
	content := allBytes()
	var errs []error
	// API to command.
	const up = "/workspace/bytes-up.bin"
	if x, err := env.writeFile(ctx, id, up, content, nil); err != nil {
		return err
	} else {
		x.judge()
		if err := expectStatus(x, http.StatusCreated); err != nil {
			errs = append(errs, fmt.Errorf("write of all 256 byte values: %w", err))
		} else if err := env.shOutput(ctx, id, "wc -c < "+up+" | tr -d ' '; sha256sum < "+up+" | cut -d' ' -f1",
			fmt.Sprintf("%d\n%s\n", len(content), sha(content)), "size and sha256 of the file written with all 256 byte values"); err != nil {
			errs = append(errs, err)
		}
	}
	// Command to API, and back.
	var script strings.Builder
	script.WriteString("printf '")
	for _, c := range content {
		fmt.Fprintf(&script, `\%03o`, c)
	}
	script.WriteString("' > /workspace/bytes-down.bin")
	if _, err := env.Sh(ctx, id, script.String()); err != nil {
		return errors.Join(append(errs, fmt.Errorf("prepare: %w", err))...)
	}
	for _, p := range []string{"/workspace/bytes-down.bin", up} {
		x, err := env.readFile(ctx, id, p, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.judge()
		if err := expectStatus(x, http.StatusOK); err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", p, err))
		} else if !bytes.Equal(x.Body, content) {
			i := 0
			for i < len(x.Body) && i < len(content) && x.Body[i] == content[i] {
				i++
			}
			errs = append(errs, ownFinding(x, aspectBody, fmt.Sprintf("%d bytes differing from byte %d", len(x.Body), i), fmt.Sprintf("the %d bytes written", len(content)),
				fmt.Errorf("read %s: %d bytes, want the %d bytes written; they differ from byte %d\n%s", p, len(x.Body), len(content), i, x)))
		}
	}
	return errors.Join(errs...)
}
