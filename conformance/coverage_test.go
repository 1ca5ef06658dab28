package conformance_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/internal/contract"
)

// loadContract loads api/openapi.yaml.
func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := contract.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// operationExtensions maps each operation id of the contract to its
// x-nox-extension ("" for none).
func operationExtensions(t *testing.T, doc *openapi3.T) map[string]string {
	t.Helper()
	ops := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
				continue
			}
			ext, _ := op.Extensions["x-nox-extension"].(string)
			ops[op.OperationID] = ext
		}
	}
	return ops
}

// TestEveryOperationAndExtensionHasACheck fails when the contract gains an
// operation or an extension that no check of the suite covers: adding one
// means adding its conformance check.
func TestEveryOperationAndExtensionHasACheck(t *testing.T) {
	t.Parallel()
	ops := operationExtensions(t, loadContract(t))
	coveredOps := map[string]bool{}
	coveredExts := map[string]bool{}
	for _, c := range conformance.Checks() {
		for _, op := range c.Operations {
			coveredOps[op] = true
			if ext := ops[op]; ext != "" {
				coveredExts[ext] = true
			}
		}
		for _, ext := range c.Extensions {
			coveredExts[ext] = true
		}
	}
	exts := api.Extensions()
	for op, ext := range ops {
		if !coveredOps[op] {
			t.Errorf("operation %s has no conformance check: add one naming it in Check.Operations", op)
		}
		if ext != "" && !slices.Contains(exts, ext) {
			t.Errorf("operation %s belongs to extension %s, which api.Extensions does not list", op, ext)
		}
	}
	if len(ops) < 10 {
		t.Fatalf("found only %d operations in the contract: %v", len(ops), ops)
	}
	for _, ext := range exts {
		if !coveredExts[ext] {
			t.Errorf("extension %s has no conformance check: add one naming it in Check.Extensions", ext)
		}
	}
}

// specSections are the sections of the NoxRunner v1 specification as
// restated in noxrunner-v1.md, as GitHub names their anchors.
var specSections = []string{
	"general",
	"endpoints",
	"what-the-existing-python-client-does-on-the-wire-compatibility-facts",
	"security-considerations-listed-by-the-spec",
	"extensions-the-spec-names-as-future-work",
}

// TestCheckAnchorsResolve checks that every check of the suite points to a
// part of the contract that exists, or to a section of the specification.
func TestCheckAnchorsResolve(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(loadContract(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range conformance.Checks() {
		if ptr, ok := strings.CutPrefix(c.Anchor, "api/openapi.yaml#"); ok {
			if err := resolve(doc, ptr); err != nil {
				t.Errorf("%s: anchor %s: %v", c.ID, c.Anchor, err)
			}
			continue
		}
		if sec, ok := strings.CutPrefix(c.Anchor, "noxrunner-v1.md#"); ok && slices.Contains(specSections, sec) {
			continue
		}
		t.Errorf("%s: anchor %q points into neither api/openapi.yaml nor a section of noxrunner-v1.md", c.ID, c.Anchor)
	}
}

// resolve follows the JSON pointer ptr (RFC 6901) in doc.
func resolve(doc any, ptr string) error {
	if !strings.HasPrefix(ptr, "/") {
		return &pointerError{ptr, "does not start with /"}
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return &pointerError{ptr, "no member " + strconv.Quote(tok)}
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return &pointerError{ptr, "no element " + strconv.Quote(tok)}
			}
			cur = v[i]
		default:
			return &pointerError{ptr, "descends into a scalar at " + strconv.Quote(tok)}
		}
	}
	return nil
}

type pointerError struct{ ptr, reason string }

func (e *pointerError) Error() string { return "pointer " + e.ptr + ": " + e.reason }

func TestChecksAreComplete(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range conformance.Checks() {
		if seen[c.ID] {
			t.Errorf("%s: duplicate id", c.ID)
		}
		seen[c.ID] = true
		if c.Requirement != conformance.Must && c.Requirement != conformance.Should {
			t.Errorf("%s: requirement %q", c.ID, c.Requirement)
		}
		if len(c.Operations)+len(c.Extensions) == 0 {
			t.Errorf("%s: covers nothing", c.ID)
		}
	}
	// Checks returns a fresh slice: changing it changes nothing.
	a := conformance.Checks()
	a[0].ID = "changed/by-caller"
	a[0].Operations[0] = "changed"
	if b := conformance.Checks(); b[0].ID == a[0].ID || b[0].Operations[0] == "changed" {
		t.Error("Checks returns shared state")
	}
}
