package egress

// Gateway tests: everything on loopback. Upstream "internet" servers
// listen on 127.0.0.1, which the tests' Rules open; a tiny DNS server
// maps the test names.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/proxy"

	"github.com/noxrunner/nox/driver"
)

// testZone is what the test DNS server answers.
var testZone = map[string][]string{
	"allowed.test.":     {"127.0.0.1"},
	"denied.test.":      {"127.0.0.1"},
	"a.wild.test.":      {"127.0.0.1"},
	"denied.wild.test.": {"127.0.0.1"},
	// rebind.test answers only addresses no policy here reaches.
	"rebind.test.": {"169.254.169.254", "10.0.0.1", "::1", "::ffff:192.168.0.1"},
	// mixed.test answers a forbidden address first.
	"mixed.test.": {"169.254.169.254", "127.0.0.1", "::1"},
	"other.test.": {"127.0.0.2"},
}

// openLoopback are the test Rules: 127.0.0.0/8 is the tests' internet.
var openLoopback = Rules{Open: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

// testPolicy is the allowlist most tests use.
var testPolicy = driver.NetworkPolicy{
	Egress: "allowlist",
	Allow:  []string{"allowed.test", "*.wild.test", "rebind.test", "mixed.test", "missing.test"},
	Deny:   []string{"denied.wild.test"},
}

// startTestDNS serves testZone on a loopback UDP port and returns a
// resolver that asks it and nothing else.
func startTestDNS(t testing.TB) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := zoneAnswer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// zoneAnswer answers a query from testZone.
func zoneAnswer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qn, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(qn.Name.String())
	addrs, ok := testZone[name]
	rcode := dnsmessage.RCodeSuccess
	if !ok {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: rcode, RecursionAvailable: true})
	b.StartQuestions()
	b.Question(qn)
	b.StartAnswers()
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		rh := dnsmessage.ResourceHeader{Name: qn.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case qn.Type == dnsmessage.TypeA && a.Is4():
			b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case qn.Type == dnsmessage.TypeAAAA && a.Is6():
			b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, _ := b.Finish()
	return out
}

// testGateway is a running gateway with its addresses.
type testGateway struct {
	g         *Gateway
	proxyAddr string
	dnsAddr   string
	rules     Rules
}

// startGateway runs a gateway enforcing p under rules on loopback ports;
// cleanup closes it and checks that both Serve methods return nil.
func startGateway(t testing.TB, rules Rules, p driver.NetworkPolicy, cfg Config) *testGateway {
	t.Helper()
	if cfg.Resolver == nil {
		cfg.Resolver = startTestDNS(t)
	}
	g := NewGateway(cfg, mustCompile(t, rules, p))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- g.ServeProxy(l) }()
	go func() { errs <- g.ServeDNS(pc) }()
	t.Cleanup(func() {
		g.Close()
		for range 2 {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("Serve after Close: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Serve did not return after Close")
				return
			}
		}
	})
	return &testGateway{g: g, proxyAddr: l.Addr().String(), dnsAddr: pc.LocalAddr().String(), rules: rules}
}

// httpClient returns a client that sends everything through the proxy.
func (tg *testGateway) httpClient() *http.Client {
	u := &url.URL{Scheme: "http", Host: tg.proxyAddr}
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(u),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // test certificates name no test name
	}, Timeout: 10 * time.Second}
}

// socks returns a SOCKS5 dialer through the proxy.
func (tg *testGateway) socks(t testing.TB) proxy.Dialer {
	t.Helper()
	d, err := proxy.SOCKS5("tcp", tg.proxyAddr, nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startUpstream runs an HTTP server on loopback that answers its path.
func startUpstream(t testing.TB) (port string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" || r.Header.Get("Proxy-Connection") != "" {
			http.Error(w, "proxy headers leaked", http.StatusTeapot)
			return
		}
		fmt.Fprintf(w, "hello %s %s", r.Host, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return portOf(t, srv.Listener.Addr())
}

// startEcho runs a TCP echo server on loopback; it closes its write side
// when the client does.
func startEcho(t testing.TB) (port string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return portOf(t, l.Addr())
}

func portOf(t testing.TB, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// get fetches u through the client and returns status and body.
func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

// echoOnce writes msg on c and checks it comes back.
func echoOnce(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

const refusal = "not allowed by the sandbox's egress policy"

func TestProxyGET(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	c := tg.httpClient()
	tests := []struct {
		host     string
		wantCode int
		wantBody string
	}{
		{"allowed.test", 200, "hello allowed.test:" + up + " /path"},
		{"ALLOWED.test.", 200, "hello ALLOWED.test.:" + up + " /path"},
		{"a.wild.test", 200, "hello a.wild.test:" + up + " /path"},
		{"wild.test", 403, refusal},
		{"denied.wild.test", 403, "denied.wild.test:" + up + ": " + refusal},
		{"denied.test", 403, refusal},
		{"rebind.test", 403, refusal},
		{"mixed.test", 200, "hello mixed.test:" + up},
		{"missing.test", 502, "cannot resolve"},
		{"127.0.0.1", 403, refusal},
		{"[::1]", 403, refusal},
	}
	for _, tt := range tests {
		code, body := get(t, c, "http://"+tt.host+":"+up+"/path")
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET %s: %d %q, want %d %q", tt.host, code, body, tt.wantCode, tt.wantBody)
		}
	}
	// The answer names the destination and no host detail.
	if _, body := get(t, c, "http://denied.test:"+up+"/"); strings.Contains(body, "127.0.0.1") {
		t.Errorf("refusal leaks an address: %q", body)
	}
}

func TestProxyKeepAlive(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	c, err := net.Dial("tcp", tg.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET http://allowed.test:%s/%d HTTP/1.1\r\nHost: allowed.test:%s\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\r\n", up, i, up)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasSuffix(string(b), fmt.Sprintf("/%d", i)) || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, b, resp.Close)
		}
	}
}

func TestProxyCONNECT(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	for _, tt := range []struct {
		dest string
		want int
	}{
		{"allowed.test:" + echo, 200},
		{"denied.test:" + echo, 403},
		{"rebind.test:" + echo, 403},
		{"127.0.0.1:" + echo, 403},
		{"allowed.test", 400},
		{"allowed.test:0", 400},
	} {
		c, resp := connect(t, tg.proxyAddr, tt.dest)
		if resp.StatusCode != tt.want {
			t.Errorf("CONNECT %s: %s, want %d", tt.dest, resp.Status, tt.want)
		}
		if tt.want == 200 {
			echoOnce(t, c, "ping")
			// Close-write propagation: the echo server sees EOF, closes its
			// side, and we see EOF.
			c.(*net.TCPConn).CloseWrite()
			if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
				t.Errorf("after CloseWrite: %q, %v", b, err)
			}
		}
		c.Close()
	}
}

// connect sends CONNECT dest to the proxy and reads the answer.
func connect(t testing.TB, proxyAddr, dest string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dest, dest)
	// The 200 has no body; a refusal's body is read by the caller if at all.
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", dest, err)
	}
	return c, resp
}

func TestProxyHTTPS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure") }))
	t.Cleanup(srv.Close)
	port := portOf(t, srv.Listener.Addr())
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	c := tg.httpClient()
	if code, body := get(t, c, "https://allowed.test:"+port+"/"); code != 200 || body != "secure" {
		t.Errorf("https allowed: %d %q", code, body)
	}
	if _, err := c.Get("https://denied.test:" + port + "/"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("https denied: %v, want a Forbidden proxy error", err)
	}
}

func TestSOCKS(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	d := tg.socks(t)
	c, err := d.Dial("tcp", "allowed.test:"+echo)
	if err != nil {
		t.Fatalf("SOCKS allowed.test: %v", err)
	}
	echoOnce(t, c, "hello")
	c.Close()
	for _, dest := range []string{"denied.test:" + echo, "rebind.test:" + echo, "127.0.0.1:" + echo, "[::1]:" + echo, "169.254.169.254:80"} {
		c, err := d.Dial("tcp", dest)
		if err == nil {
			c.Close()
			t.Errorf("SOCKS %s: connected", dest)
		} else if !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("SOCKS %s: %v, want not allowed by ruleset", dest, err)
		}
	}
	if _, err := d.Dial("tcp", "missing.test:"+echo); err == nil || !strings.Contains(err.Error(), "host unreachable") {
		t.Errorf("SOCKS missing.test: %v, want host unreachable", err)
	}
}

func TestSOCKSProtocol(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, Rules{Open: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"::1", "127.0.0.1"}}, Config{})
	p := portNum(t, echo)
	tests := []struct {
		name  string
		greet []byte
		req   []byte
		want  []byte // the method reply followed by the request reply
	}{
		{"no acceptable method", []byte{5, 1, 2}, nil, []byte{5, 0xff}},
		{"bind", []byte{5, 1, 0}, []byte{5, 2, 0, 1, 127, 0, 0, 1, p[0], p[1]}, []byte{5, 0, 5, 7}},
		{"udp associate", []byte{5, 1, 0}, []byte{5, 3, 0, 1, 127, 0, 0, 1, p[0], p[1]}, []byte{5, 0, 5, 7}},
		{"bad atyp", []byte{5, 1, 0}, []byte{5, 1, 0, 9, 127, 0, 0, 1, p[0], p[1]}, []byte{5, 0, 5, 8}},
		{"ipv6 allowed, refused", []byte{5, 2, 2, 0}, append(append([]byte{5, 1, 0, 4}, netip.IPv6Loopback().AsSlice()...), p[0], p[1]), []byte{5, 0, 5, 5}},
		{"ipv4 refused connection", []byte{5, 1, 0}, []byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 1}, []byte{5, 0, 5, 5}},
		{"empty domain", []byte{5, 1, 0}, []byte{5, 1, 0, 3, 0, p[0], p[1]}, []byte{5, 0, 5, 4}},
	}
	for _, tt := range tests {
		c, err := net.Dial("tcp", tg.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(append(tt.greet, tt.req...))
		got := make([]byte, len(tt.want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(tt.want) {
			t.Errorf("%s: got % x (%v), want % x", tt.name, got, err, tt.want)
		}
		c.Close()
	}
}

func portNum(t testing.TB, port string) [2]byte {
	t.Helper()
	var n uint16
	if _, err := fmt.Sscan(port, &n); err != nil {
		t.Fatal(err)
	}
	return [2]byte{byte(n >> 8), byte(n)}
}

// dnsQuery asks the gateway's resolver and returns the rcode and the
// addresses answered.
func dnsQuery(t testing.TB, addr, name string, typ dnsmessage.Type) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	resp := exchange(t, addr, q)
	if resp == nil {
		t.Fatalf("%s: no answer", name)
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != 4242 || !h.Response {
		t.Fatalf("%s: header %+v, %v", name, h, err)
	}
	p.SkipAllQuestions()
	var ips []netip.Addr
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rh.TTL > dnsTTL {
			t.Errorf("%s: TTL %d", name, rh.TTL)
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			r, _ := p.AResource()
			ips = append(ips, netip.AddrFrom4(r.A))
		case dnsmessage.TypeAAAA:
			r, _ := p.AAAAResource()
			ips = append(ips, netip.AddrFrom16(r.AAAA))
		default:
			p.SkipAnswer()
		}
	}
	return h.RCode, ips
}

// exchange sends q to the DNS server at addr and returns its answer, or
// nil after a second without one.
func exchange(t testing.TB, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write(q)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestDNS(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	tests := []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		ips   string
	}{
		{"allowed.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "[127.0.0.1]"},
		{"ALLOWED.TEST.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "[127.0.0.1]"},
		{"allowed.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "[]"},
		{"allowed.test.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess, "[]"},
		{"allowed.test.", dnsmessage.TypeMX, dnsmessage.RCodeSuccess, "[]"},
		{"denied.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, "[]"},
		{"denied.wild.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, "[]"},
		{"a.wild.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "[127.0.0.1]"},
		{"rebind.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "[]"},
		{"rebind.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "[]"},
		{"mixed.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "[127.0.0.1]"},
		{"mixed.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "[]"},
		{"missing.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, "[]"},
		{"other.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, "[]"},
	}
	for _, tt := range tests {
		rcode, ips := dnsQuery(t, tg.dnsAddr, tt.name, tt.typ)
		if rcode != tt.rcode || fmt.Sprint(ips) != tt.ips {
			t.Errorf("%s %v: %v %v, want %v %s", tt.name, tt.typ, rcode, ips, tt.rcode, tt.ips)
		}
	}
	// Malformed queries: FORMERR or silence, never a crash.
	if resp := exchange(t, tg.dnsAddr, []byte{1, 2, 3}); resp != nil {
		t.Errorf("garbage: answered % x", resp)
	}
	two := []byte{0, 7, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'b', 0, 0, 1, 0, 1}
	if resp := exchange(t, tg.dnsAddr, two); resp == nil || resp[3]&0xf != byte(dnsmessage.RCodeFormatError) {
		t.Errorf("two questions: % x, want FORMERR", resp)
	}
	// Go's resolver, as a sandbox's programs use it.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", tg.dnsAddr)
	}}
	ips, err := r.LookupNetIP(t.Context(), "ip", "mixed.test.")
	if err != nil || fmt.Sprint(ips) != "[127.0.0.1]" {
		t.Errorf("LookupNetIP mixed.test: %v %v", ips, err)
	}
	var de *net.DNSError
	if _, err := r.LookupNetIP(t.Context(), "ip", "denied.test."); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupNetIP denied.test: %v, want not found", err)
	}
}

func TestAddressAfterResolution(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	d := tg.socks(t)
	dest := "127.0.0.1:" + echo
	if c, err := d.Dial("tcp", dest); err == nil {
		c.Close()
		t.Fatal("connected by address before any resolution")
	}
	if rcode, ips := dnsQuery(t, tg.dnsAddr, "allowed.test.", dnsmessage.TypeA); rcode != 0 || len(ips) != 1 {
		t.Fatalf("resolve: %v %v", rcode, ips)
	}
	c, err := d.Dial("tcp", dest)
	if err != nil {
		t.Fatalf("by address after resolution: %v", err)
	}
	echoOnce(t, c, "x")
	c.Close()
	if code, _ := get(t, tg.httpClient(), "http://"+dest+"/"); code == 403 {
		t.Error("absolute URI by address after resolution: 403")
	}
	// 127.0.0.2 was never answered.
	if c, err := d.Dial("tcp", "127.0.0.2:"+echo); err == nil {
		c.Close()
		t.Error("connected to an address no allowed name resolved to")
	}
	// A new policy forgets what was resolved.
	tg.g.SetPolicy(mustCompile(t, openLoopback, testPolicy))
	if c, err := d.Dial("tcp", dest); err == nil {
		c.Close()
		t.Error("connected by address after SetPolicy")
	}
}

func TestSetPolicyClosesTunnels(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	c, resp := connect(t, tg.proxyAddr, "allowed.test:"+echo)
	defer c.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	echoOnce(t, c, "before")
	s, err := tg.socks(t).Dial("tcp", "allowed.test:"+echo)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// An idle client connection is closed too.
	idle, err := net.Dial("tcp", tg.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // let the gateway accept it

	tg.g.SetPolicy(mustCompile(t, openLoopback, driver.NetworkPolicy{Egress: "none"}))
	for name, conn := range map[string]net.Conn{"CONNECT": c, "SOCKS": s, "idle": idle} {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Errorf("%s after SetPolicy: read %d, %v; want the connection closed", name, n, err)
		}
	}
	c2, resp := connect(t, tg.proxyAddr, "allowed.test:"+echo)
	c2.Close()
	if resp.StatusCode != 403 {
		t.Errorf("CONNECT after SetPolicy(none): %s", resp.Status)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	up := startUpstream(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{MaxConns: 1})
	c, resp := connect(t, tg.proxyAddr, "allowed.test:"+echo)
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	hc := tg.httpClient()
	if code, body := get(t, hc, "http://allowed.test:"+up+"/"); code != 503 {
		t.Errorf("beyond MaxConns: %d %q, want 503", code, body)
	}
	if _, err := tg.socks(t).Dial("tcp", "allowed.test:"+echo); err == nil || !strings.Contains(err.Error(), "general") {
		t.Errorf("SOCKS beyond MaxConns: %v, want general failure", err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, hc, "http://allowed.test:"+up+"/")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never freed: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHeaderTimeout(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, openLoopback, testPolicy, Config{HeaderTimeout: 100 * time.Millisecond, MaxConns: 1})
	for _, partial := range []string{"", "GET http://allowed.test/ HTTP/1.1\r\nHost: a", "\x05\x01"} {
		c, err := net.Dial("tcp", tg.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, partial)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		io.ReadAll(c)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: the gateway held a silent client %v", partial, d)
		}
		c.Close()
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	c, resp := connect(t, tg.proxyAddr, "allowed.test:"+echo)
	defer c.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if err := tg.g.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("tunnel after Close: %v", err)
	}
	if _, err := net.Dial("tcp", tg.proxyAddr); err == nil {
		t.Error("the proxy listener accepts after Close")
	}
	tg.g.Close() // twice is fine
	// Serving after Close returns at once and closes the listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.g.ServeProxy(l); err != nil {
		t.Errorf("ServeProxy after Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener after ServeProxy on a closed gateway: %v", err)
	}
}

func TestConcurrentSetPolicy(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	pols := []*Policy{mustCompile(t, openLoopback, testPolicy), mustCompile(t, openLoopback, driver.NetworkPolicy{Egress: "none"})}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tg.g.SetPolicy(pols[i%2])
			time.Sleep(time.Millisecond)
		}
	})
	for range 4 {
		wg.Go(func() {
			c := tg.httpClient()
			for range 20 {
				resp, err := c.Get("http://allowed.test:" + up + "/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				dnsQuery(t, tg.dnsAddr, "allowed.test.", dnsmessage.TypeA)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}

func TestForbiddenThroughProxy(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	echo := startEcho(t)
	// No Open ranges: loopback is forbidden even in mode open.
	tg := startGateway(t, Rules{}, driver.NetworkPolicy{Egress: "open"}, Config{})
	hc := tg.httpClient()
	for _, host := range []string{"allowed.test", "127.0.0.1", "127.1.2.3", "[::1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]", "169.254.169.254", "10.0.0.1", "mixed.test", "0.0.0.0", "localhost"} {
		if code, body := get(t, hc, "http://"+host+":"+up+"/"); code != 403 || !strings.Contains(body, refusal) {
			t.Errorf("GET %s: %d %q, want 403", host, code, body)
		}
		c, resp := connect(t, tg.proxyAddr, host+":"+echo)
		c.Close()
		if resp.StatusCode != 403 {
			t.Errorf("CONNECT %s: %s, want 403", host, resp.Status)
		}
		if c, err := tg.socks(t).Dial("tcp", host+":"+echo); err == nil {
			c.Close()
			t.Errorf("SOCKS %s: connected", host)
		}
	}
	if rcode, ips := dnsQuery(t, tg.dnsAddr, "allowed.test.", dnsmessage.TypeA); rcode != 0 || len(ips) != 0 {
		t.Errorf("DNS allowed.test: %v %v, want NOERROR without the loopback address", rcode, ips)
	}
}

func TestModeNone(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	tg := startGateway(t, openLoopback, driver.NetworkPolicy{Allow: []string{"allowed.test", "127.0.0.0/8"}}, Config{})
	if code, _ := get(t, tg.httpClient(), "http://allowed.test:"+up+"/"); code != 403 {
		t.Errorf("GET: %d, want 403", code)
	}
	if code, _ := get(t, tg.httpClient(), "http://127.0.0.1:"+up+"/"); code != 403 {
		t.Errorf("GET by address: %d, want 403", code)
	}
	if rcode, _ := dnsQuery(t, tg.dnsAddr, "allowed.test.", dnsmessage.TypeA); rcode != dnsmessage.RCodeNameError {
		t.Errorf("DNS: %v, want NXDOMAIN", rcode)
	}
}

func TestProxyBadRequests(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, openLoopback, testPolicy, Config{})
	for _, req := range []string{
		"GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"NONSENSE\r\n\r\n",
	} {
		c, err := net.Dial("tcp", tg.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("%q: %v %v, want 400", req, resp, err)
		}
		c.Close()
	}
}

func TestProxyEnv(t *testing.T) {
	t.Parallel()
	env := ProxyEnv()
	for k, want := range map[string]string{
		"HTTP_PROXY": "http://127.0.0.53:3128", "https_proxy": "http://127.0.0.53:3128",
		"ALL_PROXY": "socks5h://127.0.0.53:3128", "all_proxy": "socks5h://127.0.0.53:3128",
		"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if len(env) != 8 {
		t.Errorf("%d variables: %v", len(env), env)
	}
}

func FuzzDNS(f *testing.F) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("allowed.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	f.Add(q)
	f.Add([]byte{})
	f.Add([]byte{0, 7, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'b', 0, 0, 1, 0, 1})
	// Lookups fail at once: the fuzzer exercises parsing and answering.
	r := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no network in the fuzzer")
	}}
	allow := NewGateway(Config{Resolver: r}, mustCompile(f, Rules{}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"allowed.test", "*.test"}}))
	defer allow.Close()
	st := allow.state.Load()
	f.Fuzz(func(t *testing.T, q []byte) {
		resp := allow.answer(t.Context(), st, q)
		if len(resp) > 512 {
			t.Fatalf("answer of %d bytes", len(resp))
		}
		if resp != nil {
			var p dnsmessage.Parser
			if h, err := p.Start(resp); err != nil || !h.Response {
				t.Fatalf("answer does not parse: %v", err)
			}
		}
	})
}

func BenchmarkProxyGET(b *testing.B) {
	up := startUpstream(b)
	tg := startGateway(b, openLoopback, testPolicy, Config{})
	benchGET(b, tg.httpClient(), "http://allowed.test:"+up+"/bench")
}

func BenchmarkDirectGET(b *testing.B) {
	up := startUpstream(b)
	benchGET(b, &http.Client{Transport: &http.Transport{}}, "http://127.0.0.1:"+up+"/bench")
}

func benchGET(b *testing.B, c *http.Client, u string) {
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}
