package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientImportGraph keeps kin-openapi (and the YAML and routing stacks
// it brings) out of programs that only use the generated client.
func TestClientImportGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/noxrunner/nox/gen/noxclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/getkin/", "gopkg.in/yaml", "github.com/gorilla/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("gen/noxclient imports %s", dep)
			}
		}
	}
}
