package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/server"
)

// TestStalledClient: a client that stops reading a download is cut off
// after StallTimeout and the backend's reader is closed, while a client
// that keeps reading an exec stream (heartbeats only) is served past it.
func TestStalledClient(t *testing.T) {
	t.Parallel()
	const stall = 500 * time.Millisecond
	e := setup(t, nil, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A tiny receive buffer fills at once when nothing is read.
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := conn.Write([]byte("GET /v1/sandboxes/s1/files/download?src=/workspace/endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
		}
	}
	waitUntil("download started", func() bool { e.d.mu.Lock(); defer e.d.mu.Unlock(); return e.d.endlessClosed != nil })
	start := time.Now()
	e.d.mu.Lock()
	closed := e.d.endlessClosed
	e.d.mu.Unlock()
	select {
	case <-closed:
		if took := time.Since(start); took < stall/2 {
			t.Errorf("download closed after %s, before the stall timeout %s", took, stall)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a client reading nothing still holds its download after 5s (stall timeout %s)", stall)
	}

	// An exec stream with only heartbeats, read as it comes, outlives the
	// stall timeout.
	e.d.wait = func(ctx context.Context, out func(driver.Stream, string)) (driver.ExecResult, error) {
		time.Sleep(3 * stall)
		return driver.ExecResult{Stdout: "late\n"}, nil
	}
	resp, body := e.do("POST", "/v1/sandboxes/s1/exec/stream", map[string]any{"cmd": []string{"true"}})
	if resp.StatusCode != 200 || !strings.Contains(string(body), "event: exit") {
		t.Errorf("a slow exec stream: %d %s", resp.StatusCode, body)
	}
}

// TestStalledUpload: an upload whose client stops sending is ended after
// StallTimeout with an invalid-argument error naming the body, and the
// client gets its 400 (net/http's read of the rest of a short body after
// the handler must not wait for it).
func TestStalledUpload(t *testing.T) {
	t.Parallel()
	const stall = 500 * time.Millisecond
	e := setup(t, nil, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/sandboxes/s1/files/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\npartial")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, _, uploads := e.d.requests(); len(uploads) == 1 {
			if !errors.Is(uploads[0], driver.ErrInvalidArgument) || !strings.Contains(uploads[0].Error(), "sent nothing") {
				t.Errorf("the stalled upload's body ended with %v, want an invalid-argument error", uploads[0])
			}
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a stalled upload still reads after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < stall/2 {
		t.Errorf("cut after %s, before the stall timeout", took)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("POST", e.url+"/v1/sandboxes/s1/files/upload", nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("no answer to the stalled upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	expectError(t, resp, body, 400, "sent nothing")
}
