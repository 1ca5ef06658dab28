package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/quirks"
)

// allBytes is every byte value, twice, for binary safety.
func allBytes() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestFilesTarFallback runs the file helpers against a plain v1 backend
// (no /v1/info, no files API): reads, writes and stat travel as
// one-entry tar archives and give the same results; what tar cannot do is
// ErrUnsupported.
func TestFilesTarFallback(t *testing.T) {
	t.Parallel()
	for _, q := range []quirks.Quirks{{NoExtensions: true}, quirks.All(quirks.TimeRFC3339)} {
		bo := testOptions()
		bo.Quirks = &q
		c, _ := setupWith(t, bo)
		ctx := context.Background()
		sb := c.Sandbox("fallback")
		_, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
		assertNoErr(t, err)

		data := allBytes()
		fi, err := sb.WriteFile(ctx, "dir/bin.dat", data, 0o600)
		assertNoErr(t, err)
		assertEq(t, "written path", fi.Path, "/workspace/dir/bin.dat")
		got, err := sb.ReadFile(ctx, "/workspace/dir/bin.dat")
		assertNoErr(t, err)
		if !bytes.Equal(got, data) {
			t.Errorf("read back %d bytes, differ from the %d written", len(got), len(data))
		}
		rc, err := sb.Open(ctx, "dir/bin.dat", OpenOptions{Offset: 10, Length: 5})
		assertNoErr(t, err)
		part, _ := io.ReadAll(rc)
		rc.Close()
		assertEq(t, "range", string(part), string(data[10:15]))

		st, err := sb.Stat(ctx, "dir/bin.dat")
		assertNoErr(t, err)
		assertEq(t, "stat type", st.Type, TypeFile)
		assertEq(t, "stat size", st.Size, int64(len(data)))
		assertEq(t, "stat mode", st.Mode, fs.FileMode(0o600))
		st, err = sb.Stat(ctx, "dir")
		assertNoErr(t, err)
		assertEq(t, "stat dir type", st.Type, TypeDir)

		w, err := sb.CreateFile(ctx, "streamed.txt", WriteOptions{})
		assertNoErr(t, err)
		for range 100 {
			io.WriteString(w, "0123456789")
		}
		assertNoErr(t, w.Close())
		got, err = sb.ReadFile(ctx, "streamed.txt")
		assertNoErr(t, err)
		assertEq(t, "streamed size", len(got), 1000)

		_, err = sb.ReadFile(ctx, "missing")
		assertIs(t, err, ErrNotFound)
		_, err = sb.ReadFile(ctx, "dir")
		assertIs(t, err, ErrConflict)
		_, err = sb.WriteFileWith(ctx, "x", nil, WriteOptions{CreateOnly: true})
		assertIs(t, err, ErrUnsupported)
		for _, err := range sb.ReadDir(ctx, "", ReadDirOptions{}) {
			assertIs(t, err, ErrUnsupported)
		}
		assertIs(t, sb.Remove(ctx, "x"), ErrUnsupported)
		_, err = sb.Watch(ctx, "", WatchOptions{})
		assertIs(t, err, ErrUnsupported)

		fsys := sb.FS(ctx)
		got, err = fs.ReadFile(fsys, "dir/bin.dat")
		assertNoErr(t, err)
		assertEq(t, "fs.ReadFile size", len(got), len(data))
		if _, err := fs.Stat(fsys, "nope"); !errorsIs(err, fs.ErrNotExist) {
			t.Errorf("fs.Stat of a missing file: %v, want fs.ErrNotExist", err)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestFilesWithoutExtension: against a backend with /v1/info but without
// files.ops and files.watch, reads, writes and stat take the tar fallback
// and the rest fails with ErrUnsupported, before any /fs/ request.
func TestFilesWithoutExtension(t *testing.T) {
	t.Parallel()
	bo := testOptions()
	bo.Backend.Extensions = []string{ExtInfo, ExtSandboxesGet, ExtSandboxesList, ExtExecStream, ExtExecFlags, ExtUploadChunked}
	c, f := setupWith(t, bo)
	ctx := context.Background()
	sb := c.Sandbox("noext")
	_, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
	assertNoErr(t, err)

	r := bytes.NewReader([]byte("from a reader"))
	_, err = sb.WriteFileFrom(ctx, "c.txt", r, WriteOptions{})
	assertNoErr(t, err)
	got, err := sb.ReadFile(ctx, "c.txt")
	assertNoErr(t, err)
	assertEq(t, "content", string(got), "from a reader")
	w, err := sb.CreateFile(ctx, "a/b.txt", WriteOptions{Mode: 0o600})
	assertNoErr(t, err)
	io.WriteString(w, "streamed")
	assertNoErr(t, w.Close())
	got, err = sb.ReadFile(ctx, "a/b.txt")
	assertNoErr(t, err)
	assertEq(t, "content", string(got), "streamed")
	st, err := sb.Stat(ctx, "a/b.txt")
	assertNoErr(t, err)
	assertEq(t, "mode", st.Mode, fs.FileMode(0o600))

	_, err = sb.MkdirAll(ctx, "x", 0)
	assertIs(t, err, ErrUnsupported)
	assertIs(t, sb.RemoveAll(ctx, "x"), ErrUnsupported)
	_, err = sb.Rename(ctx, "a", "b")
	assertIs(t, err, ErrUnsupported)
	_, err = sb.Watch(ctx, "", WatchOptions{})
	assertIs(t, err, ErrUnsupported)
	for _, r := range f.Requests() {
		if strings.Contains(r.Path, "/fs/") {
			t.Errorf("%s %s sent to a backend without the files API", r.Method, r.Path)
		}
		// The one-file archive's size is known: it is never streamed.
		if strings.HasSuffix(r.Path, "/files/upload") && (r.ContentLength <= 0 || r.ContentLength%512 != 0) {
			t.Errorf("upload of a one-file archive: Content-Length %d, want a multiple of 512", r.ContentLength)
		}
	}
}

// TestFilesRetries: a 503 is retried for reads and unconditional writes
// of a replayable body, never for conditional writes, streamed writes or
// moves.
func TestFilesRetries(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	sb := c.Sandbox("retry")
	_, err := sb.Create(ctx, CreateOptions{TTL: time.Minute})
	assertNoErr(t, err)
	_, err = sb.WriteFile(ctx, "f", []byte("x"), 0)
	assertNoErr(t, err)
	var failNext atomic.Bool
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/fs/") && failNext.Swap(false) {
			writeJSONError(w, http.StatusServiceUnavailable, "busy")
			return true
		}
		return false
	})
	for _, tc := range []struct {
		name    string
		retried bool
		call    func() error
	}{
		{"read", true, func() error { _, err := sb.ReadFile(ctx, "f"); return err }},
		{"stat", true, func() error { _, err := sb.Stat(ctx, "f"); return err }},
		{"write", true, func() error { _, err := sb.WriteFile(ctx, "f", []byte("y"), 0); return err }},
		{"mkdir -p", true, func() error { _, err := sb.MkdirAll(ctx, "d", 0); return err }},
		{"write from a seeker", true, func() error {
			r := bytes.NewReader([]byte("skip:rest"))
			io.CopyN(io.Discard, r, 5)
			if _, err := sb.WriteFileFrom(ctx, "from", r, WriteOptions{}); err != nil {
				return err
			}
			if got, err := sb.ReadFile(ctx, "from"); err != nil || string(got) != "rest" {
				return fmt.Errorf("written %q (%v), want what remained of the reader", got, err)
			}
			return nil
		}},
		{"write from a stream", false, func() error {
			_, err := sb.WriteFileFrom(ctx, "from", io.MultiReader(strings.NewReader("x")), WriteOptions{})
			return err
		}},
		{"conditional write", false, func() error {
			_, err := sb.WriteFileWith(ctx, "g", []byte("y"), WriteOptions{CreateOnly: true})
			return err
		}},
		{"streamed write", false, func() error {
			w, err := sb.CreateFile(ctx, "f", WriteOptions{})
			if err != nil {
				return err
			}
			io.WriteString(w, "z")
			return w.Close()
		}},
		{"move", false, func() error { _, err := sb.Rename(ctx, "f", "h"); return err }},
	} {
		failNext.Store(true)
		err := tc.call()
		if tc.retried && err != nil {
			t.Errorf("%s: %v, want it retried past the 503", tc.name, err)
		}
		if !tc.retried && !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want the 503 (not retried)", tc.name, err)
		}
	}
}
