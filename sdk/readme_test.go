package sdk_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEAgentToolIsTheExample checks that the README's "Build an agent
// tool" walk-through shows the code of Example_agentTool verbatim, and the
// output that example is checked against, so the walk-through runs
// whenever the examples do.
func TestREADMEAgentToolIsTheExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_agent_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Build an agent tool")
	if !ok {
		t.Fatal(`README.md has no "## Build an agent tool" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := regexp.MustCompile("(?s)```(go)?\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 3 {
		t.Fatalf("the walk-through has %d code blocks, want 3: the tool, its use, its output", len(blocks))
	}
	code := string(example)
	for _, b := range blocks[:2] {
		// The second block is the body of the example function, one tab
		// less indented.
		if !strings.Contains(code, b[2]) && !strings.Contains(code, indent(b[2])) {
			t.Errorf("README.md shows code that example_agent_test.go does not have verbatim:\n%s", b[2])
		}
	}
	_, rest, _ := strings.Cut(code, "\t// Output:\n")
	var output strings.Builder
	for _, l := range strings.Split(rest, "\n") {
		line, ok := strings.CutPrefix(l, "\t// ")
		if !ok {
			break
		}
		output.WriteString(line + "\n")
	}
	if blocks[2][2] != output.String() {
		t.Errorf("README.md shows the output\n%s\nbut the example checks\n%s", blocks[2][2], output.String())
	}
}

// indent adds a tab to every non-empty line of s.
func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "\t" + l
		}
	}
	return strings.Join(lines, "\n")
}
