package quirks_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/noxrunner/nox/internal/quirks"
	"github.com/noxrunner/nox/membackend"
	"github.com/noxrunner/nox/server"
)

func serve(t *testing.T, q quirks.Quirks) *httptest.Server {
	t.Helper()
	b, err := membackend.New(membackend.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := server.New(b, server.Options{Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(quirks.Wrap(h, q))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string, chunked bool) (int, string) {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // unknown length: sent chunked
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWrap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		q              quirks.Quirks
		method, path   string
		body           string
		chunked        bool
		status         int
		bodyPattern    string
		createdAtFirst bool
	}{
		{"offset and Z", quirks.Quirks{Time: quirks.TimeOffsetAndZ}, "PUT", "/v1/sandboxes/a", "{}", false, 200, `"expiresAt":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00Z"`, false},
		{"no zone", quirks.Quirks{Time: quirks.TimeNoZone}, "PUT", "/v1/sandboxes/a", "{}", false, 200, `"expiresAt":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"`, false},
		{"epoch", quirks.Quirks{Time: quirks.TimeEpochSeconds}, "PUT", "/v1/sandboxes/a", "{}", false, 200, `"expiresAt":\d+\.\d{3}[,}]`, false},
		{"201", quirks.Quirks{Create201: true}, "PUT", "/v1/sandboxes/a", "{}", false, 201, `"podName"`, false},
		{"touch 204", quirks.Quirks{Touch204: true}, "POST", "/v1/sandboxes/a/touch", "", false, 204, `^$`, true},
		{"fraction", quirks.Quirks{FractionalNumbers: true}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["true"]}`, false, 200, `"durationMs":\d+\.5`, true},
		{"chunked body refused", quirks.Quirks{ContentLengthOnly: true}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["true"]}`, true, 400, `"error"`, true},
		{"content length accepted", quirks.Quirks{ContentLengthOnly: true}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["true"]}`, false, 200, `"exitCode":0`, true},
		{"implicit create", quirks.Quirks{ImplicitCreate: true}, "POST", "/v1/sandboxes/new/exec", `{"cmd":["true"]}`, false, 200, `"exitCode":0`, false},
		{"without: 404", quirks.Quirks{}, "POST", "/v1/sandboxes/new/exec", `{"cmd":["true"]}`, false, 404, `"error"`, false},
		{"no info", quirks.Quirks{NoExtensions: true}, "GET", "/v1/info", "", false, 404, `page not found`, false},
		{"no get", quirks.Quirks{NoExtensions: true}, "GET", "/v1/sandboxes/a", "", false, 404, `page not found`, true},
		{"no files API", quirks.Quirks{NoExtensions: true}, "GET", "/v1/sandboxes/a/fs/stat?path=/workspace", "", false, 404, `page not found`, true},
		{"files API without", quirks.Quirks{}, "GET", "/v1/sandboxes/a/fs/stat?path=/workspace", "", false, 200, `"type":"dir"`, true},
		{"argv paths unmapped", quirks.Quirks{ArgvPathsUnmapped: true}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["sh","-c","cd /workspace"]}`, false, 200, `"exitCode":[1-9]`, true},
		{"workdir still mapped", quirks.Quirks{ArgvPathsUnmapped: true}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["sh","-c","pwd; cat f 2>&1"],"workdir":"/workspace"}`, false, 200, `"stdout":"/workspace\\n.*No such file`, true},
		{"argv mapped without", quirks.Quirks{}, "POST", "/v1/sandboxes/a/exec", `{"cmd":["sh","-c","cd /workspace"]}`, false, 200, `"exitCode":0`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tt.q)
			if tt.createdAtFirst {
				if code, body := do(t, "PUT", srv.URL+"/v1/sandboxes/a", "{}", false); code/100 != 2 {
					t.Fatalf("create: %d %s", code, body)
				}
			}
			code, body := do(t, tt.method, srv.URL+tt.path, tt.body, tt.chunked)
			if code != tt.status || !regexp.MustCompile(tt.bodyPattern).MatchString(body) {
				t.Errorf("%s %s: %d %s, want %d and a body matching %s", tt.method, tt.path, code, body, tt.status, tt.bodyPattern)
			}
		})
	}
}
