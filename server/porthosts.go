package server

// Host-based routing of the ports extension: a request addressed to
// {port}-{sessionId}.{Options.PortDomain} is proxied to that port with its
// path unchanged, for apps that must live at "/".

import (
	"crypto/sha256"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// previewParam and previewCookie carry a preview token to a port host:
// the URL createPreview answers has the parameter, which the first
// request trades for the cookie.
const (
	previewParam  = "nox_preview"
	previewCookie = "nox_preview"
)

// portHost is the parsed host of a host-routed request.
type portHost struct {
	id   string
	port int
}

// parsePortHost reports whether host (a Host header, with an optional
// port) is {port}-{id}.{domain}.
func parsePortHost(host, domain string) (portHost, bool) {
	if domain == "" {
		return portHost{}, false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok {
		return portHost{}, false
	}
	p, id, ok := strings.Cut(label, "-")
	if !ok || !hostRoutable(id) || len(label) > 63 {
		return portHost{}, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != p {
		return portHost{}, false
	}
	return portHost{id: id, port: port}, true
}

// hostRoutable reports whether session id can be a part of a port host's
// label: lower-case letters, digits and inner hyphens, so that the host
// names exactly one id.
func hostRoutable(id string) bool {
	if id == "" || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// portHostURL is the URL of port of sandbox id under the port domain,
// with the scheme and port of base (scheme://host[:port]), or "" when the
// id cannot be routed by host.
func portHostURL(base, domain, id string, port int) string {
	u, err := url.Parse(base)
	label := strconv.Itoa(port) + "-" + id
	if err != nil || domain == "" || !hostRoutable(id) || len(label) > 63 {
		return ""
	}
	host := label + "." + domain
	if p := u.Port(); p != "" {
		host = net.JoinHostPort(host, p)
	}
	return u.Scheme + "://" + host
}

// servePortHosts proxies requests addressed to a port host, authorized
// by the bearer token (when the server has one) or a preview token of
// that very sandbox and port, from the nox_preview cookie or, once,
// from the nox_preview parameter, which is traded for the cookie by a
// redirect to the URL without it. Other requests go to next.
func (h *handlers) servePortHosts(next http.Handler) http.Handler {
	var want [sha256.Size]byte
	if h.opts.Token != "" {
		want = sha256.Sum256([]byte(h.opts.Token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ph, ok := parsePortHost(r.Host, h.opts.PortDomain)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if tok := r.URL.Query().Get(previewParam); tok != "" {
			c, err := h.previewFor(tok, ph)
			if err != nil {
				writeJSONError(w, http.StatusForbidden, err.Error(), 0)
				return
			}
			http.SetCookie(w, &http.Cookie{
				Name: previewCookie, Value: tok, Path: "/", Expires: time.Unix(c.Expires, 0),
				HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(publicBase(r), "https:"),
			})
			u := *r.URL
			q := u.Query()
			q.Del(previewParam)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if h.opts.Token != "" && !bearerMatches(r, want) {
			ck, err := r.Cookie(previewCookie)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="nox"`)
				writeJSONError(w, http.StatusUnauthorized, "missing bearer token or preview cookie (open a preview URL of this port first)", 0)
				return
			}
			if _, err := h.previewFor(ck.Value, ph); err != nil {
				writeJSONError(w, http.StatusForbidden, err.Error(), 0)
				return
			}
		}
		dropCookie(r, previewCookie)
		path := strings.TrimPrefix(r.URL.Path, "/")
		raw := strings.TrimPrefix(r.URL.EscapedPath(), "/")
		h.proxy(w, r, proxyTarget{id: ph.id, port: ph.port, rest: path, rawRest: raw, prefix: ""})
	})
}

// previewFor verifies a preview token for the sandbox and port of ph.
func (h *handlers) previewFor(token string, ph portHost) (previewClaims, error) {
	c, err := parsePreview(h.previewKey, token, time.Now())
	if err != nil {
		return c, err
	}
	if c.Session != ph.id || c.Port != ph.port {
		return c, errPreviewInvalid
	}
	return c, nil
}

// dropCookie removes the cookie name from r's Cookie headers, so that
// the preview token does not reach the sandbox.
func dropCookie(r *http.Request, name string) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
}

// validDomain reports whether d is a DNS name of letters, digits and
// inner hyphens (lower-case), with at least two labels.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(d) > 200 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) > 63 || !hostRoutable(l) {
			return false
		}
	}
	return true
}
