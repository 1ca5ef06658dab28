package localbackend

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/noxrunner/nox/localbackend/internal/sandbox"
)

// realEnv starts a backend on the real sandbox runtime (tier auto). It
// skips when the host provides no isolation, unless NOX_REQUIRE_ISOLATION=1.
func realEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	c := testConfig(t)
	// Tiers without a mount namespace reach the workspace by its host path
	// under the sandbox uid: the temp dir's parents must be searchable.
	for d := c.DataDir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if mod != nil {
		mod(&c)
	}
	b, err := New(c)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) && os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
			t.Skipf("no isolation on this host: %v", err)
		}
		t.Fatalf("New: %v", err)
	}
	return serve(t, b, c.Token)
}

func TestRealRuntime(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	t.Logf("tier %+v", e.b.Info())
}
