package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// stdinResult checks a writeProcessStdin answer.
func stdinResult(t *testing.T, resp *http.Response, body []byte, want noxapi.StdinResult) {
	t.Helper()
	var got noxapi.StdinResult
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got != want {
		t.Fatalf("stdin: %d %s, want %+v", resp.StatusCode, body, want)
	}
}

// The body reaches the process as it arrives, whatever its size and
// Content-Type; close=true closes stdin after it.
func TestProcessStdin(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{MaxJSONBodyBytes: 1024}, nil)
	p := startFake(t, e, d, map[string]any{"cmd": []string{"cat"}, "stdin": true})
	const path = "/v1/sandboxes/a/processes/1/stdin"

	pr, pw := io.Pipe()
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.Post(e.url+path, "application/octet-stream", pr)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- answer{resp, body, err}
	}()
	if _, err := pw.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "the first bytes, before the body ends", func() bool { return p.stdin.String() == "abc" })
	if _, err := pw.Write([]byte("def")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	stdinResult(t, a.resp, a.body, noxapi.StdinResult{Written: 6})

	big := strings.Repeat("x", 1<<20) // far above MaxJSONBodyBytes: stdin is not limited
	resp, body := e.send("POST", path, strings.NewReader(big), map[string]string{"Content-Type": "text/plain"})
	stdinResult(t, resp, body, noxapi.StdinResult{Written: 1 << 20})
	resp, body = e.send("POST", path+"?close=true", strings.NewReader("!"), nil)
	stdinResult(t, resp, body, noxapi.StdinResult{Written: 1, Closed: true})
	if got := p.typed(); got != "abcdef"+big+"!" {
		t.Errorf("stdin got %d bytes", len(got))
	}
	resp, body = e.send("POST", path, strings.NewReader("late"), nil)
	expectError(t, resp, body, 409, "stdin is closed")
	resp, body = e.send("POST", path+"?close=true", nil, nil)
	expectError(t, resp, body, 409, "stdin is closed")

	// A process started without stdin has none.
	startFake(t, e, d, nil)
	resp, body = e.send("POST", "/v1/sandboxes/a/processes/2/stdin", strings.NewReader("x"), nil)
	expectError(t, resp, body, 409, "stdin is closed")
}

// A client that stops sending its stdin body is cut off after the stall
// timeout, which frees the process's stdin for others.
func TestProcessStdinStalled(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	e, d := setupProcs(t, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond}, nil)
	p := startFake(t, e, d, map[string]any{"cmd": []string{"cat"}, "stdin": true})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("POST /v1/sandboxes/a/processes/1/stdin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\npartial")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/a/processes/1/stdin", nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	t.Logf("a stalled stdin body was answered after %s (stall timeout %s)", time.Since(start), stall)
	expectError(t, resp, body, 400, "sent nothing")
	if got := p.typed(); got != "partial" {
		t.Errorf("stdin got %q", got)
	}
}
