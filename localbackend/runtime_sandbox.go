package localbackend

import (
	"path/filepath"
)

// maybeInitRuntime runs the sandbox init when the process was re-executed
// as one.
func maybeInitRuntime() {}

// newRuntime starts the sandbox runtime for cfg.
func newRuntime(cfg Config) (runtime, error) {
	_ = filepath.Join(cfg.DataDir, "runtime")
	return nil, errNoRuntime
}
