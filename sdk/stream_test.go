package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/quirks"
	"github.com/noxrunner/nox/internal/testbackend"
)

// blockingStream returns a stream body that sends first, then blocks until
// ctx ends.
func blockingStream(first string) func(ctx context.Context) io.Reader {
	return func(ctx context.Context) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, first)
			<-ctx.Done()
			pw.CloseWithError(ctx.Err())
		}()
		return pr
	}
}

func TestExecStreamIdle(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T, ...Option) (*Client, *testbackend.Backend){setup, setupInProcess} {
		c, f := mk(t)
		ctx := context.Background()
		_, err := c.Create(ctx, "s", CreateOptions{})
		assertNoErr(t, err)
		f.SetHook(testbackend.StreamBody(blockingStream("event: stdout\ndata: {\"data\":\"first\\n\"}\n\n")))
		var out bytes.Buffer
		start := time.Now()
		_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{Stdout: &out, IdleTimeout: time.Second})
		assertIs(t, err, ErrStreamIdle)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("idle stream ended after %s", d)
		}
		assertEq(t, "stdout before idling", out.String(), "first\n")

		// The default idle timeout is 3x the advertised heartbeat (1s here).
		start = time.Now()
		_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{})
		assertIs(t, err, ErrStreamIdle)
		if d := time.Since(start); d < 3*time.Second || d > 6*time.Second {
			t.Errorf("default idle timeout took %s, want about 3s", d)
		}
	}
}

func TestExecStreamIdleBeforeHeaders(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/stream") {
			return false
		}
		// The server notices the client leaving only once the body is
		// read; unread, the handler would hold srv.Close for 10 seconds.
		_, _ = io.Copy(io.Discard, r.Body)
		select { // never answers
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	start := time.Now()
	_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{IdleTimeout: 200 * time.Millisecond})
	assertIs(t, err, ErrStreamIdle)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestExecStreamHeartbeatsKeepAlive(t *testing.T) {
	t.Parallel()
	c, f := setupInProcess(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	f.SetHook(testbackend.StreamBody(func(ctx context.Context) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			// 1s of stream, longer than the idle timeout, with heartbeats
			// 5x as often as it (a loaded -race run delays sleepers).
			for range 10 {
				time.Sleep(100 * time.Millisecond)
				io.WriteString(pw, ": heartbeat\n\n")
			}
			writeEvent(pw, "exit", noxapi.ExecResult{ExitCode: 0, DurationMs: 300})
			pw.Close()
		}()
		return pr
	}))
	res, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{IdleTimeout: 500 * time.Millisecond})
	assertNoErr(t, err)
	assertEq(t, "duration", res.Duration, 300*time.Millisecond)
}

func TestExecStreamCancel(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T, ...Option) (*Client, *testbackend.Backend){setup, setupInProcess} {
		c, f := mk(t)
		ctx := context.Background()
		_, err := c.Create(ctx, "s", CreateOptions{})
		assertNoErr(t, err)
		f.SetHook(testbackend.StreamBody(blockingStream(": heartbeat\n\n")))
		ctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() {
			_, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{IdleTimeout: time.Minute})
			got <- err
		}()
		time.Sleep(200 * time.Millisecond)
		cancel()
		select {
		case err := <-got:
			assertIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("ExecStream did not return after cancel")
		}
	}
}

func TestExecStreamEvents(t *testing.T) {
	t.Parallel()
	c, f := setup(t)
	ctx := context.Background()
	_, err := c.Create(ctx, "s", CreateOptions{})
	assertNoErr(t, err)
	cases := []struct {
		name, body string
		check      func(t *testing.T, res *ExecResult, err error)
	}{
		{"error event", "event: stdout\ndata: {\"data\":\"x\"}\n\nevent: error\ndata: {\"error\":\"runtime died\"}\n\n",
			func(t *testing.T, res *ExecResult, err error) {
				assertIs(t, err, ErrInternal)
				if !strings.Contains(err.Error(), "runtime died") {
					t.Errorf("message: %v", err)
				}
			}},
		{"no exit", "event: stdout\ndata: {\"data\":\"x\"}\n\n", func(t *testing.T, res *ExecResult, err error) {
			assertIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"bad chunk", "event: stdout\ndata: nope\n\n", func(t *testing.T, res *ExecResult, err error) {
			if err == nil || !strings.Contains(err.Error(), "stdout event") {
				t.Errorf("err %v", err)
			}
		}},
		{"bad exit", "event: exit\ndata: nope\n\n", func(t *testing.T, res *ExecResult, err error) {
			if err == nil || !strings.Contains(err.Error(), "exit event") {
				t.Errorf("err %v", err)
			}
		}},
		{"flags and unknown events", "event: progress\ndata: 1\n\nevent: exit\ndata: {\"exitCode\":137,\"stdout\":\"\",\"stderr\":\"killed\",\"durationMs\":5,\"oomKilled\":true,\"stdoutTruncated\":true,\"stderrTruncated\":true}\n\n",
			func(t *testing.T, res *ExecResult, err error) {
				assertNoErr(t, err)
				want := ExecResult{ExitCode: 137, Stderr: "killed", Duration: 5 * time.Millisecond, OOMKilled: true, StdoutTruncated: true, StderrTruncated: true}
				if *res != want {
					t.Errorf("result %+v, want %+v", *res, want)
				}
			}},
	}
	for _, tc := range cases {
		f.SetHook(testbackend.StreamBody(func(ctx context.Context) io.Reader { return strings.NewReader(tc.body) }))
		res, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{})
		t.Run(tc.name, func(t *testing.T) { tc.check(t, res, err) })
	}
	// A failing writer ends the stream.
	f.SetHook(testbackend.StreamBody(func(ctx context.Context) io.Reader {
		return strings.NewReader("event: stdout\ndata: {\"data\":\"x\"}\n\n")
	}))
	_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{Stdout: failWriter{}})
	if err == nil || !strings.Contains(err.Error(), "writing stdout") {
		t.Errorf("failing writer: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExecStreamFallback(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"plain v1", "no exec.stream"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bo := testOptions()
			if name == "plain v1" {
				bo.Quirks = &quirks.Quirks{NoExtensions: true}
			}
			c, f := setupWith(t, bo)
			if name == "no exec.stream" {
				f.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path != basePath+"/v1/info" {
						return false
					}
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"apiVersion":"v1","backend":{"name":"x","version":"1"},"extensions":["info"]}`)
					return true
				})
			}
			ctx := context.Background()
			_, err := c.Create(ctx, "s", CreateOptions{})
			assertNoErr(t, err)
			var out, errOut bytes.Buffer
			var got []string
			res, err := c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"sh", "-c", "echo hi; echo err >&2"}},
				StreamOptions{Stdout: &out, Stderr: &errOut, OnStderr: func(p []byte) { got = append(got, string(p)) }})
			assertNoErr(t, err)
			assertEq(t, "stdout", out.String(), "hi\n")
			assertEq(t, "stderr", errOut.String(), "err\n")
			assertEq(t, "callback", fmt.Sprint(got), "[err\n]")
			assertEq(t, "result", res.Stdout, "hi\n")
			if n := f.Count("POST", "/exec/stream"); n != 0 {
				t.Errorf("%d stream requests to a backend without exec.stream", n)
			}
			// Capabilities are cached: one info request for two streams.
			_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"true"}}, StreamOptions{Stdout: failWriter{}})
			assertNoErr(t, err)
			assertEq(t, "info requests", f.Count("GET", "/v1/info"), 1)
			_, err = c.ExecStream(ctx, "s", ExecRequest{Cmd: []string{"echo"}}, StreamOptions{Stdout: failWriter{}})
			if err == nil {
				t.Error("failing writer in fallback accepted")
			}
			_, err = c.ExecStream(ctx, "missing", ExecRequest{Cmd: []string{"true"}}, StreamOptions{})
			assertIs(t, err, ErrNotFound)
			ok, err := c.Supports(ctx, ExtExecStream)
			assertNoErr(t, err)
			assertEq(t, "supports", ok, false)
			if name == "plain v1" {
				info, err := c.Capabilities(ctx)
				assertNoErr(t, err)
				assertEq(t, "plain", info.PlainV1, true)
				_, err = c.Info(ctx)
				assertIs(t, err, ErrNotFound)
			}
		})
	}
	// Info failing otherwise is reported.
	c, f := setup(t, WithoutRetry())
	failN(f, operation{method: "GET", path: "/v1/info"}, 1, 500, nil, "")
	_, err := c.ExecStream(context.Background(), "s", ExecRequest{Cmd: []string{"true"}}, StreamOptions{})
	assertIs(t, err, ErrInternal)
	_, err = c.Supports(context.Background(), ExtExecStream)
	assertNoErr(t, err)
}

// TestHandlerStreams proves that WithHandler delivers a flushed chunk
// before the handler returns.
func TestHandlerStreams(t *testing.T) {
	t.Parallel()
	received := make(chan struct{})
	handlerDone := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: stdout\ndata: {\"data\":\"early\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-received:
		case <-time.After(5 * time.Second):
			t.Error("the client did not receive the chunk while the handler ran")
		}
		writeEvent(w, "exit", noxapi.ExecResult{ExitCode: 0, Stdout: "early"})
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/v1/info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"apiVersion":"v1","backend":{"name":"x","version":"1"},"extensions":["exec.stream"]}`)
	})
	mux.Handle("POST /p/v1/sandboxes/s/exec/stream", h)
	c, err := New("http://in.process/p", WithHandler(mux))
	assertNoErr(t, err)
	var once bool
	res, err := c.ExecStream(context.Background(), "s", ExecRequest{Cmd: []string{"x"}}, StreamOptions{
		OnStdout: func(p []byte) {
			select {
			case <-handlerDone:
				t.Error("chunk arrived after the handler finished")
			default:
			}
			if !once {
				once = true
				close(received)
			}
		},
	})
	assertNoErr(t, err)
	assertEq(t, "stdout", res.Stdout, "early")
}

func TestHandlerTransport(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/panic-late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic("late")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusContinue)
		w.WriteHeader(http.StatusNoContent)
		w.WriteHeader(http.StatusTeapot) // superfluous: ignored
	})
	mux.HandleFunc("/len", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	hc := &http.Client{Transport: HandlerTransport(mux)}

	_, err := hc.Get("http://x/panic")
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("panic: %v", err)
	}
	_, err = hc.Get("http://x/abort")
	assertIs(t, err, http.ErrAbortHandler)
	resp, err := hc.Get("http://x/panic-late")
	assertNoErr(t, err)
	_, err = io.ReadAll(resp.Body)
	if err == nil {
		t.Error("late panic not reported when reading")
	}
	resp, err = hc.Get("http://x/empty")
	assertNoErr(t, err)
	assertEq(t, "status", resp.StatusCode, 200)
	resp.Body.Close()
	resp, err = hc.Get("http://x/nocontent")
	assertNoErr(t, err)
	assertEq(t, "status", resp.StatusCode, 204)
	assertEq(t, "length", resp.ContentLength, int64(0))
	resp, err = hc.Post("http://x/len", "text/plain", strings.NewReader("hello"))
	assertNoErr(t, err)
	assertEq(t, "length", resp.ContentLength, int64(5))
	assertEq(t, "sniffed", resp.Header.Get("Content-Type"), "text/plain; charset=utf-8")
	body, _ := io.ReadAll(resp.Body)
	assertEq(t, "body", string(body), "hello")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/block", nil)
	_, err = hc.Do(req)
	assertIs(t, err, context.DeadlineExceeded)
}

// TestParseSSE checks the adapter over package sse's reader (whose own
// tests cover the grammar): events reach fn in order, and fn's error and
// read errors end it.
func TestParseSSE(t *testing.T) {
	t.Parallel()
	type ev struct{ Event, Data string }
	var got []ev
	err := parseSSE(strings.NewReader(": hb\n\nevent: stdout\r\ndata: a\r\n\r\ndata: b\ndata: c\n\nevent: only\n\n"), func(e string, d []byte) error {
		got = append(got, ev{e, string(d)})
		return nil
	})
	assertNoErr(t, err)
	if want := []ev{{"stdout", "a"}, {"message", "b\nc"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	boom := errors.New("boom")
	err = parseSSE(strings.NewReader("data: 1\n\n"), func(string, []byte) error { return boom })
	assertIs(t, err, boom)
	err = parseSSE(io.MultiReader(strings.NewReader("data: 1"), errReader{}), func(string, []byte) error { return nil })
	if err == nil || err.Error() != "read failed" {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }
