package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/noxrunner/nox/api"
)

// execDir checks an ExecSpec's argv and returns its working directory,
// cleaned, api.Workspace when unset.
func execDir(e ExecSpec) (string, error) {
	if len(e.Argv) == 0 || e.Argv[0] == "" {
		return "", errors.New("exec: empty argv")
	}
	dir := e.Dir
	if dir == "" {
		dir = api.Workspace
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%w: %q is not absolute", ErrNoWorkdir, dir)
	}
	return filepath.Clean(dir), nil
}

// hostPath maps a sandbox path under /workspace or /tmp to the host
// directories that stand for them in tiers without a mount namespace; other
// paths are returned as they are.
func hostPath(dir, workspace, tmp string) string {
	if rest, ok := strings.CutPrefix(dir, api.Workspace); ok && (rest == "" || rest[0] == '/') {
		return workspace + rest
	}
	if rest, ok := strings.CutPrefix(dir, "/tmp"); ok && (rest == "" || rest[0] == '/') {
		return tmp + rest
	}
	return dir
}

// hostEnv rewrites, in tiers without a mount namespace, the variables that
// name a directory (HOME, PWD, TMPDIR, TMP, TEMP) from /workspace or /tmp
// to the host directories that stand for them, as hostPath does for the
// working directory: without it a command would be told to write where
// it cannot. Other variables are left as they are.
func hostEnv(env []string, workspace, tmp string) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		switch k {
		case "HOME", "PWD", "TMPDIR", "TMP", "TEMP":
			if ok && filepath.IsAbs(v) {
				kv = k + "=" + hostPath(filepath.Clean(v), workspace, tmp)
			}
		}
		out[i] = kv
	}
	return out
}
