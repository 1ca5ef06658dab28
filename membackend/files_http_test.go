package membackend_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

// serve serves a new membackend with sandbox "s".
func serve(t *testing.T, cfg membackend.Config) string {
	t.Helper()
	cfg.Dir = t.TempDir()
	b, err := membackend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req(t, "PUT", srv.URL+"/v1/sandboxes/s", nil, nil, 200)
	return srv.URL
}

// req sends a request and checks its status.
func req(t *testing.T, method, url string, body io.Reader, hdr map[string]string, status int) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, status, data)
	}
	return resp, data
}

// The files API end to end over HTTP: all 256 byte values round-trip,
// ranges, a conditional write, and a watch that reports a command's file
// within 200 ms.
func TestFilesOverHTTP(t *testing.T) {
	t.Parallel()
	base := serve(t, membackend.Config{})
	_, info := req(t, "GET", base+"/v1/info", nil, nil, 200)
	if !strings.Contains(string(info), `"files.ops"`) || !strings.Contains(string(info), `"files.watch"`) || !strings.Contains(string(info), `"maxListPageSize":1000`) {
		t.Errorf("info: %s", info)
	}
	fs := base + "/v1/sandboxes/s/fs"
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	resp, _ := req(t, "PUT", fs+"/file?path=bin/all&parents=true", bytes.NewReader(all), nil, 201)
	etag := resp.Header.Get("ETag")
	_, got := req(t, "GET", fs+"/file?path=/workspace/bin/all", nil, nil, 200)
	if !bytes.Equal(got, all) {
		t.Fatalf("read back %d bytes, differ", len(got))
	}
	resp, got = req(t, "GET", fs+"/file?path=bin/all", nil, map[string]string{"Range": "bytes=254-"}, 206)
	if !bytes.Equal(got, all[254:]) || resp.Header.Get("ETag") != etag {
		t.Errorf("range: %q, ETag %q want %q", got, resp.Header.Get("ETag"), etag)
	}
	req(t, "GET", fs+"/file?path=bin/all", nil, map[string]string{"If-None-Match": etag}, 304)
	req(t, "PUT", fs+"/file?path=bin/all", strings.NewReader("v2"), map[string]string{"If-Match": etag}, 200)
	req(t, "PUT", fs+"/file?path=bin/all", strings.NewReader("v3"), map[string]string{"If-Match": etag}, 412)
	// curl --data-binary sends a form Content-Type; the body is raw anyway.
	req(t, "PUT", fs+"/file?path=curl.txt", strings.NewReader("a=b&c"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 201)
	resp, got = req(t, "HEAD", fs+"/file?path=curl.txt", nil, nil, 200)
	if len(got) != 0 || resp.Header.Get("Content-Length") != "5" || resp.Header.Get("ETag") == "" {
		t.Errorf("HEAD: %q %v", got, resp.Header)
	}
	req(t, "GET", fs+"/file?path=bin", nil, nil, 409)
	_, body := req(t, "GET", fs+"/file?path=nope", nil, nil, 404)
	if !strings.Contains(string(body), `path \"/workspace/nope\" not found`) {
		t.Errorf("404 body %s", body)
	}

	watch, err := http.Get(fs + "/watch?path=.")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Body.Close()
	sc := bufio.NewScanner(watch.Body)
	if !sc.Scan() || sc.Text() != "event: ready" {
		t.Fatalf("first line %q", sc.Text())
	}
	start := time.Now()
	req(t, "POST", base+"/v1/sandboxes/s/exec", strings.NewReader(`{"cmd":["sh","-c","echo hi > /workspace/made-by-exec"]}`), map[string]string{"Content-Type": "application/json"}, 200)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || !strings.Contains(data, "made-by-exec") {
			continue
		}
		var ev struct{ Type, Path string }
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Type != "create" || ev.Path != "/workspace/made-by-exec" {
			t.Fatalf("event %s: %v", data, err)
		}
		break
	}
	// The exec's own round trip is included: the figure is an upper bound
	// (logged: the 200 ms target is measured by the conformance run, not
	// asserted in a timed unit test).
	t.Logf("create reported %v after the exec began", time.Since(start))
}

// Without files.ops in Extensions the backend serves no files API, as
// clients relying on a tar fallback need.
func TestFilesSwitchedOff(t *testing.T) {
	t.Parallel()
	base := serve(t, membackend.Config{Extensions: []string{}})
	_, info := req(t, "GET", base+"/v1/info", nil, nil, 200)
	if strings.Contains(string(info), "files.") {
		t.Errorf("info: %s", info)
	}
	req(t, "GET", base+"/v1/sandboxes/s/fs/stat?path=.", nil, nil, 404)
}
