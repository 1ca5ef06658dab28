package server_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/server"
)

// get sends a GET (or method) with headers and returns the answer.
func (e *env) send(method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

func TestReadFile(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{})
	lastMod := d.modTime.Format(http.TimeFormat)
	cases := []struct {
		name, method string
		hdr          map[string]string
		status       int
		body         string
		contentRange string
	}{
		{name: "whole", hdr: nil, status: 200, body: "0123456789"},
		{name: "range", hdr: map[string]string{"Range": "bytes=2-4"}, status: 206, body: "234", contentRange: "bytes 2-4/10"},
		{name: "suffix", hdr: map[string]string{"Range": "bytes=-3"}, status: 206, body: "789", contentRange: "bytes 7-9/10"},
		{name: "unsatisfiable", hdr: map[string]string{"Range": "bytes=20-30"}, status: 416, contentRange: "bytes */10"},
		{name: "if-none-match", hdr: map[string]string{"If-None-Match": `"v1"`}, status: 304},
		{name: "if-none-match other", hdr: map[string]string{"If-None-Match": `"v0"`}, status: 200, body: "0123456789"},
		{name: "if-modified-since", hdr: map[string]string{"If-Modified-Since": lastMod}, status: 304},
		{name: "if-range stale", hdr: map[string]string{"Range": "bytes=0-0", "If-Range": `"v0"`}, status: 200, body: "0123456789"},
		{name: "if-range current", hdr: map[string]string{"Range": "bytes=0-0", "If-Range": `"v1"`}, status: 206, body: "0", contentRange: "bytes 0-0/10"},
		{name: "head", method: "HEAD", status: 200},
	}
	for _, c := range cases {
		method := c.method
		if method == "" {
			method = "GET"
		}
		resp, body := e.send(method, "/v1/sandboxes/a/fs/file?path=out.txt", nil, c.hdr)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d; body %s", c.name, resp.StatusCode, c.status, body)
			continue
		}
		if c.status == 416 {
			expectError(t, resp, body, 416, `Range: "bytes=20-30" lies outside the file of 10 bytes`)
		} else if string(body) != c.body {
			t.Errorf("%s: body %q, want %q", c.name, body, c.body)
		}
		if got := resp.Header.Get("Content-Range"); got != c.contentRange {
			t.Errorf("%s: Content-Range %q, want %q", c.name, got, c.contentRange)
		}
		// A 304 carries the ETag; net/http drops Last-Modified from it.
		if c.status != 416 && (resp.Header.Get("ETag") != `"v1"` || c.status != 304 && resp.Header.Get("Last-Modified") != lastMod) {
			t.Errorf("%s: ETag %q Last-Modified %q", c.name, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
		}
		if c.status == 200 && (resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Content-Length") != "10") {
			t.Errorf("%s: Content-Type %q Content-Length %q", c.name, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"))
		}
	}
	if got := d.recorded(); len(got) != len(cases) || got[0] != "/workspace/out.txt" {
		t.Errorf("backend saw paths %q", got)
	}
}

// Every path field is resolved in one place: relative to /workspace,
// cleaned, and refused with a 400 naming the field when it holds NUL or
// climbs above /.
func TestFilePaths(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/sandboxes/a/fs/file?path=" + "/../etc/passwd"},
		{"GET", "/v1/sandboxes/a/fs/stat?path=" + "../../x"},
		{"GET", "/v1/sandboxes/a/fs/list?path=" + "%00"},
		{"GET", "/v1/sandboxes/a/fs/watch?path=" + "a/../../../b"},
		{"PUT", "/v1/sandboxes/a/fs/file?path=" + "x%00y"},
	} {
		resp, body := e.do(c.method, c.path, nil)
		expectError(t, resp, body, 400, "path: ")
	}
	resp, body := e.do("POST", "/v1/sandboxes/a/fs/move", map[string]any{"src": "ok", "dst": "/../x"})
	expectError(t, resp, body, 400, `dst: "/../x" climbs above /`)
	resp, body = e.do("POST", "/v1/sandboxes/a/fs/move", map[string]any{"src": "../../a", "dst": "b"})
	expectError(t, resp, body, 400, `src: "../../a" climbs above /`)
	resp, body = e.do("POST", "/v1/sandboxes/a/fs/move", map[string]any{"src": "d", "dst": "d/e"})
	expectError(t, resp, body, 400, "cannot move into itself")
	resp, body = e.do("POST", "/v1/sandboxes/a/fs/remove", map[string]any{"path": "."})
	expectError(t, resp, body, 400, "/workspace itself cannot be removed")
	resp, body = e.do("POST", "/v1/sandboxes/a/fs/mkdir", map[string]any{"path": "a\x00"})
	expectError(t, resp, body, 400, "path: must not contain a NUL byte")
	if got := d.recorded(); len(got) != 0 {
		t.Errorf("backend saw %q", got)
	}

	e.do("GET", "/v1/sandboxes/a/fs/stat?path=./x/../y/", nil)
	e.do("GET", "/v1/sandboxes/a/fs/stat?path=/tmp//z", nil)
	e.do("POST", "/v1/sandboxes/a/fs/remove", map[string]any{"path": "build", "recursive": true})
	e.do("POST", "/v1/sandboxes/a/fs/mkdir", map[string]any{"path": "a/b", "parents": true})
	e.do("POST", "/v1/sandboxes/a/fs/move", map[string]any{"src": "a", "dst": "/workspace/b", "overwrite": true})
	want := []string{"/workspace/y", "/tmp/z", "/workspace/build recursive=true", "/workspace/a/b"}
	if got := d.recorded(); !reflect.DeepEqual(got, want) {
		t.Errorf("backend saw %q, want %q", got, want)
	}
	d.fmu.Lock()
	defer d.fmu.Unlock()
	if len(d.moves) != 1 || d.moves[0] != (driver.MoveRequest{Src: "/workspace/a", Dst: "/workspace/b", Overwrite: true}) {
		t.Errorf("moves %+v", d.moves)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{MaxUploadBytes: 16})
	resp, body := e.send("PUT", "/v1/sandboxes/a/fs/file?path=out.txt&mode=0600&parents=true", strings.NewReader("hello"), map[string]string{"If-Match": `"v1"`})
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"v2"` || !strings.Contains(string(body), `"size":5`) {
		t.Fatalf("write: %d %q %s", resp.StatusCode, resp.Header.Get("ETag"), body)
	}
	resp, body = e.send("PUT", "/v1/sandboxes/a/fs/file?path=/workspace/new", strings.NewReader(""), map[string]string{"If-None-Match": "*"})
	if resp.StatusCode != 201 {
		t.Fatalf("create-only write: %d %s", resp.StatusCode, body)
	}
	// Over MaxUploadBytes: by Content-Length before the backend, chunked
	// while it reads.
	resp, body = e.send("PUT", "/v1/sandboxes/a/fs/file?path=big", strings.NewReader(strings.Repeat("x", 17)), nil)
	expectError(t, resp, body, 413, "body: exceeds the limit of 16 bytes")
	resp, body = e.send("PUT", "/v1/sandboxes/a/fs/file?path=big", io.MultiReader(strings.NewReader(strings.Repeat("x", 17))), nil)
	expectError(t, resp, body, 413, "body exceeds the upload limit of 16 bytes")
	for _, c := range []struct {
		query string
		hdr   map[string]string
		want  string
	}{
		{"&mode=99", nil, "mode"},
		{"", map[string]string{"If-None-Match": `"v1"`}, "If-None-Match: only *"},
		{"", map[string]string{"If-Match": "*"}, "If-Match"},
		{"", map[string]string{"If-Match": `"v1"`, "If-None-Match": "*"}, "If-Match: cannot be combined"},
	} {
		resp, body := e.send("PUT", "/v1/sandboxes/a/fs/file?path=x"+c.query, strings.NewReader("x"), c.hdr)
		expectError(t, resp, body, 400, c.want)
	}
	d.fmu.Lock()
	defer d.fmu.Unlock()
	want := []driver.WriteFileRequest{
		{Path: "/workspace/out.txt", Mode: 0o600, HasMode: true, Parents: true, IfMatch: `"v1"`, MaxBytes: 16},
		{Path: "/workspace/new", Mode: 0o644, CreateOnly: true, MaxBytes: 16},
		{Path: "/workspace/big", Mode: 0o644, MaxBytes: 16},
	}
	if !reflect.DeepEqual(d.writes, want) || d.written[0] != "hello" {
		t.Errorf("writes %+v %q\nwant %+v", d.writes, d.written, want)
	}
}

// Backend errors of the new categories get their statuses.
func TestFileErrors(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{})
	for _, c := range []struct {
		err    error
		status int
		want   string
	}{
		{fmt.Errorf("path %q: %w", "/workspace/x", driver.ErrNotFound), 404, `path "/workspace/x" not found`},
		{fmt.Errorf("path %q: is a directory: %w", "/workspace/x", driver.ErrConflict), 409, `path "/workspace/x": is a directory`},
		{fmt.Errorf("path %q: changed: %w", "/workspace/x", driver.ErrPreconditionFailed), 412, "changed"},
		{fmt.Errorf("sandbox storage is full: %w", driver.ErrInsufficientStorage), 507, "storage is full"},
	} {
		d.mu.Lock()
		d.err = c.err
		d.mu.Unlock()
		resp, body := e.send("PUT", "/v1/sandboxes/a/fs/file?path=x", strings.NewReader("x"), nil)
		expectError(t, resp, body, c.status, c.want)
	}
}

func TestListDir(t *testing.T) {
	t.Parallel()
	d := newFilesDouble()
	d.double.info.Limits.MaxListPageSize = 50
	e := setupWith(t, d, server.Options{})
	resp, body := e.do("GET", "/v1/sandboxes/a/fs/list?path=dir&depth=3&pageSize=500", nil)
	var page struct {
		Entries       []struct{ Path, Name, Mode string }
		NextPageToken string
	}
	if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 || len(page.Entries) != 2 || page.Entries[1].Name != "b" || page.Entries[0].Mode != "0644" {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	tok, _ := base64.RawURLEncoding.DecodeString(page.NextPageToken)
	if string(tok) != "/workspace/dir/b" {
		t.Errorf("token %q decodes to %q", page.NextPageToken, tok)
	}
	e.do("GET", "/v1/sandboxes/a/fs/list?path=/workspace/dir&pageToken="+page.NextPageToken, nil)
	for _, bad := range []string{"!!", base64.RawURLEncoding.EncodeToString([]byte("/etc/passwd")), base64.RawURLEncoding.EncodeToString([]byte("/workspace/dir"))} {
		resp, body := e.do("GET", "/v1/sandboxes/a/fs/list?path=dir&pageToken="+bad, nil)
		expectError(t, resp, body, 400, "pageToken")
	}
	d.fmu.Lock()
	defer d.fmu.Unlock()
	want := []driver.ListDirRequest{
		{Path: "/workspace/dir", Depth: 3, Limit: 50},
		{Path: "/workspace/dir", Depth: 1, Limit: 50, After: "/workspace/dir/b"},
	}
	if !reflect.DeepEqual(d.lists, want) {
		t.Errorf("lists %+v, want %+v", d.lists, want)
	}
	resp, body = e.do("GET", "/v1/info", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"maxListPageSize":50`) || !strings.Contains(string(body), `"files.ops"`) || !strings.Contains(string(body), `"files.watch"`) {
		t.Errorf("info: %s", body)
	}
}

// setupWith serves a given filesDouble.
func setupWith(t *testing.T, d *filesDouble, opts server.Options) *env {
	t.Helper()
	e, _ := setupFilesDouble(t, d, opts)
	return e
}

// sseEvent is one event of a stream; comments have the name ":".
type sseEvent struct{ name, data string }

// readSSE reads events from r and sends them to out until r ends.
func readSSE(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(r)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			out <- sseEvent{name: ":"}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestWatchPath(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{StreamHeartbeat: 100 * time.Millisecond})
	resp, err := http.Get(e.url + "/v1/sandboxes/a/fs/watch?path=src&recursive=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 16)
	go readSSE(resp.Body, events)
	next := func() sseEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return sseEvent{}
	}
	if ev := next(); ev.name != "ready" || ev.data != "{}" {
		t.Fatalf("first event %+v", ev)
	}
	w := <-d.watches
	if w.req != (driver.WatchRequest{Path: "/workspace/src", Recursive: true}) {
		t.Errorf("watch request %+v", w.req)
	}
	if ev := next(); ev.name != ":" {
		t.Errorf("no heartbeat during silence: %+v", ev)
	}
	w.events <- driver.FileEvent{Type: driver.EventRename, Path: "/workspace/src/b", OldPath: "/workspace/src/a"}
	w.events <- driver.FileEvent{Type: driver.EventOverflow}
	w.events <- driver.FileEvent{Type: driver.EventCreate, Path: "/workspace/src/d", IsDir: true}
	want := []sseEvent{
		{"change", `{"isDir":false,"oldPath":"/workspace/src/a","path":"/workspace/src/b","type":"rename"}`},
		{"overflow", "{}"},
		{"change", `{"isDir":true,"path":"/workspace/src/d","type":"create"}`},
	}
	for _, wev := range want {
		ev := next()
		for ev.name == ":" {
			ev = next()
		}
		if ev != wev {
			t.Errorf("event %+v, want %+v", ev, wev)
		}
	}
	w.end(fmt.Errorf("path %q: removed: %w", "/workspace/src", driver.ErrNotFound))
	ev := next()
	for ev.name == ":" {
		ev = next()
	}
	if ev.name != "error" || !strings.Contains(ev.data, `removed`) {
		t.Errorf("last event %+v", ev)
	}
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Error("watch not closed when the stream ended")
	}
}

// A client going away closes the backend's watch.
func TestWatchClientGone(t *testing.T) {
	t.Parallel()
	e, d := setupFiles(t, server.Options{})
	resp, err := http.Get(e.url + "/v1/sandboxes/a/fs/watch?path=.")
	if err != nil {
		t.Fatal(err)
	}
	w := <-d.watches
	resp.Body.Close()
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Error("watch not closed after the client went away")
	}
	d.mu.Lock()
	d.err = fmt.Errorf("too many watches: %w", driver.ErrBusy)
	d.mu.Unlock()
	resp2, body := e.do("GET", "/v1/sandboxes/a/fs/watch?path=.", nil)
	expectError(t, resp2, body, 503, "too many watches")
	if !errors.Is(d.err, driver.ErrBusy) {
		t.Fatal("unreachable")
	}
}
