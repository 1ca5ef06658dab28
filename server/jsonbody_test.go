package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/server"
)

// A JSON body is JSON whatever its Content-Type says (curl -d sends a form
// type), and an empty create body means every default; a body that is not
// JSON is still refused.
func TestLenientJSONBodies(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		creates, execs                        int // requests the backend received
		want                                  string
	}{
		{"exec as curl -d", "POST", "/v1/sandboxes/a/exec", form, `{"cmd":["echo","hi"]}`, 200, 0, 1, ""},
		{"exec as text/plain", "POST", "/v1/sandboxes/a/exec", "text/plain; charset=utf-8", ` {"cmd":["echo"]} `, 200, 0, 1, ""},
		{"exec without Content-Type", "POST", "/v1/sandboxes/a/exec", "", `{"cmd":["echo"]}`, 200, 0, 1, ""},
		{"stream as curl -d", "POST", "/v1/sandboxes/a/exec/stream", form, `{"cmd":["echo"]}`, 200, 0, 1, ""},
		{"exec form, not JSON", "POST", "/v1/sandboxes/a/exec", form, `cmd=echo`, 400, 0, 0, "Content-Type"},
		{"exec empty", "POST", "/v1/sandboxes/a/exec", "", ``, 400, 0, 0, "body"},
		{"exec bad JSON", "POST", "/v1/sandboxes/a/exec", "application/json", `{"cmd":`, 400, 0, 0, "body"},
		{"create without body", "PUT", "/v1/sandboxes/a", "", ``, 200, 1, 0, ""},
		{"create empty JSON body", "PUT", "/v1/sandboxes/a", "application/json", ``, 200, 1, 0, ""},
		{"create blank body", "PUT", "/v1/sandboxes/a", form, "\n", 200, 1, 0, ""},
		{"create as curl -d", "PUT", "/v1/sandboxes/a", form, `{"ttlSeconds":60}`, 200, 1, 0, ""},
		{"create form, not JSON", "PUT", "/v1/sandboxes/a", form, `ttlSeconds=60`, 400, 0, 0, "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, nil, server.Options{})
			req, err := http.NewRequest(c.method, e.url+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c.status != 200 {
				expectError(t, resp, body, c.status, c.want)
			} else if resp.StatusCode != 200 {
				t.Fatalf("status %d %s, want 200", resp.StatusCode, body)
			}
			creates, execs, _ := e.d.requests()
			if len(creates) != c.creates || len(execs) != c.execs {
				t.Fatalf("the backend got %d creates and %d execs, want %d and %d", len(creates), len(execs), c.creates, c.execs)
			}
			if c.name == "create as curl -d" && creates[0].TTL != time.Minute {
				t.Errorf("create TTL %s, want 1m0s", creates[0].TTL)
			}
			if c.name == "create without body" && creates[0] != (driver.CreateRequest{CPUMilli: 1000, MemoryBytes: 1 << 30, StorageBytes: 2 << 30}) {
				t.Errorf("create without body = %+v, want the defaults", creates[0])
			}
		})
	}
}
