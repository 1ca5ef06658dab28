package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// IsolationHeader is set to "none-unsafe" on every response when the
// backend runs commands without isolation.
const IsolationHeader = "X-Nox-Isolation"

// The defaults of the zero fields of Options.
const (
	DefaultMaxUploadBytes   = 1 << 30 // 1 GiB
	DefaultMaxJSONBodyBytes = 1 << 20 // 1 MiB
	DefaultStreamHeartbeat  = 5 * time.Second
	DefaultStallTimeout     = 30 * time.Second
)

// Options configure the HTTP layer. The zero value works: zero fields take
// the documented defaults.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every request except GET /healthz, and auth.bearer is advertised.
	// Without one, requests from web pages of other origins and requests
	// addressed to DNS names other than localhost are refused with 403
	// (cross-site requests and DNS rebinding): programs address the
	// server by IP address or localhost.
	Token string
	// MaxUploadBytes is the largest upload request body; larger uploads
	// are answered 413. Default: DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// MaxJSONBodyBytes is the largest JSON request body; larger bodies are
	// answered 400 (the contract declares no 413 for JSON operations).
	// Default: DefaultMaxJSONBodyBytes.
	MaxJSONBodyBytes int64
	// StreamHeartbeat is the longest silence on an exec stream before a
	// heartbeat comment is sent. Default: DefaultStreamHeartbeat.
	StreamHeartbeat time.Duration
	// Logger receives one access log line per request and the errors
	// answered as 500. Default: slog.Default().
	Logger *slog.Logger
	// StallTimeout is the longest a client may leave a response unread
	// (each write gets this long) or an upload body unsent (each read);
	// then its connection is cut and what the request held is released.
	// A response that makes progress may last any time. Default:
	// DefaultStallTimeout; negative disables it.
	StallTimeout time.Duration
	// PreviewKey is the HMAC-SHA256 key that signs the preview URLs of the
	// ports extension. Empty: New draws 32 random bytes, so the URLs stop
	// working when the server restarts; set a stable secret to keep them
	// working across restarts (and on every replica behind one address).
	PreviewKey []byte
	// PortDomain, when set, turns on host-based routing of the ports
	// extension: {port}-{sessionId}.{PortDomain} reaches that port of that
	// sandbox at "/", and preview URLs use such hosts (see Info.portDomain
	// in the contract). The names must resolve to this server (a wildcard
	// DNS record); a lower-case DNS name.
	PortDomain string
}

// withDefaults returns o with its zero fields set to the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.MaxUploadBytes < 0 || o.MaxJSONBodyBytes < 0 || o.StreamHeartbeat < 0 {
		return o, errors.New("server: MaxUploadBytes, MaxJSONBodyBytes and StreamHeartbeat must not be negative")
	}
	if o.MaxUploadBytes == 0 {
		o.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if o.MaxJSONBodyBytes == 0 {
		o.MaxJSONBodyBytes = DefaultMaxJSONBodyBytes
	}
	if o.StreamHeartbeat == 0 {
		o.StreamHeartbeat = DefaultStreamHeartbeat
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.StallTimeout > 0 && o.StallTimeout <= o.StreamHeartbeat {
		return o, errors.New("server: StallTimeout must exceed StreamHeartbeat (an idle exec stream writes only heartbeats)")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.PortDomain = strings.TrimSuffix(strings.ToLower(o.PortDomain), ".")
	if o.PortDomain != "" && !validDomain(o.PortDomain) {
		return o, fmt.Errorf("server: PortDomain %q is not a DNS name", o.PortDomain)
	}
	return o, nil
}

// handlers implements the contract's operations on a driver.Backend.
type handlers struct {
	b    driver.Backend
	opts Options
	log  *slog.Logger
	// info is b.Info(), read once; body is the answer of GET /v1/info.
	info driver.Info
	body noxapi.Info
	// execFlags: the backend reports exec.flags, so exec results carry
	// timedOut, stdoutTruncated, stderrTruncated and oomKilled.
	execFlags bool
	// files and watcher are b as driver.Files and driver.Watcher, nil
	// unless b implements them and lists files.ops and files.watch in its
	// Info (the extensions are then neither advertised nor served).
	files   driver.Files
	watcher driver.Watcher
	// procs is b as driver.Processes, nil unless b implements it and
	// lists processes in its Info (the extension, and processes.terminal
	// which the server implements over it, are then neither advertised
	// nor served).
	procs driver.Processes
	// execStdin: the backend lists exec.stdin, so exec requests' stdin
	// is decoded and passed on; otherwise it is ignored (v1).
	execStdin bool
	// ports is b as driver.Ports, nil unless b implements it and lists
	// ports in its Info; portProxy is the proxy built on it, and
	// previewKey signs preview URLs.
	ports      driver.Ports
	portProxy  *httputil.ReverseProxy
	previewKey []byte
	// canGet: the backend lists sandboxes.get (createPreview checks that
	// the sandbox exists).
	canGet bool
	// network is b as driver.Network, nil unless b implements it and
	// lists network.egress in its Info (the extension is then neither
	// advertised nor served, and create ignores a policy of mode none).
	network driver.Network
	// metrics are the server's metrics (extension metrics).
	metrics *metrics
}

// A new operation in the contract breaks the build until it is handled.
var _ noxapi.StrictServerInterface = (*handlers)(nil)

// New returns the complete NoxRunner HTTP API served by b: GET /healthz and
// every /v1/ operation of the contract, behind the request validator, body
// limits, bearer-token auth (when opts.Token is set), request ids and
// access logs. It calls b.Info once.
func New(b driver.Backend, opts Options) (http.Handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	info := b.Info()
	h := &handlers{
		b: b, opts: opts, log: opts.Logger, info: info,
		execFlags: slices.Contains(info.Extensions, api.ExtExecFlags),
		execStdin: slices.Contains(info.Extensions, api.ExtExecStdin),
		metrics:   newMetrics(b, opts.Logger),
	}
	if slices.Contains(info.Extensions, api.ExtFilesOps) {
		h.files, _ = b.(driver.Files)
	}
	if slices.Contains(info.Extensions, api.ExtFilesWatch) {
		h.watcher, _ = b.(driver.Watcher)
	}
	if slices.Contains(info.Extensions, api.ExtProcesses) {
		h.procs, _ = b.(driver.Processes)
	}
	if slices.Contains(info.Extensions, api.ExtPorts) {
		h.ports, _ = b.(driver.Ports)
	}
	if slices.Contains(info.Extensions, api.ExtNetworkEgress) {
		h.network, _ = b.(driver.Network)
	}
	if h.ports != nil {
		h.canGet = slices.Contains(info.Extensions, api.ExtSandboxesGet)
		h.portProxy = newPortProxy(h.ports, h)
		if h.previewKey, err = previewKey(opts.PreviewKey); err != nil {
			return nil, err
		}
	}
	h.body = infoBody(info, opts, serves{files: h.files != nil, watch: h.watcher != nil, procs: h.procs != nil, ports: h.ports != nil, network: h.network != nil})
	strict := noxapi.NewStrictHandlerWithOptions(h, []noxapi.StrictMiddlewareFunc{withHTTPRequest}, noxapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSONError(w, http.StatusBadRequest, requestErrorMessage(err), 0)
		},
		ResponseErrorHandlerFunc: h.responseError,
	})
	mux := http.NewServeMux()
	var next http.Handler = noxapi.HandlerWithOptions(strict, noxapi.StdHTTPServerOptions{
		BaseRouter: mux,
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSONError(w, http.StatusBadRequest, paramErrorMessage(err), 0)
		},
	})
	validate, err := newValidator(context.Background())
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	next = lenientJSON(validate(next))
	next = withoutExtensions(next, absent{
		get:     !slices.Contains(info.Extensions, api.ExtSandboxesGet),
		list:    !slices.Contains(info.Extensions, api.ExtSandboxesList),
		files:   h.files == nil,
		watch:   h.watcher == nil,
		procs:   h.procs == nil,
		ports:   h.ports == nil,
		network: h.network == nil,
	})
	next = limitBodies(next, bodyLimits{json: opts.MaxJSONBodyBytes, exec: execBodyLimit(opts.MaxJSONBodyBytes, info.Limits.MaxStdinBytes, h.execStdin), upload: opts.MaxUploadBytes})
	if h.ports != nil {
		// Proxied bodies are streams of any size, as in the sandbox.
		next = h.servePorts(next)
	}
	next = h.metrics.serve(next)
	if opts.Token != "" {
		next = requireToken(next, opts.Token)
	} else {
		next = guardBrowsers(next)
	}
	if h.ports != nil {
		// Preview URLs carry their own authorization and are for browsers.
		next = h.servePreviews(next)
		if opts.PortDomain != "" {
			next = h.servePortHosts(next)
		}
	}
	if info.Isolation != nil && !info.Isolation.Isolated {
		next = markUnisolated(next)
	}
	next = recoverPanics(next, opts.Logger)
	return stallDeadlines(logRequests(next, opts.Logger, h.metrics), opts.StallTimeout), nil
}

// previewKey returns a copy of key, or 32 random bytes when it is empty.
func previewKey(key []byte) ([]byte, error) {
	if len(key) > 0 {
		return slices.Clone(key), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("server: preview key: %w", err)
	}
	return k, nil
}

// responseError handles an error writing a response.
func (h *handlers) responseError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if ctx.Err() != nil {
		return // the client went away mid-stream
	}
	if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
		// Headers are sent: break the connection so that the client sees
		// a truncated body (e.g. a download) as an error.
		h.log.WarnContext(ctx, "response failed mid-body", "requestId", requestIDFrom(ctx), "err", err)
		panic(http.ErrAbortHandler)
	}
	h.log.ErrorContext(ctx, "response failed", "requestId", requestIDFrom(ctx), "err", err)
	writeJSONError(w, http.StatusInternalServerError, "internal error", 0)
}

// execBodyLimit is the largest exec request body: the JSON limit, plus
// room for the largest stdin (escaped, up to 6 bytes a byte) when the
// backend takes one.
func execBodyLimit(maxJSON, maxStdin int64, withStdin bool) int64 {
	if !withStdin || maxStdin <= 0 {
		return maxJSON
	}
	return maxJSON + 6*maxStdin
}
