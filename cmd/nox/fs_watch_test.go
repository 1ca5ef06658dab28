package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
	"github.com/noxrunner/nox/localbackend"
	"github.com/noxrunner/nox/sdk"
)

// TestFsWatch runs nox fs watch against the reference backend: once it
// says it is watching, a file written there is printed as a create line
// (and as JSON with --json), and Ctrl-C ends it with exit code 130.
func TestFsWatch(t *testing.T) {
	_, memURL := newTestBackend(t, testbackend.Options{})
	urls := map[string]string{"mem": memURL}
	if ok, why := localUsable(t); ok {
		b, err := localbackend.New(localbackend.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(b.Handler())
		t.Cleanup(func() { srv.Close(); b.Close() })
		urls["local"] = srv.URL
	} else {
		t.Logf("local backend unavailable: %s", why)
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) { testFsWatch(t, url) })
	}
}

func testFsWatch(t *testing.T, url string) {
	c, err := sdk.New(url)
	if err != nil {
		t.Fatal(err)
	}
	sb := c.Sandbox("watched")
	if _, err := sb.Create(t.Context(), sdk.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "create /workspace/new-0.txt"},
		{[]string{"--json"}, `{"type":"create","path":"/workspace/sub/new-1.txt"}`},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		outR, outW := io.Pipe()
		errR, errW := io.Pipe()
		code := make(chan int, 1)
		args := append([]string{"nox", "--base-url", url, "fs", "watch", "watched", "-r"}, tc.flags...)
		go func() {
			code <- run(ctx, args, strings.NewReader(""), outW, errW)
			outW.Close()
			errW.Close()
		}()
		line, err := bufio.NewReader(errR).ReadString('\n')
		if !strings.HasPrefix(line, "nox: watching /workspace in sandbox \"watched\"") {
			t.Fatalf("stderr %q (%v), want the watching line", line, err)
		}
		go io.Copy(io.Discard, errR)
		name := "new-0.txt"
		if tc.flags != nil {
			name = "sub/new-1.txt"
		}
		if _, err := sb.WriteFileWith(ctx, name, []byte("x"), sdk.WriteOptions{Parents: true}); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(outR)
		found := false
		for sc.Scan() {
			if sc.Text() == tc.want {
				found = true
				break
			}
			t.Logf("event %s", sc.Text())
		}
		if !found {
			t.Errorf("%v: no line %q", tc.flags, tc.want)
		}
		cancel()
		go io.Copy(io.Discard, outR)
		if got := <-code; got != exitInterrupted {
			t.Errorf("%v: exit code %d after Ctrl-C, want %d", tc.flags, got, exitInterrupted)
		}
	}
}
