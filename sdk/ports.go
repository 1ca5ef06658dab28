package sdk

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/gen/noxapi"
)

// Preview is a signed, expiring URL of a port of a sandbox, for browsers
// (Sandbox.Preview): it works without a token until ExpiresAt.
type Preview struct {
	// URL ends with "/"; the port's paths follow it.
	URL string `json:"url"`
	// ExpiresAt is when the URL stops working.
	ExpiresAt time.Time `json:"expiresAt"`
}

// checkPort rejects a port outside 1 to 65535 before any request is made.
func checkPort(op string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("nox: %s: port: %d is not between 1 and 65535: %w", op, port, ErrInvalidArgument)
	}
	return nil
}

// Dial opens a TCP connection to port on the loopback interface of the
// sandbox (extension ExtPorts; ErrUnsupported without it), carried by a
// WebSocket: any protocol works over it (a database, a debugger, HTTP).
// The sandbox needs no network access of its own. Nothing listening on the
// port is an error matching ErrUnavailable that names it. ctx bounds the
// dial only: once connected, the connection lives until it is closed, the
// server inside the sandbox closes it or the sandbox ends. The connection
// does not support half-close, and its Addr methods return placeholders.
//
//meta:operation GET /v1/sandboxes/{sessionId}/tunnel/{port}
func (s *Sandbox) Dial(ctx context.Context, port int) (net.Conn, error) {
	const op = "openTunnel"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if err := checkPort(op, port); err != nil {
		return nil, err
	}
	if err := s.c.requireExt(ctx, op, ExtPorts); err != nil {
		return nil, err
	}
	req, err := noxapi.NewOpenTunnelRequest(s.c.baseURL, s.id, int32(port), nil)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if err := s.c.editRequest(ctx, req); err != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	conn, resp, err := websocket.Dial(ctx, req.URL.String(), &websocket.DialOptions{
		HTTPClient: s.c.httpClient,
		HTTPHeader: req.Header,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			if resp.Body == nil {
				resp.Body = http.NoBody
			}
			return nil, newAPIError(op, resp)
		}
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	// The connection outlives ctx, as a net.Dialer's does.
	return websocket.NetConn(context.WithoutCancel(ctx), conn, websocket.MessageBinary), nil
}

// Preview returns a signed URL of port that a browser, or anyone it is
// given to, can open without a token until it expires (extension
// ExtPorts): the backend proxies it to the port like PortURL. ttl is how
// long it works, rounded up to a second; zero means the backend's default
// (an hour), and at most Info.Limits.MaxPreviewTTL is accepted. The
// sandbox need not be listening yet; it must exist.
//
//meta:operation POST /v1/sandboxes/{sessionId}/previews
func (s *Sandbox) Preview(ctx context.Context, port int, ttl time.Duration) (*Preview, error) {
	const op = "createPreview"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	if err := checkPort(op, port); err != nil {
		return nil, err
	}
	if ttl < 0 {
		return nil, fmt.Errorf("nox: %s: ttl: negative duration %s: %w", op, ttl, ErrInvalidArgument)
	}
	if err := s.c.requireExt(ctx, op, ExtPorts); err != nil {
		return nil, err
	}
	body := noxapi.PreviewRequest{Port: int32(port)}
	if ttl > 0 {
		secs := (ttl + time.Second - 1) / time.Second
		if secs > math.MaxInt32 {
			return nil, fmt.Errorf("nox: %s: ttl: %s is too long: %w", op, ttl, ErrInvalidArgument)
		}
		n := int32(secs)
		body.TTLSeconds = &n
	}
	// Signing a URL changes nothing on the backend: it is safe to retry.
	resp, err := s.c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.CreatePreview(ctx, s.id, body)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.Preview
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return nil, err
	}
	return &Preview{URL: g.URL, ExpiresAt: g.ExpiresAt}, nil
}

// PortURL returns the URL under which the backend proxies HTTP and
// WebSocket requests to port inside the sandbox (extension ExtPorts):
// PortURL(8000)+"api?x=1" reaches http://127.0.0.1:8000/api?x=1 in the
// sandbox. It ends with "/". Requests to it need the Client's token: send
// them with PortClient, or use a Preview URL where a token cannot be sent
// (a browser).
//
//meta:operation GET /v1/sandboxes/{sessionId}/ports/{port}/{path}
func (s *Sandbox) PortURL(port int) string {
	return s.c.baseURL + "v1/sandboxes/" + url.PathEscape(s.id) + "/ports/" + strconv.Itoa(port) + "/"
}

// PortClient returns an HTTP client for the server listening on port
// inside the sandbox, through the backend's proxy (PortURL): a request to
// a URL without a host ("/api?x=1") goes to the port's path, an absolute
// URL under PortURL works too, and requests to the backend carry the
// Client's token and User-Agent (never to other hosts, so a redirect
// elsewhere does not leak it). The client has no timeout and does not
// retry: bound requests with their context. Check with
// Capabilities().Supports(ExtPorts) first when the backend may lack the
// extension (it then answers 404).
func (s *Sandbox) PortClient(port int) *http.Client {
	hc := *s.c.httpClient
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = &portTransport{next: next, c: s.c, base: s.PortURL(port)}
	hc.Timeout = 0
	return &hc
}

// portTransport resolves host-less URLs against a port's proxy URL and
// authenticates requests to the backend.
type portTransport struct {
	next http.RoundTripper
	c    *Client
	base string // PortURL, ending with "/"
}

// RoundTrip implements http.RoundTripper.
func (t *portTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.URL.Host == "" {
		u, err := url.Parse(t.base + strings.TrimPrefix(r.URL.EscapedPath(), "/"))
		if err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, fmt.Errorf("nox: proxyPort: %w", err)
		}
		u.RawQuery = r.URL.RawQuery
		r.URL = u
		r.Host = ""
	}
	if strings.HasPrefix(r.URL.String(), t.c.baseURL) {
		if err := t.c.editRequest(r.Context(), r); err != nil {
			return nil, fmt.Errorf("nox: proxyPort: %w", err)
		}
	}
	return t.next.RoundTrip(r)
}
