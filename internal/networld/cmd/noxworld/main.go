// Command noxworld builds a networld stand-in internet outside tests, for
// scripts such as scripts/conformance.sh (as root):
//
//	noxworld -hosts allowed.test,denied.test
//
// prints one line per host ("NAME ADDR"), then "netns PATH" (the world's
// network namespace, for nox serve --egress-netns) and last "dns ADDR"
// (its DNS server, for --egress-resolver): once that line is out, the
// world is ready. Every host serves HTTP on port 80, answering
// "hello from NAME\n". It runs until SIGINT or SIGTERM, or until its
// standard input ends (unless that is /dev/null, as for a background job
// of a script), and exits 0; 1 on an error, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/noxrunner/nox/internal/networld"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program with its environment injected. It returns the exit
// code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.String("hosts", "", "comma-separated host names to register, each serving HTTP on port 80")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "noxworld: unexpected arguments %q\n", fs.Args())
		return 2
	}
	w, err := networld.Start()
	if err != nil {
		fmt.Fprintf(stderr, "noxworld: %v\n", err)
		return 1
	}
	defer w.Close()
	for _, name := range strings.Split(*hosts, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		addr := w.Host(name)
		if err := w.ServeHTTP(netip.AddrPortFrom(addr, 80), hello(name)); err != nil {
			fmt.Fprintf(stderr, "noxworld: %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s\n", name, addr)
	}
	fmt.Fprintf(stdout, "netns %s\n", w.NetnsPath())
	fmt.Fprintf(stdout, "dns %s\n", w.DNSAddr())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if watchStdin(stdin) {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	<-ctx.Done()
	if err := w.Close(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "noxworld: %v\n", err)
		return 1
	}
	return 0
}

// hello answers "hello from NAME\n".
func hello(name string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(rw, "hello from %s\n", name)
	})
}

// watchStdin reports whether the end of stdin should stop the world: not
// when it is a device other than a terminal (/dev/null), which ends at
// once.
func watchStdin(stdin io.Reader) bool {
	f, ok := stdin.(*os.File)
	if !ok {
		return stdin != nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice == 0 || isTerminal(f)
}
