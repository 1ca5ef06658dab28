package server

// The HTTP proxy of the ports extension (proxyPort and preview URLs).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"

	"github.com/noxrunner/nox/driver"
)

// proxyTarget is where one proxied request goes.
type proxyTarget struct {
	id   string // the session id
	port int    // the port inside the sandbox
	// rest and rawRest are the path to request there, decoded and
	// escaped, without the leading slash.
	rest, rawRest string
	// prefix is the path the client's request had before rest, sent as
	// X-Forwarded-Prefix.
	prefix string
}

type proxyTargetKey struct{}

// newPortProxy returns the reverse proxy of the ports extension. Its
// transport dials with ports.DialPort the target stored in the request's
// context, one connection per request (no idle connection outlives a
// deleted sandbox); responses are flushed as they arrive (Server-Sent
// Events pass through), and WebSocket upgrades are spliced.
func newPortProxy(ports driver.Ports, h *handlers) *httputil.ReverseProxy {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			t, ok := ctx.Value(proxyTargetKey{}).(proxyTarget)
			if !ok {
				return nil, errors.New("server: a proxied request without its target")
			}
			return ports.DialPort(ctx, t.id, t.port)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	return &httputil.ReverseProxy{
		Rewrite:       rewriteProxied,
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		ErrorHandler:  h.proxyError,
	}
}

// rewriteProxied addresses the outgoing request to the target: path
// "/"+rest, the query without access_token, Host 127.0.0.1:port, no
// Authorization header (the API token never reaches the sandbox), and
// X-Forwarded-For, -Host, -Proto and -Prefix.
func rewriteProxied(pr *httputil.ProxyRequest) {
	t, _ := pr.In.Context().Value(proxyTargetKey{}).(proxyTarget)
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port))
	u := pr.Out.URL
	u.Scheme, u.Host, u.User = "http", host, nil
	u.Path, u.RawPath = "/"+t.rest, ""
	if t.rawRest != "" && t.rawRest != t.rest {
		u.RawPath = "/" + t.rawRest
	}
	if q := u.Query(); q.Has("access_token") {
		q.Del("access_token")
		u.RawQuery = q.Encode()
	}
	pr.Out.Host = host
	pr.Out.Header.Del("Authorization")
	pr.SetXForwarded()
	pr.Out.Header.Set("X-Forwarded-Prefix", t.prefix)
}

// proxy serves r from the target.
func (h *handlers) proxy(w http.ResponseWriter, r *http.Request, t proxyTarget) {
	ctx := context.WithValue(r.Context(), proxyTargetKey{}, t)
	h.portProxy.ServeHTTP(w, r.WithContext(ctx))
}

// proxyError answers a request the proxy could not serve: an unknown
// sandbox 404, nothing listening on the port 502 naming it, the client
// gone nothing, anything else 502.
func (h *handlers) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	t, _ := ctx.Value(proxyTargetKey{}).(proxyTarget)
	switch {
	case ctx.Err() != nil:
		return // the client went away
	case errors.Is(err, driver.ErrNotFound), errors.Is(err, driver.ErrUnreachable):
		h.errorFor(ctx, err).visit(w)
	default:
		h.log.WarnContext(ctx, "proxy failed", "requestId", requestIDFrom(ctx), "port", t.port, "err", err)
		writeJSONError(w, http.StatusBadGateway, fmt.Sprintf("port %d: the server inside the sandbox did not answer (request id %s)", t.port, requestIDFrom(ctx)), 0)
	}
}
