package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/sdk"
)

// TestCpWithoutFilesAPI: nox cp and the fs commands that can work on a
// backend without files.ops do (through one-file tar archives), and the
// others say the backend lacks the extension.
func TestCpWithoutFilesAPI(t *testing.T) {
	_, url := newTestBackend(t, testbackend.Options{Backend: membackend.Config{
		Extensions: []string{sdk.ExtInfo, sdk.ExtSandboxesGet, sdk.ExtSandboxesList}}})
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	src := filepath.Join(dir, "r.bin")
	if err := os.WriteFile(src, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if r := nox(t, "", "--base-url", url, "create", "v1"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := nox(t, "", "--base-url", url, "cp", src, "v1:in/"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	back := filepath.Join(dir, "back.bin")
	if r := nox(t, "", "--base-url", url, "cp", "v1:in/r.bin", back); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Errorf("round trip through tar: %d bytes (%v), differ from the %d sent", len(got), err, len(data))
	}
	if fi, err := os.Stat(back); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode of the copy: %v %v, want 0640", fi.Mode(), err)
	}
	if r := nox(t, "hi\n", "--base-url", url, "fs", "write", "v1", "w.txt"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := nox(t, "", "--base-url", url, "fs", "cat", "v1", "w.txt"); r.code != 0 || r.stdout != "hi\n" {
		t.Errorf("fs cat: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r := nox(t, "", "--base-url", url, "fs", "ls", "v1")
	if r.code != 1 || !strings.Contains(r.stderr, "extension files.ops") {
		t.Errorf("fs ls: %d %q, want exit 1 naming the extension", r.code, r.stderr)
	}
}
