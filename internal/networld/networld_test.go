package networld_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/networld"
)

// client returns an HTTP client whose connections go into w, resolving
// names with w's DNS server.
func client(w *networld.World) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			addrs, err := w.Resolver().LookupNetIP(ctx, "ip4", host)
			if err != nil {
				return nil, err
			}
			return w.Dial(ctx, network, net.JoinHostPort(addrs[0].String(), port))
		},
	}}
}

func TestWorldHTTPAndDNS(t *testing.T) {
	w := networld.New(t)
	a := w.Host("allowed.test")
	b := w.Host("Denied.Test.")
	if a == b || !networld.Hosts.Contains(a) || !networld.Hosts.Contains(b) {
		t.Fatalf("addresses %v and %v", a, b)
	}
	if again := w.Host("ALLOWED.test."); again != a {
		t.Fatalf("Host again: %v, want %v", again, a)
	}
	for _, name := range []string{"allowed.test", "denied.test"} {
		addr := w.Host(name)
		if err := w.ServeHTTP(netip.AddrPortFrom(addr, 80), http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(rw, "hello from %s\n", name)
		})); err != nil {
			t.Fatal(err)
		}
	}
	c := client(w)
	for _, name := range []string{"allowed.test", "denied.test"} {
		resp, err := c.Get("http://" + name + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from "+name+"\n" {
			t.Errorf("GET %s: %q", name, body)
		}
	}
	ctx := context.Background()
	_, err := w.Resolver().LookupNetIP(ctx, "ip4", "unknown.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("lookup of an unknown name: %v, want not found", err)
	}
	if addrs, err := w.Resolver().LookupNetIP(ctx, "ip6", "allowed.test"); err == nil && len(addrs) > 0 {
		t.Errorf("AAAA of a host: %v", addrs)
	}
	// An address of the world nothing listens on refuses; others are
	// unreachable.
	if _, err := w.Dial(ctx, "tcp", netip.AddrPortFrom(w.Host("quiet.test"), 80).String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a quiet host: %v", err)
	}
	if _, err := w.Dial(ctx, "tcp", "192.0.2.1:80"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial outside the world: %v", err)
	}
}

// TestWorldNotOnHost: the world's addresses are its own, not the host
// namespace's (proved with a bind, which sends nothing anywhere).
func TestWorldNotOnHost(t *testing.T) {
	w := networld.New(t)
	addr := netip.AddrPortFrom(w.Host("site.test"), 0)
	ln, err := w.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("in the world: %v", err)
	}
	ln.Close()
	for _, a := range []netip.Addr{addr.Addr(), networld.DNS.Addr(), networld.Metadata} {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
		if err == nil {
			ln.Close()
			t.Errorf("%s is an address of the host's namespace", a)
		} else if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Errorf("bind %s on the host: %v, want EADDRNOTAVAIL", a, err)
		}
	}
}

func TestWorldMetadataAndDNSOverTCP(t *testing.T) {
	w := networld.New(t)
	ln, err := w.Listen("tcp", netip.AddrPortFrom(networld.Metadata, 80).String())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("metadata\n"))
			c.Close()
		}
	}()
	c, err := w.Dial(context.Background(), "tcp", "169.254.169.254:80")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "metadata\n" {
		t.Fatalf("metadata: %q", line)
	}
	want := w.Host("tcp.test")
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return w.Dial(ctx, "tcp", w.DNSAddr().String())
	}}
	addrs, err := r.LookupNetIP(context.Background(), "ip4", "tcp.test")
	if err != nil || len(addrs) != 1 || addrs[0] != want {
		t.Fatalf("lookup over TCP: %v, %v", addrs, err)
	}
}

func TestWorldClose(t *testing.T) {
	w := networld.New(t)
	ln, err := w.Listen("tcp", "198.51.100.200:8080")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := w.Listen("tcp", "198.51.100.201:8080"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Listen after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}
