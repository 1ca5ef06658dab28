package localbackend

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarBytes(t testing.TB, ents []tarEntry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: mt}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func tarGz(t testing.TB, ents []tarEntry) []byte { return tarBytes(t, ents, true) }

// snapshot records every path under dir with its type, mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalSnap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// readTarGz lists a gzip tar: name -> "type mode content-or-link".
func readTarGz(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("download is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		h.Uname = string(b) // content, for comparison
		out[h.Name] = h
	}
	return out
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("files", nil)
	ents := []tarEntry{
		{name: "dir/", typ: tar.TypeDir, mode: 0o750},
		{name: "dir/a.txt", body: "hello\n", mode: 0o640},
		{name: "dir/run.sh", body: "#!/bin/sh\necho run\n", mode: 0o755},
		{name: "empty/", typ: tar.TypeDir, mode: 0o700},
		{name: "dir/link", typ: tar.TypeSymlink, link: "a.txt"},
		{name: "dir/hard", typ: tar.TypeLink, link: "dir/a.txt"},
		{name: "top.bin", body: string([]byte{0, 1, 2, 255})},
	}
	for _, gz := range []bool{true, false} {
		resp, body := e.do("POST", "/v1/sandboxes/files/files/upload?dest=/workspace/up", tarBytes(t, ents, gz))
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"files":7`) {
			t.Fatalf("upload gz=%v: %d %s", gz, resp.StatusCode, body)
		}
	}
	// The command sees the files.
	r := e.exec("files", map[string]any{"cmd": []string{"sh", "-c", "./run.sh && cat link"}, "workdir": "/workspace/up/dir"})
	if r.Stdout != "run\nhello\n" {
		t.Errorf("exec in uploaded dir = %+v", r)
	}
	resp, body := e.do("GET", "/v1/sandboxes/files/files/download?src=/workspace/up", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("download: %d %s", resp.StatusCode, body)
	}
	got := readTarGz(t, body)
	want := map[string]struct {
		typ  byte
		mode int64
		data string
	}{
		"dir/":       {tar.TypeDir, 0o750, ""},
		"dir/a.txt":  {tar.TypeReg, 0o640, "hello\n"},
		"dir/hard":   {tar.TypeReg, 0o640, "hello\n"},
		"dir/run.sh": {tar.TypeReg, 0o755, "#!/bin/sh\necho run\n"},
		"empty/":     {tar.TypeDir, 0o700, ""},
		"dir/link":   {tar.TypeSymlink, 0o777, "a.txt"},
		"top.bin":    {tar.TypeReg, 0o644, string([]byte{0, 1, 2, 255})},
	}
	if len(got) != len(want) {
		t.Errorf("download has %d entries, want %d: %v", len(got), len(want), keys(got))
	}
	for name, w := range want {
		h, ok := got[name]
		if !ok {
			t.Errorf("download lacks %s", name)
			continue
		}
		data := h.Uname
		if w.typ == tar.TypeSymlink {
			data = h.Linkname
		}
		if h.Typeflag != w.typ || h.Mode&0o7777 != w.mode || data != w.data {
			t.Errorf("%s: type %c mode %o data %q; want %c %o %q", name, h.Typeflag, h.Mode, data, w.typ, w.mode, w.data)
		}
		if w.typ != tar.TypeSymlink && !h.ModTime.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
			t.Errorf("%s: mtime %v not kept", name, h.ModTime)
		}
	}
	// Single file.
	resp, body = e.do("GET", "/v1/sandboxes/files/files/download?src=/workspace/up/dir/a.txt", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("download file: %d %s", resp.StatusCode, body)
	}
	if got := readTarGz(t, body); len(got) != 1 || got["a.txt"] == nil || got["a.txt"].Uname != "hello\n" {
		t.Errorf("single-file download = %v", keys(got))
	}
	// Whole workspace by default.
	resp, body = e.do("GET", "/v1/sandboxes/files/files/download", nil)
	if resp.StatusCode != 200 || readTarGz(t, body)["up/dir/a.txt"] == nil {
		t.Errorf("default download: %d %v", resp.StatusCode, keys(readTarGz(t, body)))
	}
	resp, body = e.do("GET", "/v1/sandboxes/files/files/download?src=/workspace/missing", nil)
	expectError(t, resp, body, 404, `src "/workspace/missing"`)
	resp, body = e.do("GET", "/v1/sandboxes/files/files/download?src=/etc", nil)
	expectError(t, resp, body, 400, "src")
	resp, body = e.do("GET", "/v1/sandboxes/files/files/download?src=/workspace/../etc", nil)
	expectError(t, resp, body, 400, "src")
	resp, body = e.do("POST", "/v1/sandboxes/files/files/upload?dest=/tmp", tarGz(t, ents))
	expectError(t, resp, body, 400, "dest")
	resp, body = e.do("POST", "/v1/sandboxes/files/files/upload?dest=relative", tarGz(t, ents))
	expectError(t, resp, body, 400, "dest")
	resp, body = e.do("POST", "/v1/sandboxes/files/files/upload", "this is not a tar archive at all, not even close.........")
	expectError(t, resp, body, 400, "body")
	resp, body = e.do("POST", "/v1/sandboxes/files/files/upload?dest=/workspace/up/dir/a.txt", tarGz(t, ents))
	expectError(t, resp, body, 400, "not a directory")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestHostileArchives(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("hostile", nil)
	ws := e.b.store.workspacePath(sandboxKey("hostile"))
	// Existing content that must survive every rejected upload.
	resp, body := e.do("POST", "/v1/sandboxes/hostile/files/upload", tarGz(t, []tarEntry{{name: "keep.txt", body: "keep"}, {name: "sub/", typ: tar.TypeDir}}))
	if resp.StatusCode != 200 {
		t.Fatalf("seed upload: %d %s", resp.StatusCode, body)
	}
	// A symlink planted by sandboxed code that points outside.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(ws, "planted")); err != nil {
		t.Fatal(err)
	}
	// And one that stays inside the server's data but leaves the workspace.
	if err := os.Symlink("..", filepath.Join(ws, "dotdot")); err != nil {
		t.Fatal(err)
	}
	parent := filepath.Dir(e.b.store.boxDir(sandboxKey("hostile")))
	before := snapshot(t, ws)
	beforeParent := snapshot(t, parent)
	cases := []struct {
		name string
		ents []tarEntry
		want string
	}{
		{"dotdot", []tarEntry{{name: "ok.txt", body: "x"}, {name: "../evil.txt", body: "x"}}, `archive entry "../evil.txt"`},
		{"dotdot inside", []tarEntry{{name: "a/../../evil.txt", body: "x"}}, "escapes dest"},
		{"absolute", []tarEntry{{name: "/etc/evil", body: "x"}}, "absolute path"},
		{"symlink escape then file", []tarEntry{{name: "esc", typ: tar.TypeSymlink, link: "../../"}, {name: "esc/evil.txt", body: "x"}}, `archive entry "esc"`},
		{"absolute symlink", []tarEntry{{name: "esc", typ: tar.TypeSymlink, link: "/etc"}, {name: "esc/evil.txt", body: "x"}}, "points outside dest"},
		{"hardlink escape", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../../etc/passwd"}}, `archive entry "h"`},
		{"hardlink absolute", []tarEntry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, `archive entry "h"`},
		{"char device", []tarEntry{{name: "ok.txt", body: "x"}, {name: "null", typ: tar.TypeChar}}, "device and fifo"},
		{"block device", []tarEntry{{name: "sda", typ: tar.TypeBlock}}, "device and fifo"},
		{"fifo", []tarEntry{{name: "fifo", typ: tar.TypeFifo}}, "device and fifo"},
		{"through planted symlink", []tarEntry{{name: "planted/evil.txt", body: "x"}}, ""},
		{"through planted dotdot", []tarEntry{{name: "dotdot/evil.txt", body: "x"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do("POST", "/v1/sandboxes/hostile/files/upload", tarGz(t, c.ents))
			if c.want != "" {
				expectError(t, resp, body, 400, c.want)
				if after := snapshot(t, ws); !equalSnap(before, after) {
					t.Errorf("workspace changed:\nbefore %v\nafter  %v", before, after)
				}
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("wrote outside the workspace: %v", ents)
			}
			after := snapshot(t, parent)
			for k := range after {
				if _, ok := beforeParent[k]; !ok && !strings.Contains(k, "workspace") {
					t.Errorf("new path outside the workspace: %s", k)
				}
			}
		})
	}
	// dest through planted links is refused.
	for _, link := range []string{"planted2", "dotdot2"} {
		target := map[string]string{"planted2": outside, "dotdot2": ".."}[link]
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
		resp, body := e.do("POST", "/v1/sandboxes/hostile/files/upload?dest=/workspace/"+link+"/sub", tarGz(t, []tarEntry{{name: "evil.txt", body: "x"}}))
		expectError(t, resp, body, 400, "dest")
		resp, body = e.do("GET", "/v1/sandboxes/hostile/files/download?src=/workspace/"+link+"/workspace", nil)
		if resp.StatusCode != 400 {
			t.Errorf("download through %s: %v", link, keys(readTarGz(t, body)))
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the workspace: %v", ents)
	}
	for k := range snapshot(t, parent) {
		if _, ok := beforeParent[k]; !ok && !strings.Contains(k, "workspace") {
			t.Errorf("new path outside the workspace: %s", k)
		}
	}
}

func TestInterruptedUpload(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.create("intr", nil)
	ws := e.b.store.workspacePath(sandboxKey("intr"))
	before := snapshot(t, ws)
	data := tarGz(t, []tarEntry{{name: "a.txt", body: strings.Repeat("a", 1<<20)}, {name: "b.txt", body: strings.Repeat("b", 1<<20)}})
	// Send a Content-Length larger than what we send, then hang up.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	half := data[:len(data)/2]
	_, err = io.WriteString(conn, "POST /v1/sandboxes/intr/files/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-tar\r\nContent-Length: "+itoa(len(data))+"\r\n\r\n")
	if err == nil {
		_, err = conn.Write(half)
	}
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	// Wait until the server noticed and cleaned up its staging area.
	staging := filepath.Join(e.b.store.boxDir(sandboxKey("intr")), "upload")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, _ := os.ReadDir(staging)
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("staging not cleaned: %v", ents)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := snapshot(t, ws); !equalSnap(before, after) {
		t.Errorf("interrupted upload changed the workspace: %v", after)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestUploadLimits(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxUploadBytes = 64 << 10; c.MaxUploadEntries = 3 })
	e.create("lim", map[string]any{"ttlSeconds": 60, "ephemeralStorageLimit": "100Ki"})
	big := tarBytes(t, []tarEntry{{name: "big", body: strings.Repeat("x", 100<<10)}}, false)
	resp, body := e.do("POST", "/v1/sandboxes/lim/files/upload", big)
	expectError(t, resp, body, 413, "")
	// Same without Content-Length (chunked): caught while streaming.
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/lim/files/upload", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Content-Type", "application/x-tar")
	req.ContentLength = -1
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	expectError(t, r2, b2, 413, "upload limit")
	many := tarGz(t, []tarEntry{{name: "1"}, {name: "2"}, {name: "3"}, {name: "4"}})
	resp, body = e.do("POST", "/v1/sandboxes/lim/files/upload", many)
	expectError(t, resp, body, 413, "more than 3 entries")
	// Storage quota: 100Ki; compressed upload of 120Ki content.
	quota := tarGz(t, []tarEntry{{name: "q", body: strings.Repeat("q", 120<<10)}})
	resp, body = e.do("POST", "/v1/sandboxes/lim/files/upload", quota)
	expectError(t, resp, body, 507, "no space left in the sandbox's ephemeral storage (limit 100Ki")
	if ents, _ := os.ReadDir(e.b.store.workspacePath(sandboxKey("lim"))); len(ents) != 0 {
		t.Errorf("rejected uploads left files: %v", ents)
	}
}
