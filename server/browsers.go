package server

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guardBrowsers protects a server without a token from web pages. A
// browser lets any page send "simple" cross-site requests (a POST with a
// text/plain body, which the lenient JSON reading accepts) without asking
// the server first, and a page may rebind its own DNS name to 127.0.0.1
// to make its requests same-origin. Without a token both would let any
// web site run commands in the user's sandboxes. So, without a token:
//
//   - a request a browser marks as coming from another site (an Origin
//     that is not the request's own host, or Sec-Fetch-Site other than
//     same-origin and none) is refused with 403;
//   - a request addressed (Host) to a DNS name other than localhost or
//     a reserved, never-resolving .invalid name is refused with 403: a
//     rebound name cannot pass, an IP address cannot be rebound.
//
// Programs (the SDK, the CLI, curl, the Python client) send neither
// header and address the server by the host they were given; with a
// token none of this applies, since a page cannot attach the header.
func guardBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := browserRefusal(r); msg != "" {
			writeJSONError(w, http.StatusForbidden, msg, 0)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// browserRefusal returns why r is refused, or "".
func browserRefusal(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "cross-site request refused: this server has no token, so it serves no web page of another site (set a token to allow browsers)"
	}
	if !sameOrigin(r) {
		return "cross-origin request refused (Origin " + quoteHost(r.Header.Get("Origin")) + "): this server has no token, so it serves no web page of another origin (set a token to allow browsers)"
	}
	if !addressable(r.Host) {
		return "Host " + quoteHost(r.Host) + " refused: without a token this server answers only requests addressed to an IP address or localhost (protection against DNS rebinding); set a token to serve other names"
	}
	return ""
}

// sameOrigin reports whether r has no Origin (a program, not a browser)
// or one whose host is the request's.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// addressable reports whether host (with an optional port) is an IP
// address, localhost (or a name under .localhost) or a name under
// .invalid, which never resolves.
func addressable(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" || net.ParseIP(host) != nil || host == "localhost" {
		return true
	}
	return strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".invalid")
}

// quoteHost quotes a client-sent host for a message, bounded.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "..."
	}
	return `"` + strings.ToValidUTF8(h, "?") + `"`
}
