package conformance

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/api"
)

// The anchors of the ports checks.
const (
	anchorPortProxy   = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1ports~1{port}~1{path}/get"
	anchorPortTunnel  = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1tunnel~1{port}/get"
	anchorPortPreview = contractDoc + "/paths/~1v1~1sandboxes~1{sessionId}~1previews/post"
	anchorPortBad     = contractDoc + "/components/responses/BadPortRequest"
	anchorPortDown    = contractDoc + "/components/responses/PortUnreachable"
	anchorMaxPreview  = anchorLimits + "maxPreviewTtlSeconds"
)

// portsChecks are the checks of the ports extension (proxy, tunnel,
// previews), each skipped when the backend does not advertise it. The
// checks that need a server inside the sandbox start one with the
// processes extension and python3, and are skipped without them.
func portsChecks() []Check {
	c := func(id string, ops []string, anchor, spec string, run func(context.Context, *Env) error) Check {
		return Check{ID: id, Level: LevelExtension, Capability: api.ExtPorts, Parallel: true, Requirement: Must,
			Operations: ops, Extensions: []string{api.ExtPorts}, Anchor: anchor, Spec: spec, Run: run}
	}
	proxy, tunnel, preview := []string{"proxyPort"}, []string{"openTunnel"}, []string{"createPreview"}
	all := []string{"proxyPort", "openTunnel", "createPreview"}
	return []Check{
		c("ports/proxy", proxy, anchorPortProxy,
			"GET/HEAD/POST .../ports/{port}/{path}: a file's exact bytes, a path with slashes and its query unchanged, a POST body, HEAD, and the server's own status (501) pass through",
			checkPortsProxy),
		c("ports/proxy-no-authorization", proxy, anchorPortProxy,
			"GET .../ports/{port}/{path}: the Authorization header does not reach the sandbox; X-Forwarded-Prefix names the proxy path",
			checkPortsNoAuthorization),
		c("ports/proxy-websocket", proxy, anchorPortProxy,
			"GET .../ports/{port}/{path} with a WebSocket upgrade: text and binary messages (one over 64 KiB) reach a WebSocket echo server in the sandbox and come back as sent",
			checkPortsProxyWebSocket),
		c("ports/unreachable-502", append(proxy, "openTunnel"), anchorPortDown,
			"proxyPort and openTunnel (before the upgrade) to a port nothing listens on: 502 JSON Error naming the port",
			checkPortsUnreachable),
		c("ports/bad-port-400", all, anchorPortBad,
			"proxyPort, openTunnel and createPreview with port 0 or 70000: 400 JSON Error",
			checkPortsBadPort),
		c("ports/unknown-sandbox-404", all, anchorPortProxy,
			"proxyPort, openTunnel and createPreview on an unknown sandbox: 404 JSON Error",
			checkPortsUnknownSandbox),
		c("ports/tunnel", tunnel, anchorPortTunnel,
			"GET .../tunnel/{port} (WebSocket): bytes sent as binary messages reach a TCP echo server and come back exact",
			checkPortsTunnel),
		c("ports/preview", preview, anchorPortPreview,
			"POST .../previews: url and expiresAt; the URL serves the port's files without a token; a tampered URL is 403",
			checkPortsPreview),
		{ID: "ports/preview-expires", Level: LevelExtension, Capability: api.ExtPorts, Parallel: true, Requirement: Must,
			Operations: preview, Extensions: []string{api.ExtPorts}, Anchor: anchorPortPreview, Slow: true,
			Spec: "POST .../previews with ttlSeconds 1: the URL is 403 once expiresAt has passed",
			Run:  checkPortsPreviewExpires},
		{ID: "ports/preview-ttl-400", Level: LevelExtension, Capability: api.ExtPorts, Parallel: true, Requirement: Must,
			Operations: preview, Extensions: []string{api.ExtPorts, api.ExtInfo}, Anchor: anchorMaxPreview,
			Spec: "POST .../previews: ttlSeconds above Info.limits.maxPreviewTtlSeconds is a 400 JSON Error naming ttlSeconds",
			Run:  checkPortsPreviewTTL},
	}
}

// portsFinding is a misbehaviour of the check's own subject seen in x.
func portsFinding(x *Exchange, observed, expected string, err error) error {
	return ownFinding(x, aspectNone, observed, expected, fmt.Errorf("%w\n%s", err, x))
}

// echoed is what the echo server answers.
type echoed struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Body    string            `json:"body"` // hex
	Headers map[string]string `json:"headers"`
}

// proxyEcho sends method to rest on the echo server through the proxy
// with authz and decodes its answer.
func proxyEcho(ctx context.Context, env *Env, method, id string, port int, rest string, body []byte, authz string) (echoed, *Exchange, error) {
	var e echoed
	x, err := env.rawHeader(ctx, method, portPath(id, port, rest), "application/octet-stream", body, authz)
	if err != nil {
		return e, x, err
	}
	if x.Status != http.StatusOK {
		return e, x, portsFinding(x, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "200 from the echo server",
			fmt.Errorf("%s %s through the proxy: status %d, want the echo server's 200", method, rest, x.Status))
	}
	if err := json.Unmarshal(x.Body, &e); err != nil {
		return e, x, portsFinding(x, bodyExcerpt(x), "the echo server's JSON",
			fmt.Errorf("%s %s through the proxy: the body is not the echo server's answer: %w", method, rest, err))
	}
	return e, x, nil
}

func checkPortsProxy(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-proxy")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "http")
	if err != nil {
		return err
	}
	var errs []error
	// A file, exact.
	x, err := env.proxy(ctx, http.MethodGet, id, port, "/"+portsFile, nil)
	if err != nil {
		return err
	}
	if x.Status != http.StatusOK || string(x.Body) != portsFileContent {
		errs = append(errs, portsFinding(x, fmt.Sprintf("status %d %q", x.Status, clip(string(x.Body), 60)), fmt.Sprintf("200 %q", portsFileContent),
			errors.New("GET of a file through the proxy did not answer its exact bytes")))
	}
	// HEAD: the length, no body.
	x, err = env.proxy(ctx, http.MethodHead, id, port, "/"+portsFile, nil)
	if err != nil {
		return err
	}
	if x.Status != http.StatusOK || len(x.Body) != 0 || x.Header.Get("Content-Length") != strconv.Itoa(len(portsFileContent)) {
		errs = append(errs, portsFinding(x, fmt.Sprintf("status %d, Content-Length %q, %d body bytes", x.Status, x.Header.Get("Content-Length"), len(x.Body)),
			fmt.Sprintf("200, Content-Length %d, no body", len(portsFileContent)), errors.New("HEAD of a file through the proxy")))
	}
	authz := ""
	if env.Token != "" {
		authz = "Bearer " + env.Token
	}
	// A path with slashes and escapes, and a query, unchanged.
	rest := "/echo/a/b%2Fc/d?x=1&y=a%2Fb&z"
	e, x, err := proxyEcho(ctx, env, http.MethodGet, id, port, rest, nil, authz)
	switch {
	case err != nil:
		errs = append(errs, err)
	case e.Path != rest:
		errs = append(errs, portsFinding(x, fmt.Sprintf("the server got %q", e.Path), fmt.Sprintf("%q", rest),
			errors.New("the path and query did not reach the server unchanged")))
	}
	// A POST body reaches the server.
	body := []byte("posted body\x00\xff")
	e, x, err = proxyEcho(ctx, env, http.MethodPost, id, port, "/echo/post", body, authz)
	switch {
	case err != nil:
		errs = append(errs, err)
	case e.Method != http.MethodPost || e.Body != hex.EncodeToString(body):
		errs = append(errs, portsFinding(x, fmt.Sprintf("the server got %s %s (hex)", e.Method, e.Body), fmt.Sprintf("POST %x", body),
			errors.New("a POST body did not reach the server exact")))
	}
	// The server's own status and body pass through.
	x, err = env.proxy(ctx, http.MethodPost, id, port, "/"+portsFile, []byte("x"))
	if err != nil {
		return err
	}
	if x.Status != http.StatusNotImplemented || !strings.Contains(string(x.Body), "Unsupported method") {
		errs = append(errs, portsFinding(x, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "the server's own 501 Unsupported method",
			errors.New("the sandbox server's 501 answer to a POST did not pass through unchanged")))
	}
	return errors.Join(errs...)
}

func checkPortsNoAuthorization(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-auth")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "http")
	if err != nil {
		return err
	}
	token := env.Token
	if token == "" {
		token = "nox-conformance-canary" // a backend without auth ignores it
	}
	e, x, err := proxyEcho(ctx, env, http.MethodGet, id, port, "/echo", nil, "Bearer "+token)
	if err != nil {
		return err
	}
	var errs []error
	if v, ok := e.Headers["authorization"]; ok {
		errs = append(errs, portsFinding(x, fmt.Sprintf("Authorization %q reached the sandbox", clip(v, 12)), "no Authorization header",
			errors.New("the proxy forwarded the Authorization header (the API token) to the sandbox")))
	}
	prefix := strings.TrimRight(env.basePath, "/") + portPath(id, port, "")
	if got := e.Headers["x-forwarded-prefix"]; got != prefix && got != portPath(id, port, "") {
		errs = append(errs, portsFinding(x, fmt.Sprintf("X-Forwarded-Prefix %q", got), fmt.Sprintf("%q", prefix),
			errors.New("the proxy did not send X-Forwarded-Prefix naming its path")))
	}
	return errors.Join(errs...)
}

func checkPortsUnreachable(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-down")
	if err != nil {
		return err
	}
	port, err := env.freePort(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	x, err := env.proxy(ctx, http.MethodGet, id, port, "/", nil)
	if err != nil {
		return err
	}
	if err := expectErrorNamingAny(x, http.StatusBadGateway, strconv.Itoa(port)); err != nil {
		errs = append(errs, err)
	}
	c, x, err := env.dialTunnel(ctx, id, port)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if c != nil {
		_ = c.CloseNow()
		errs = append(errs, portsFinding(x, "101 Switching Protocols", "502 before the upgrade",
			errors.New("a tunnel to a port nothing listens on was upgraded")))
	} else if err := expectErrorNamingAny(x, http.StatusBadGateway, strconv.Itoa(port)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkPortsBadPort(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-bad")
	if err != nil {
		return err
	}
	var errs []error
	for _, port := range []int{0, 70000} {
		x, err := env.proxy(ctx, http.MethodGet, id, port, "/", nil)
		if err != nil {
			return err
		}
		errs = append(errs, expectError(x, http.StatusBadRequest))
		c, x, err := env.dialTunnel(ctx, id, port)
		if err != nil {
			return err
		}
		if c != nil {
			_ = c.CloseNow()
		}
		errs = append(errs, expectError(x, http.StatusBadRequest))
		x, err = env.Raw(ctx, http.MethodPost, previewPath(id), "application/json", fmt.Appendf(nil, `{"port": %d}`, port), true)
		if err != nil {
			return err
		}
		errs = append(errs, expectErrorNamingAny(x, http.StatusBadRequest, "port"))
	}
	return errors.Join(errs...)
}

func checkPortsUnknownSandbox(ctx context.Context, env *Env) error {
	id := env.ID("ports-none")
	var errs []error
	x, err := env.proxy(ctx, http.MethodGet, id, 8000, "/", nil)
	if err != nil {
		return err
	}
	errs = append(errs, expectUnknown(x))
	c, x, err := env.dialTunnel(ctx, id, 8000)
	if err != nil {
		return err
	}
	if c != nil {
		_ = c.CloseNow()
	}
	errs = append(errs, expectUnknown(x))
	x, err = env.Raw(ctx, http.MethodPost, previewPath(id), "application/json", []byte(`{"port": 8000}`), true)
	if err != nil {
		return err
	}
	errs = append(errs, expectUnknown(x))
	return errors.Join(errs...)
}
