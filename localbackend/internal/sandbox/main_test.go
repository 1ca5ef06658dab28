package sandbox

import (
	"os"
	"testing"
)

// TestMain lets the test binary act as the sandbox init when re-executed.
func TestMain(m *testing.M) {
	MaybeInit()
	code := m.Run()
	if code == 0 {
		if err := leftovers(); err != nil {
			os.Stderr.WriteString("leftovers after the tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
