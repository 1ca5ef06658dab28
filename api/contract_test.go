package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/noxrunner/nox/api"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestDocumentValidates(t *testing.T) {
	doc := load(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
}

func TestEmbeddedFileMatchesDisk(t *testing.T) {
	disk, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != string(api.OpenAPI()) {
		t.Fatal("api.OpenAPI() differs from api/openapi.yaml; rebuild")
	}
}

// spec facts: every v1 operation of the specification, with its level.
var v1Operations = []struct {
	method, path, id string
	level            api.Level
	success          []string
	errors           []string
}{
	{"GET", "/healthz", "healthz", api.LevelMinimum, []string{"200"}, []string{"503"}},
	{"PUT", "/v1/sandboxes/{sessionId}", "createSandbox", api.LevelMinimum, []string{"200"}, []string{"400", "500"}},
	{"POST", "/v1/sandboxes/{sessionId}/touch", "touchSandbox", api.LevelRecommended, []string{"200"}, []string{"404", "500"}},
	{"POST", "/v1/sandboxes/{sessionId}/exec", "execInSandbox", api.LevelMinimum, []string{"200"}, []string{"400", "404", "500", "503"}},
	{"POST", "/v1/sandboxes/{sessionId}/files/upload", "uploadFiles", api.LevelRecommended, []string{"200"}, []string{"400", "404", "500"}},
	{"GET", "/v1/sandboxes/{sessionId}/files/download", "downloadFiles", api.LevelRecommended, []string{"200"}, []string{"404", "500"}},
	{"DELETE", "/v1/sandboxes/{sessionId}", "deleteSandbox", api.LevelMinimum, []string{"200", "204"}, []string{"404", "500"}},
}

var extensionOperations = map[string]string{
	"getInfo":             api.ExtInfo,
	"getSandbox":          api.ExtSandboxesGet,
	"listSandboxes":       api.ExtSandboxesList,
	"execInSandboxStream": api.ExtExecStream,
	"readFile":            api.ExtFilesOps,
	"writeFile":           api.ExtFilesOps,
	"statFile":            api.ExtFilesOps,
	"listDir":             api.ExtFilesOps,
	"makeDir":             api.ExtFilesOps,
	"removePath":          api.ExtFilesOps,
	"movePath":            api.ExtFilesOps,
	"watchPath":           api.ExtFilesWatch,
	"startProcess":        api.ExtProcesses,
	"listProcesses":       api.ExtProcesses,
	"getProcess":          api.ExtProcesses,
	"killProcess":         api.ExtProcesses,
	"waitProcess":         api.ExtProcesses,
	"streamProcessOutput": api.ExtProcesses,
	"writeProcessStdin":   api.ExtProcesses,
	"signalProcess":       api.ExtProcesses,
	"resizeProcess":       api.ExtProcesses,
	"attachTerminal":      api.ExtProcessesTerminal,
	"proxyPort":           api.ExtPorts,
	"openTunnel":          api.ExtPorts,
	"createPreview":       api.ExtPorts,
	"getNetwork":          api.ExtNetworkEgress,
	"setNetwork":          api.ExtNetworkEgress,
	"getMetrics":          api.ExtMetrics,
}

func TestV1OperationsEncoded(t *testing.T) {
	doc := load(t)
	for _, want := range v1Operations {
		t.Run(want.id, func(t *testing.T) {
			item := doc.Paths.Find(want.path)
			if item == nil {
				t.Fatalf("path %s missing", want.path)
			}
			op := item.GetOperation(want.method)
			if op == nil {
				t.Fatalf("%s %s missing", want.method, want.path)
			}
			if op.OperationID != want.id {
				t.Errorf("operationId = %q, want %q", op.OperationID, want.id)
			}
			if got := op.Extensions["x-nox-level"]; got != string(want.level) {
				t.Errorf("x-nox-level = %v, want %s", got, want.level)
			}
			for _, code := range slices.Concat(want.success, want.errors) {
				if op.Responses.Value(code) == nil {
					t.Errorf("status %s not declared", code)
				}
			}
		})
	}
}

func TestEveryOperationDocumented(t *testing.T) {
	doc := load(t)
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", name)
				continue
			}
			if seen[op.OperationID] {
				t.Errorf("%s: duplicate operationId %q", name, op.OperationID)
			}
			seen[op.OperationID] = true
			if op.Summary == "" || op.Description == "" {
				t.Errorf("%s: summary and description are required", name)
			}
			level, _ := op.Extensions["x-nox-level"].(string)
			switch api.Level(level) {
			case api.LevelMinimum, api.LevelRecommended:
			case api.LevelExtension:
				ext, _ := op.Extensions["x-nox-extension"].(string)
				if want := extensionOperations[op.OperationID]; ext == "" || ext != want {
					t.Errorf("%s: x-nox-extension = %q, want %q", name, ext, want)
				}
			default:
				t.Errorf("%s: x-nox-level = %q, want minimum, recommended or extension", name, level)
			}
			hasError := false
			for code, ref := range op.Responses.Map() {
				if ref.Value == nil || ref.Value.Description == nil || *ref.Value.Description == "" {
					t.Errorf("%s %s: response without description", name, code)
				}
				if code[0] == '4' || code[0] == '5' {
					hasError = true
					if path == "/healthz" {
						continue
					}
					mt := ref.Value.Content.Get("application/json")
					if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
						t.Errorf("%s %s: error response must be application/json Error", name, code)
					}
				}
			}
			if !hasError {
				t.Errorf("%s: no error responses documented", name)
			}
			if strings.HasPrefix(path, "/v1/") && op.Responses.Value("401") == nil {
				t.Errorf("%s: 401 (bearer auth) not documented", name)
			}
		}
	}
	var missing []string
	for id := range extensionOperations {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	for _, op := range v1Operations {
		if !seen[op.id] {
			missing = append(missing, op.id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations missing: %v", missing)
	}
}

func TestHealthzNeedsNoAuth(t *testing.T) {
	doc := load(t)
	op := doc.Paths.Find("/healthz").Get
	if op.Security == nil || len(*op.Security) != 0 {
		t.Error("/healthz must declare security: [] (no authentication)")
	}
	if doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Error("bearerAuth security scheme missing")
	}
}

// TestSchemaExamples validates every schema-level example against its schema
// (the document-wide validation above checks media type and parameter examples).
func TestSchemaExamples(t *testing.T) {
	doc := load(t)
	for name, ref := range doc.Components.Schemas {
		s := ref.Value
		if s.Example == nil {
			t.Errorf("schema %s has no example", name)
			continue
		}
		if err := s.VisitJSON(s.Example); err != nil {
			t.Errorf("schema %s: example does not validate: %v", name, err)
		}
		for prop, p := range s.Properties {
			if p.Value.Example != nil {
				if err := p.Value.VisitJSON(p.Value.Example); err != nil {
					t.Errorf("schema %s.%s: example does not validate: %v", name, prop, err)
				}
			}
		}
	}
}

// TestDefaultsMatchSpec pins the defaults the v1 specification names.
func TestDefaultsMatchSpec(t *testing.T) {
	doc := load(t)
	s := doc.Components.Schemas
	checks := []struct {
		schema, prop string
		want         any
	}{
		{"CreateSandboxRequest", "ttlSeconds", 900.0},
		{"ExecRequest", "workdir", "/workspace"},
		{"ExecRequest", "timeoutSeconds", 30.0},
	}
	for _, c := range checks {
		got := s[c.schema].Value.Properties[c.prop].Value.Default
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s.%s default = %v, want %v", c.schema, c.prop, got, c.want)
		}
	}
	for _, q := range []struct{ path, param string }{
		{"/v1/sandboxes/{sessionId}/files/upload", "dest"},
		{"/v1/sandboxes/{sessionId}/files/download", "src"},
	} {
		var op *openapi3.Operation
		if q.param == "dest" {
			op = doc.Paths.Find(q.path).Post
		} else {
			op = doc.Paths.Find(q.path).Get
		}
		p := op.Parameters.GetByInAndName("query", q.param)
		if p == nil || p.Schema.Value.Default != "/workspace" {
			t.Errorf("%s ?%s must default to /workspace", q.path, q.param)
		}
	}
}

// TestQuantityPattern checks the Kubernetes quantity syntax of resource limits.
func TestQuantityPattern(t *testing.T) {
	q := load(t).Components.Schemas["Quantity"].Value
	for _, ok := range []string{"1", "500m", "512Mi", "2Gi", "1.5", "0.5Gi", "1e3", "100k", "+1", ".5"} {
		if err := q.VisitJSON(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "abc", "1GB", "-1", "1 Gi", "Gi", "1.2.3", "1mi"} {
		if err := q.VisitJSON(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSessionIDPattern checks the documented session id syntax.
func TestSessionIDPattern(t *testing.T) {
	p := load(t).Components.Parameters["SessionId"].Value.Schema.Value
	for _, ok := range []string{"my-session", "a", "A.b_c-1", strings.Repeat("x", 128)} {
		if err := p.VisitJSON(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".x", "..", "a/b", "with space", "ü", strings.Repeat("x", 129)} {
		if err := p.VisitJSON(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestResponseValidation shows that a response validator built from the
// document accepts what v1 backends send (empty touch and upload bodies, 204
// and 200 deletes) and rejects drift.
func TestResponseValidation(t *testing.T) {
	doc := load(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, target string
		status         int
		contentType    string
		body           string
		ok             bool
	}{
		{"POST", "/v1/sandboxes/s/touch", 200, "", "", true},
		{"POST", "/v1/sandboxes/s/touch", 200, "application/json", `{"message":"ok"}`, true},
		{"POST", "/v1/sandboxes/s/touch", 204, "", "", false},
		{"POST", "/v1/sandboxes/s/files/upload", 200, "", "", true},
		{"DELETE", "/v1/sandboxes/s", 204, "", "", true},
		{"DELETE", "/v1/sandboxes/s", 200, "", "", true},
		{"DELETE", "/v1/sandboxes/s", 404, "text/plain", "nope", false},
		{"PUT", "/v1/sandboxes/s", 200, "application/json", `{"podName":"p","expiresAt":"2026-11-23T12:00:00Z"}`, true},
		{"PUT", "/v1/sandboxes/s", 200, "application/json", `{"podName":"p","expiresAt":"tomorrow"}`, false},
		{"POST", "/v1/sandboxes/s/exec", 200, "application/json", `{"exitCode":0,"stdout":"","stderr":"","durationMs":1}`, true},
		{"POST", "/v1/sandboxes/s/exec", 200, "application/json", `{"exitCode":0,"stdout":""}`, false},
		{"GET", "/healthz", 200, "text/plain; charset=utf-8", "OK", true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s %d %s", c.method, c.target, c.status, c.body), func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.target, nil)
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if c.contentType != "" {
				h.Set("Content-Type", c.contentType)
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 c.status,
				Header:                 h,
				Options:                &openapi3filter.Options{IncludeResponseStatus: true},
			}
			in.SetBodyBytes([]byte(c.body))
			err = openapi3filter.ValidateResponse(context.Background(), in)
			if (err == nil) != c.ok {
				t.Errorf("valid = %v, want %v (err: %v)", err == nil, c.ok, err)
			}
		})
	}
}

// TestRulesMatchContract keeps the Go copies of the contract's rules equal
// to the contract.
func TestRulesMatchContract(t *testing.T) {
	doc := load(t)
	id := doc.Components.Parameters["SessionId"].Value.Schema.Value
	if id.Pattern != api.SessionIDPattern {
		t.Errorf("SessionIDPattern = %q, contract says %q", api.SessionIDPattern, id.Pattern)
	}
	if id.MaxLength == nil || *id.MaxLength != api.MaxSessionIDLength {
		t.Errorf("MaxSessionIDLength = %d, contract says %v", api.MaxSessionIDLength, id.MaxLength)
	}
	exec := doc.Components.Schemas["ExecRequest"].Value.Properties["workdir"].Value
	if exec.Default != api.Workspace {
		t.Errorf("Workspace = %q, contract's default workdir is %v", api.Workspace, exec.Default)
	}
	var states []string
	for _, v := range doc.Components.Schemas["SandboxStatus"].Value.Properties["state"].Value.Enum {
		states = append(states, v.(string))
	}
	if want := []string{api.StatePending, api.StateReady, api.StateStopped, api.StateTerminating}; !slices.Equal(states, want) {
		t.Errorf("states = %v, contract says %v", want, states)
	}
}
