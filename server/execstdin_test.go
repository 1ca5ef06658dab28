package server_test

import (
	"strings"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/server"
)

// With exec.stdin, an exec request's stdin is decoded and passed on
// (exec and exec/stream alike) within maxStdinBytes, which also widens
// the JSON limit of exec bodies; without it the fields are ignored.
func TestExecStdin(t *testing.T) {
	t.Parallel()
	withStdin := fullInfo()
	withStdin.Extensions = append(withStdin.Extensions, api.ExtExecStdin)
	withStdin.Limits.MaxStdinBytes = 128 << 10
	opts := server.Options{MaxJSONBodyBytes: 64 << 10}
	big := strings.Repeat("y", 100<<10) // above the JSON limit, within maxStdinBytes
	cases := []struct {
		name    string
		backend bool // lists exec.stdin
		body    map[string]any
		status  int
		want    string // the stdin passed on, or the error
		wantNil bool   // no stdin passed on
	}{
		{"utf-8", true, map[string]any{"stdin": "hello\n"}, 200, "hello\n", false},
		{"utf-8 explicit", true, map[string]any{"stdin": "hé", "stdinEncoding": "utf-8"}, 200, "hé", false},
		{"base64", true, map[string]any{"stdin": "AP8K", "stdinEncoding": "base64"}, 200, "\x00\xff\n", false},
		{"empty", true, map[string]any{"stdin": ""}, 200, "", false},
		{"absent", true, map[string]any{}, 200, "", true},
		{"bad base64", true, map[string]any{"stdin": "%%%", "stdinEncoding": "base64"}, 400, "stdin: not valid base64", false},
		{"bad encoding", true, map[string]any{"stdin": "x", "stdinEncoding": "hex"}, 400, "stdinEncoding", false},
		{"over the limit", true, map[string]any{"stdin": strings.Repeat("x", 128<<10+1)}, 400, "stdin: 131073 bytes exceed the limit of 131072 bytes", false},
		{"large", true, map[string]any{"stdin": big}, 200, big, false},
		{"ignored without exec.stdin", false, map[string]any{"stdin": "%%%", "stdinEncoding": "base64"}, 200, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := fullInfo()
			if c.backend {
				in = withStdin
			}
			e := setup(t, &double{info: in}, opts)
			for _, path := range []string{"/v1/sandboxes/a/exec", "/v1/sandboxes/a/exec/stream"} {
				c.body["cmd"] = []string{"cat"}
				resp, body := e.do("POST", path, c.body)
				if c.status != 200 {
					expectError(t, resp, body, c.status, c.want)
					continue
				}
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %.200s", path, resp.StatusCode, body)
				}
				_, execs, _ := e.d.requests()
				got := execs[len(execs)-1].Stdin
				if c.wantNil != (got == nil) || string(got) != c.want {
					t.Errorf("%s: stdin %.40q (nil %v), want %.40q (nil %v)", path, got, got == nil, c.want, c.wantNil)
				}
			}
		})
	}
	// Without exec.stdin the JSON limit of exec bodies stays.
	e := setup(t, nil, opts)
	resp, body := e.do("POST", "/v1/sandboxes/a/exec", map[string]any{"cmd": []string{"cat"}, "stdin": big})
	expectError(t, resp, body, 400, "body: exceeds")
}
