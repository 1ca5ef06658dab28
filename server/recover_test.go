package server_test

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/noxrunner/nox/server"
)

// TestPanicRecovery: a panic on a request path is a 500 with a short JSON
// message naming the request id, logged as one line without a stack; a
// panic after the response began cuts the connection; net/http itself
// never logs a stack.
func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path, body string
		truncated                bool // the response began: the client must see an error
	}{
		{"get", "GET", "/v1/sandboxes/s1", "", false},
		{"create", "PUT", "/v1/sandboxes/s1", `{}`, false},
		{"exec", "POST", "/v1/sandboxes/s1/exec", `{"cmd":["true"]}`, false},
		{"touch", "POST", "/v1/sandboxes/s1/touch", "", false},
		{"download mid-body", "GET", "/v1/sandboxes/s1/files/download?src=/workspace/panic-mid-body", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &double{info: fullInfo(), panicWith: "boom"}
			logs := &lockedBuffer{}
			h, err := server.New(d, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			httpLogs := &lockedBuffer{}
			srv := httptest.NewUnstartedServer(h)
			srv.Config.ErrorLog = log.New(httpLogs, "", 0)
			srv.Start()
			t.Cleanup(srv.Close)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
			req.Header.Set("X-Request-Id", "req-"+strings.ReplaceAll(tc.name, " ", "-"))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			var data []byte
			if err == nil {
				data, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tc.truncated {
				if err == nil {
					t.Errorf("a body cut by a panic read without error: %q", data)
				}
			} else if err != nil {
				t.Fatalf("transport error %v (the server dropped the connection)", err)
			} else {
				expectError(t, resp, data, http.StatusInternalServerError, "internal error (request id req-"+strings.ReplaceAll(tc.name, " ", "-")+")")
			}
			l := logs.String()
			if n := strings.Count(l, "panic serving request"); n != 1 {
				t.Errorf("%d panic log lines, want 1:\n%s", n, l)
			}
			if strings.Contains(l, "goroutine ") || strings.Contains(httpLogs.String(), "goroutine ") {
				t.Errorf("a stack trace was logged:\n%s\n%s", l, httpLogs.String())
			}
		})
	}
}

// TestPanicInStreamedExec: a command whose Wait panics ends its stream
// with an error event, not a crashed server.
func TestPanicInStreamedExec(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, server.Options{})
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/s1/exec/stream", strings.NewReader(`{"cmd":["panic-in-wait"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readEvents(t, resp)
	if len(evs) == 0 || evs[len(evs)-1].name != "error" || !strings.Contains(evs[len(evs)-1].data, "internal error") {
		t.Fatalf("events %v, want a final internal error event", evs)
	}
	if l := e.logs.String(); !strings.Contains(l, "boom in wait") || strings.Contains(l, "goroutine ") {
		t.Errorf("logs: want one short line naming the panic, no stack:\n%s", l)
	}
}
