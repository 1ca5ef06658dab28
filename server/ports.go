package server

// The ports extension: the routing of proxyPort and openTunnel, which
// server.New serves before the generated router (a proxied path has any
// method and any number of segments, which the router and the request
// validator would refuse), and the checks they share.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

var noPorts = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the ports extension"}

// ProxyPort is served by servePorts before the generated router, which
// never reaches this handler for a backend with the ports extension.
func (h *handlers) ProxyPort(ctx context.Context, req noxapi.ProxyPortRequestObject) (noxapi.ProxyPortResponseObject, error) {
	return noPorts, nil
}

// OpenTunnel is served by servePorts before the generated router, which
// never reaches this handler for a backend with the ports extension.
func (h *handlers) OpenTunnel(ctx context.Context, req noxapi.OpenTunnelRequestObject) (noxapi.OpenTunnelResponseObject, error) {
	return noPorts, nil
}

// portRoute is a parsed proxyPort or openTunnel request path.
type portRoute struct {
	tunnel bool   // openTunnel, else proxyPort
	id     string // the session id, unchecked
	port   string // the port, unchecked
	// rest and rawRest are the path after the port (proxyPort), decoded
	// and escaped, without their leading slash.
	rest, rawRest string
}

// parsePortRoute reports whether r is a proxyPort request
// (/v1/sandboxes/{sessionId}/ports/{port}/{path...}, any method) or an
// openTunnel request (/v1/sandboxes/{sessionId}/tunnel/{port}).
func parsePortRoute(r *http.Request) (portRoute, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/sandboxes/")
	if !ok {
		return portRoute{}, false
	}
	id, sub, _ := strings.Cut(rest, "/")
	if t, ok := strings.CutPrefix(sub, "tunnel/"); ok && !strings.Contains(t, "/") {
		return portRoute{tunnel: true, id: id, port: t}, true
	}
	p, ok := strings.CutPrefix(sub, "ports/")
	if !ok {
		return portRoute{}, false
	}
	port, path, ok := strings.Cut(p, "/")
	if !ok {
		return portRoute{}, false // the contract's path always has the slash
	}
	// The session id and the port are unreserved characters when valid,
	// so the escaped path has the same prefix; it is checked below.
	prefix := "/v1/sandboxes/" + id + "/ports/" + port + "/"
	raw, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		raw = ""
	}
	return portRoute{id: id, port: port, rest: path, rawRest: raw}, true
}

// checkPort parses a port path parameter: 1 to 65535.
func checkPort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s != strconv.Itoa(n) {
		return 0, invalid("port: must be a number from 1 to 65535, not %s", quoteHost(s))
	}
	return n, nil
}

// checkPortTarget checks a session id and a port of a request path.
func checkPortTarget(id, port string) (int, error) {
	if !api.ValidSessionID(id) {
		return 0, invalid("sessionId: invalid session id %s", quoteHost(id))
	}
	return checkPort(port)
}

// servePorts answers proxyPort and openTunnel requests itself and passes
// the others to next. It runs behind auth and the browser guard.
func (h *handlers) servePorts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := parsePortRoute(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		port, err := checkPortTarget(route.id, route.port)
		if err != nil {
			h.errorFor(r.Context(), err).visit(w)
			return
		}
		if route.tunnel {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", http.MethodGet)
				writeJSONError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: openTunnel is GET", r.Method), 0)
				return
			}
			h.serveTunnel(w, r, route.id, port)
			return
		}
		h.proxy(w, r, proxyTarget{
			id: route.id, port: port, rest: route.rest, rawRest: route.rawRest,
			prefix: fmt.Sprintf("/v1/sandboxes/%s/ports/%d", route.id, port),
		})
	})
}

// isTunnel reports whether r is an openTunnel request: GET
// /v1/sandboxes/{sessionId}/tunnel/{port}.
func isTunnel(r *http.Request) bool {
	route, ok := parsePortRoute(r)
	return ok && route.tunnel && r.Method == http.MethodGet
}
