package server

// Preview URLs of the ports extension: createPreview signs a URL of one
// port of one sandbox, valid until it expires, and /preview/{token}/...
// proxies to that port without a bearer token.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// defaultPreviewTTL is a preview URL's time to live when the request has
// none (lowered to the backend's maximum).
const defaultPreviewTTL = time.Hour

// previewPrefix starts the path of every preview URL.
const previewPrefix = "/preview/"

// previewClaims are what a preview token says: the sandbox, the port and
// the expiry (Unix seconds).
type previewClaims struct {
	Session string `json:"s"`
	Port    int    `json:"p"`
	Expires int64  `json:"e"`
}

// signPreview returns the token of c: base64url(JSON of c) "." base64url
// (HMAC-SHA256 of the first part under key).
func signPreview(key []byte, c previewClaims) string {
	body, _ := json.Marshal(c) // a struct of strings and numbers
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(previewMAC(key, payload))
}

// previewMAC is the HMAC-SHA256 of payload under key.
func previewMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// errPreviewInvalid and errPreviewExpired are the refusals of a token.
var (
	errPreviewInvalid = errors.New("invalid preview URL: its signature does not match (it was changed, or made by another server or before this server restarted)")
	errPreviewExpired = errors.New("preview URL expired")
)

// parsePreview verifies token under key (in constant time) and its
// expiry at now, and returns its claims.
func parsePreview(key []byte, token string, now time.Time) (previewClaims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return previewClaims{}, errPreviewInvalid
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(got, previewMAC(key, payload)) {
		return previewClaims{}, errPreviewInvalid
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return previewClaims{}, errPreviewInvalid
	}
	var c previewClaims
	if err := json.Unmarshal(body, &c); err != nil || !api.ValidSessionID(c.Session) || c.Port < 1 || c.Port > 65535 {
		return previewClaims{}, errPreviewInvalid
	}
	if now.Unix() >= c.Expires {
		return previewClaims{}, fmt.Errorf("%w at %s", errPreviewExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// CreatePreview checks the port and ttlSeconds (default an hour, at most
// Limits.MaxPreviewTTL) and that the sandbox exists (when the backend
// has sandboxes.get), and answers the signed URL under this server's
// address as the request gives it.
func (h *handlers) CreatePreview(ctx context.Context, req noxapi.CreatePreviewRequestObject) (noxapi.CreatePreviewResponseObject, error) {
	if h.ports == nil {
		return noPorts, nil
	}
	r := httpRequestFrom(ctx)
	if r == nil {
		return nil, errNoRequest
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	port := int(req.Body.Port)
	if port < 1 || port > 65535 {
		return h.errorFor(ctx, invalid("port: must be from 1 to 65535, not %d", port)), nil
	}
	ttl, err := h.previewTTL(req.Body.TTLSeconds)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if h.canGet {
		if _, err := h.b.Get(ctx, req.SessionID); err != nil {
			return h.errorFor(ctx, err), nil
		}
	}
	expires := time.Now().Add(ttl).Truncate(time.Second)
	token := signPreview(h.previewKey, previewClaims{Session: req.SessionID, Port: port, Expires: expires.Unix()})
	link := publicBase(r) + previewPrefix + token + "/"
	if host := portHostURL(publicBase(r), h.opts.PortDomain, req.SessionID, port); host != "" {
		link = host + "/?" + previewParam + "=" + token
	}
	return noxapi.CreatePreview200JSONResponse{URL: link, ExpiresAt: expires.UTC()}, nil
}

// previewTTL checks a requested ttlSeconds and applies the default.
func (h *handlers) previewTTL(secs *int32) (time.Duration, error) {
	limit := h.info.Limits.MaxPreviewTTL
	if secs == nil {
		if limit > 0 {
			return min(defaultPreviewTTL, limit), nil
		}
		return defaultPreviewTTL, nil
	}
	ttl := time.Duration(*secs) * time.Second
	switch {
	case *secs < 1:
		return 0, invalid("ttlSeconds: must be at least 1, not %d", *secs)
	case limit > 0 && ttl > limit:
		return 0, invalid("ttlSeconds: %d exceeds maxPreviewTtlSeconds %d", *secs, int64(limit/time.Second))
	}
	return ttl, nil
}

// publicBase is scheme://host of this server as the client addressed it,
// from X-Forwarded-Proto and X-Forwarded-Host when a proxy sets them.
func publicBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if fh := firstValue(r.Header.Get("X-Forwarded-Host")); fh != "" && !strings.ContainsAny(fh, "/?#@ ") {
		host = fh
	}
	return scheme + "://" + host
}

// firstValue is the first of a comma-separated header's values.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// servePreviews answers /preview/{token}/{path...} (any method) by
// proxying to the token's port like proxyPort, without auth or the
// browser guard (preview URLs are for browsers): an invalid or expired
// token is 403. Other requests go to next.
func (h *handlers) servePreviews(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, previewPrefix)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		token, path, slash := strings.Cut(rest, "/")
		c, err := parsePreview(h.previewKey, token, time.Now())
		if err != nil {
			writeJSONError(w, http.StatusForbidden, err.Error(), 0)
			return
		}
		if !slash { // the URL's path ends with "/": relative links work
			u := *r.URL
			u.Path, u.RawPath = previewPrefix+token+"/", ""
			http.Redirect(w, r, u.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		raw, _ := strings.CutPrefix(r.URL.EscapedPath(), previewPrefix+token+"/")
		h.proxy(w, r, proxyTarget{id: c.Session, port: c.Port, rest: path, rawRest: raw, prefix: previewPrefix + token})
	})
}
