package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// expectValidators checks x carries a quoted ETag and an HTTP-date
// Last-Modified, and returns the ETag.
func expectValidators(x *Exchange, lastModified bool) (string, error) {
	var errs []error
	etag := x.Header.Get("ETag")
	if len(etag) < 2 || !strings.HasSuffix(etag, `"`) || !(strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`)) {
		errs = append(errs, ownFinding(x, aspectHeader, fmt.Sprintf("ETag %q", etag), `a quoted ETag such as "\"5f1a-16\""`,
			fmt.Errorf("ETag %q, want a quoted entity tag\n%s", etag, x)))
	}
	if lastModified {
		if lm := x.Header.Get("Last-Modified"); lm == "" {
			errs = append(errs, ownFinding(x, aspectHeader, "no Last-Modified", "an HTTP-date Last-Modified",
				fmt.Errorf("no Last-Modified header\n%s", x)))
		} else if _, err := http.ParseTime(lm); err != nil {
			errs = append(errs, ownFinding(x, aspectHeader, fmt.Sprintf("Last-Modified %q", lm), "an HTTP-date Last-Modified",
				fmt.Errorf("Last-Modified %q is not an HTTP date\n%s", lm, x)))
		}
	}
	return etag, errors.Join(errs...)
}

// expectBody checks x's body is want.
func expectBody(x *Exchange, want []byte, what string) error {
	if bytes.Equal(x.Body, want) {
		return nil
	}
	return ownFinding(x, aspectBody, fmt.Sprintf("%d bytes %s", len(x.Body), clip(strconv.Quote(string(x.Body)), 80)),
		fmt.Sprintf("%d bytes %s", len(want), clip(strconv.Quote(string(want)), 80)),
		fmt.Errorf("%s: body %s, want %s\n%s", what, clip(strconv.Quote(string(x.Body)), 120), clip(strconv.Quote(string(want)), 120), x))
}

func checkFSRead(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-read")
	if err != nil {
		return err
	}
	content := []byte("hello, files\nline two\n")
	if _, err := env.Sh(ctx, id, `mkdir -p /workspace/r && printf 'hello, files\nline two\n' > /workspace/r/a.txt`); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	var etag string
	for _, p := range []string{"/workspace/r/a.txt", "r/a.txt"} {
		x, err := env.readFile(ctx, id, p, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.judge()
		if err := expectStatus(x, http.StatusOK); err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", p, err))
			continue
		}
		if err := expectBody(x, content, "read "+p); err != nil {
			errs = append(errs, err)
		}
		e, err := expectValidators(x, true)
		if err != nil {
			errs = append(errs, err)
		}
		if etag == "" {
			etag = e
		} else if e != etag {
			errs = append(errs, fmt.Errorf("the relative path r/a.txt has ETag %s, the absolute one %s: want the same file\n%s", e, etag, x))
		}
	}
	x, err := env.fsDo(ctx, fsReq{method: http.MethodHead, op: "file", id: id, query: pathQuery("/workspace/r/a.txt")})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := expectStatus(x, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("HEAD: %w", err))
	} else {
		if e, err := expectValidators(x, true); err != nil {
			errs = append(errs, fmt.Errorf("HEAD: %w", err))
		} else if etag != "" && e != etag {
			errs = append(errs, fmt.Errorf("HEAD answers ETag %s, GET %s\n%s", e, etag, x))
		}
		if cl := x.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(content)) {
			errs = append(errs, fmt.Errorf("HEAD answers Content-Length %s, want the file's %d bytes\n%s", cl, len(content), x))
		}
		if len(x.Body) > 0 {
			errs = append(errs, fmt.Errorf("HEAD answered a body of %d bytes\n%s", len(x.Body), x))
		}
	}
	return errors.Join(errs...)
}

func checkFSReadRange(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-range")
	if err != nil {
		return err
	}
	const content = "0123456789abcdef"
	if _, err := env.Sh(ctx, id, "printf "+content+" > /workspace/range.txt"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, c := range []struct{ rng, body, contentRange string }{
		{"bytes=2-5", "2345", "bytes 2-5/16"},
		{"bytes=-3", "def", "bytes 13-15/16"},
		{"bytes=10-", "abcdef", "bytes 10-15/16"},
		{"bytes=12-99", "cdef", "bytes 12-15/16"},
	} {
		x, err := env.readFile(ctx, id, "range.txt", http.Header{"Range": {c.rng}})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.judge()
		if x.Status != http.StatusPartialContent { // the range was not served: this check's own subject
			errs = append(errs, ownFinding(x, aspectStatus, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "status 206 with the range",
				fmt.Errorf("range %s: status %d, want 206 with the range\n%s", c.rng, x.Status, x)))
			continue
		}
		if err := expectBody(x, []byte(c.body), "Range: "+c.rng); err != nil {
			errs = append(errs, err)
		}
		if got := x.Header.Get("Content-Range"); got != c.contentRange {
			errs = append(errs, ownFinding(x, aspectHeader, fmt.Sprintf("Content-Range %q", got), fmt.Sprintf("Content-Range %q", c.contentRange),
				fmt.Errorf("range %s: Content-Range %q, want %q\n%s", c.rng, got, c.contentRange, x)))
		}
	}
	x, err := env.readFile(ctx, id, "range.txt", http.Header{"Range": {"bytes=16-20"}})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := expectError(x, http.StatusRequestedRangeNotSatisfiable); err != nil {
		errs = append(errs, fmt.Errorf("range bytes=16-20 of a 16-byte file: %w", err))
	}
	return errors.Join(errs...)
}

func checkFSReadConditional(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-cond-read")
	if err != nil {
		return err
	}
	const p = "/workspace/cond.txt"
	if _, err := env.Sh(ctx, id, "printf first > "+p); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	x, err := env.readFile(ctx, id, p, nil)
	if err != nil {
		return err
	}
	if err := expectSuccess(x); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	etag, lm := x.Header.Get("ETag"), x.Header.Get("Last-Modified")
	if etag == "" {
		return Skip("the file has no ETag to send back (fs/read judges it)")
	}
	type try struct {
		name string
		h    http.Header
		want int
		body string
	}
	tries := []try{
		{"If-None-Match: the current ETag", http.Header{"If-None-Match": {etag}}, http.StatusNotModified, ""},
		{"If-None-Match: another ETag", http.Header{"If-None-Match": {`"nox-conformance-other"`}}, http.StatusOK, "first"},
	}
	if lm != "" { // fs/read judges a missing one
		tries = append(tries, try{"If-Modified-Since: Last-Modified", http.Header{"If-Modified-Since": {lm}}, http.StatusNotModified, ""})
	}
	var errs []error
	for _, c := range tries {
		x, err := env.readFile(ctx, id, p, c.h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		x.judge()
		if err := expectStatus(x, c.want); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			continue
		}
		if err := expectBody(x, []byte(c.body), c.name); err != nil {
			errs = append(errs, err)
		}
	}
	// A change (of content and size, by a command) changes the ETag.
	if _, err := env.Sh(ctx, id, "printf 'second, longer' > "+p); err != nil {
		return errors.Join(append(errs, fmt.Errorf("change the file: %w", err))...)
	}
	x, err = env.readFile(ctx, id, p, http.Header{"If-None-Match": {etag}})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	x.judge()
	if err := expectStatus(x, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("If-None-Match: the ETag before the file changed: %w", err))
	} else {
		if err := expectBody(x, []byte("second, longer"), "read after the change"); err != nil {
			errs = append(errs, err)
		}
		if x.Header.Get("ETag") == etag {
			errs = append(errs, fmt.Errorf("the ETag %s did not change when the content did\n%s", etag, x))
		}
	}
	return errors.Join(errs...)
}
