package server_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/server"
)

// A backend that does not implement driver.Files and driver.Watcher has
// neither extension advertised (even when its Info lists them) and its fs
// endpoints answer 404 "no such endpoint", like a server without them.
func TestFilesAbsent(t *testing.T) {
	t.Parallel()
	in := fullInfo()
	in.Extensions = append(in.Extensions, api.ExtFilesOps, api.ExtFilesWatch)
	t.Run("not implemented", func(t *testing.T) {
		t.Parallel()
		checkFilesAbsent(t, setup(t, &double{info: in}, server.Options{}))
	})
	t.Run("not listed", func(t *testing.T) {
		t.Parallel()
		d := newFilesDouble()
		d.double.info = fullInfo()
		e, _ := setupFilesDouble(t, d, server.Options{})
		checkFilesAbsent(t, e)
	})
}

// checkFilesAbsent checks that e's server neither advertises nor serves
// the files extensions.
func checkFilesAbsent(t *testing.T, e *env) {
	resp, body := e.do("GET", "/v1/info", nil)
	var info struct{ Extensions []string }
	if err := json.Unmarshal(body, &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("info: %d %s %v", resp.StatusCode, body, err)
	}
	if slices.Contains(info.Extensions, api.ExtFilesOps) || slices.Contains(info.Extensions, api.ExtFilesWatch) {
		t.Errorf("extensions %v advertise files without driver.Files/driver.Watcher", info.Extensions)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/sandboxes/a/fs/file?path=x"},
		{"HEAD", "/v1/sandboxes/a/fs/file?path=x"},
		{"PUT", "/v1/sandboxes/a/fs/file?path=x"},
		{"GET", "/v1/sandboxes/a/fs/stat?path=x"},
		{"GET", "/v1/sandboxes/a/fs/list?path=x"},
		{"POST", "/v1/sandboxes/a/fs/mkdir"},
		{"POST", "/v1/sandboxes/a/fs/remove"},
		{"POST", "/v1/sandboxes/a/fs/move"},
		{"GET", "/v1/sandboxes/a/fs/watch?path=x"},
	} {
		resp, body := e.do(c.method, c.path, nil)
		if c.method == "HEAD" {
			if resp.StatusCode != 404 {
				t.Errorf("HEAD: %d", resp.StatusCode)
			}
			continue
		}
		expectError(t, resp, body, 404, "no such endpoint")
	}
}
