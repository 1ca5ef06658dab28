package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/nsdial"
)

func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"noxworld", "-hosts", "allowed.test, denied.test"}, stdinR, outW, io.Discard)
		outW.Close()
	}()
	lines := map[string]string{}
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		lines[k] = v
		if k == "dns" {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if lines["netns"] == "" || lines["dns"] != "203.0.113.53:53" || lines["allowed.test"] == "" || lines["denied.test"] == "" {
		t.Fatalf("output: %v", lines)
	}
	d := &nsdial.Dialer{Netns: lines["netns"], Timeout: 10 * time.Second}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(address)
			ips, err := d.Resolver(lines["dns"]).LookupHost(ctx, host)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, net.JoinHostPort(ips[0], port))
		},
	}}
	resp, err := c.Get("http://denied.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from denied.test\n" {
		t.Fatalf("body %q", body)
	}
	stdinW.Close() // end of input ends the world
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running after stdin ended")
	}
}

func TestRunUsage(t *testing.T) {
	if code := run(context.Background(), []string{"noxworld", "-nope"}, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code := run(context.Background(), []string{"noxworld", "extra"}, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("argument: exit %d", code)
	}
}
