package localbackend

import (
	"fmt"
	"path"
	"strings"
)

// workspaceDir is where the workspace appears inside a sandbox.
const workspaceDir = "/workspace"

// workspaceRel maps a sandbox path inside /workspace to a path relative to
// the host workspace directory ("." for /workspace itself), for use with an
// os.Root opened on it. field names the request field in the error.
func workspaceRel(field, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s: must not be empty: %w", field, ErrInvalid)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%s: must not contain NUL: %w", field, ErrInvalid)
	}
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: %q must be an absolute path inside %s: %w", field, p, workspaceDir, ErrInvalid)
	}
	c := path.Clean(p)
	if c == workspaceDir {
		return ".", nil
	}
	rel, ok := strings.CutPrefix(c, workspaceDir+"/")
	if !ok {
		return "", fmt.Errorf("%s: %q is outside %s (the files API reaches only %s): %w", field, p, workspaceDir, workspaceDir, ErrInvalid)
	}
	return rel, nil
}
