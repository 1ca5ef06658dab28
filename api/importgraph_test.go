package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps heavy or test-only packages out of what users link:
// programs using only the SDK or the generated code never pull in
// kin-openapi (and the YAML and routing stacks it brings), and the nox
// binary never links package testing.
func TestImportGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	tests := []struct {
		pkg    string
		banned []string
	}{
		{"github.com/noxrunner/nox/gen/noxapi", []string{"github.com/getkin/", "gopkg.in/yaml", "github.com/gorilla/", "testing"}},
		{"github.com/noxrunner/nox/sdk", []string{"github.com/getkin/", "gopkg.in/yaml", "github.com/gorilla/", "testing"}},
		{"github.com/noxrunner/nox/cmd/nox", []string{"testing"}},
		{"github.com/noxrunner/nox/conformance", []string{"testing"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tt.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, banned := range tt.banned {
					if dep == banned || strings.HasPrefix(dep, banned) && strings.HasSuffix(banned, "/") {
						t.Errorf("%s imports %s", tt.pkg, dep)
					}
				}
			}
		})
	}
}
