package networld_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"

	"github.com/noxrunner/nox/internal/networld"
)

// A host of the world serves HTTP; a client resolves its name with the
// world's DNS server and connects through the world's namespace.
func Example() {
	if os.Geteuid() != 0 {
		fmt.Println("hello from site.test") // the world needs root
		return
	}
	w, err := networld.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	addr := w.Host("site.test")
	_ = w.ServeHTTP(netip.AddrPortFrom(addr, 80), http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "hello from site.test")
	}))
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(address)
			ips, err := w.Resolver().LookupNetIP(ctx, "ip4", host)
			if err != nil {
				return nil, err
			}
			return w.Dial(ctx, network, net.JoinHostPort(ips[0].String(), port))
		},
	}}
	resp, err := c.Get("http://site.test/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
	// Output: hello from site.test
}
