// Package server turns any driver.Backend into the complete NoxRunner HTTP
// API of api/openapi.yaml, so that every backend behaves the same on the
// wire and none of them repeats the work.
//
// # The request path
//
// A request passes, outermost first:
//
//  1. logRequests: assigns the request id (a sane X-Request-Id is echoed,
//     anything else replaced), writes one access log line and counts the
//     request in the metrics by operationId (metrics_routes.go: a table
//     read from the contract once) and status code.
//  2. recoverPanics: a panic in anything below is answered 500 "internal
//     error (request id X)" and logged as one line (the stack only at
//     debug level); after the response began it cuts the connection. An
//     exec stream's command goroutine recovers likewise into an error
//     event.
//  3. markUnisolated: X-Nox-Isolation: none-unsafe on every response when
//     the backend's Info says commands run without isolation.
//  4. requireToken: with Options.Token, 401 unless "Authorization: Bearer
//     <token>" (GET /healthz is always open; attachTerminal also takes
//     ?access_token=, as browsers cannot set headers on a WebSocket).
//     Just inside it, GET /metrics is answered from the server's own
//     Prometheus registry (metrics.go), always in the text format.
//  5. limitBodies: JSON bodies above Options.MaxJSONBodyBytes are 400
//     (exec bodies get room for maxStdinBytes with exec.stdin), uploads
//     and writeFile bodies above Options.MaxUploadBytes 413; a process's
//     stdin is a stream and is not limited.
//  6. withoutExtensions: GET /v1/sandboxes[/{sessionId}] are 404 "no such
//     endpoint" when the backend does not report sandboxes.list or
//     sandboxes.get, and /v1/sandboxes/{sessionId}/fs/... and
//     .../processes... when it does not implement and list files.ops
//     (driver.Files), files.watch (driver.Watcher) or processes
//     (driver.Processes), the ports paths without ports (driver.Ports)
//     and .../network without network.egress (driver.Network), as on a
//     server without them.
//  7. the request validator, built from the contract (internal/contract):
//     unknown endpoints 404, other methods 405, malformed parameters and
//     JSON bodies 400 with a message naming the field. Upload, writeFile
//     and stdin bodies are not read; HEAD is validated as GET.
//  8. the generated router and strict handler (gen/noxapi), which decode
//     the request and call the handler of its operation.
//  9. the handler (handlers.go) checks what the contract cannot (the
//     session id, argv, env, workdir, ttlSeconds and timeoutSeconds
//     against Info().Limits, the resource quantities and image against
//     Info()), applies the defaults (workdir /workspace, Limits'
//     DefaultTimeout and default quantities), calls the backend with a
//     driver request, and converts its answer to the contract's type.
//
// A backend error is answered by its category (see package driver):
// ErrInvalidArgument 400, ErrNotFound 404, ErrConflict 409,
// ErrPreconditionFailed 412, ErrTooLarge 413, ErrInsufficientStorage 507 (the
// sandbox's storage is full),
// ErrBusy and ErrUnavailable 503 with Retry-After: 1, each as {"error": msg} with the
// error's message minus the sentinel's text. Any other error is logged and
// answered 500 "internal error (request id X)".
//
// POST .../exec/stream answers errors of StartExec as JSON; once the
// command is admitted it writes Server-Sent Events: stdout and stderr
// chunks as output arrives, a heartbeat comment after
// Options.StreamHeartbeat of silence, then one exit (or error) event. A
// client that goes away cancels the command.
//
// The files operations (files.go) resolve every path field in one place
// (resolvePath: relative to /workspace, cleaned, NUL and ".." above /
// refused naming the field). readFile answers through http.ServeContent
// (ranges, 304, If-Range, HEAD; its 416 as JSON), which needs the
// request: the strict middleware withHTTPRequest puts it in the context.
// writeFile streams the body to the backend (If-Match, If-None-Match: *,
// 201 or 200 with the ETag). listDir's page token is the last path of
// the previous page, base64url. watchPath (watch.go) writes ready, then
// change and overflow events, heartbeats after Options.StreamHeartbeat of
// silence, and an error event when the watch ends on a failure; the
// client going away closes the backend's watch.
//
// The processes extension (processes.go and its siblings) checks the ids
// and a start's fields (as exec's, but timeoutSeconds 0 means none, pty
// sizes 1 to 1000, tag), then calls driver.Processes. waitProcess waits
// while answering, with the write deadline lifted, at most
// Limits.MaxProcessWait (60 s when zero), and answers the record as it is
// then. streamProcessOutput (processoutput.go) writes output events whose
// id is the offset after the chunk (Last-Event-ID resumes there),
// truncated when output was dropped, heartbeats, and exit, end
// (follow=false) or error. writeProcessStdin streams the body to the
// process, each read under the stall timeout. attachTerminal
// (terminal.go, termsession.go) is processes.terminal, implemented here
// over driver.Process: a WebSocket carrying output and stdin as binary
// messages and JSON control messages as text, with pings every
// Options.StreamHeartbeat and each write bounded by the stall timeout. A
// client going away never affects a process (but hangup=true sends
// SIGHUP when a terminal closes). exec.stdin (requests.go) decodes an
// exec request's stdin when the backend lists it.
//
// The ports extension (ports.go, portproxy.go, tunnel.go, preview.go) is
// built here over driver.Ports.DialPort, for every backend that has it.
// proxyPort (/v1/sandboxes/{sessionId}/ports/{port}/{path...}, any method)
// and openTunnel are routed before the generated router and the request
// validator (which would refuse a multi-segment path), behind auth and the
// browser guard, and without the JSON body limit. The proxy is an
// httputil.ReverseProxy with one dialed connection per request: path
// "/"+path, the query without access_token, Host 127.0.0.1:port, no
// Authorization, X-Forwarded-For/-Host/-Proto/-Prefix, responses flushed
// as they arrive (each write extends the stall deadline) and WebSocket
// upgrades spliced. openTunnel dials before the upgrade (404 and 502 as
// JSON), then splices the TCP connection to binary WebSocket messages; it
// takes ?access_token= like attachTerminal. createPreview signs
// base64url(JSON {s: sessionId, p: port, e: expiry}) with HMAC-SHA256
// under Options.PreviewKey (random per server when empty: the URLs then
// die with the server) and answers scheme://host/preview/<token>/ from
// the request (X-Forwarded-Proto and -Host when set). GET (any method)
// /preview/<token>/{path...} is served outside /v1 before auth and the
// browser guard, since browsers use it: a token whose signature does not
// verify (constant time) or that expired is 403; a valid one is proxied
// like proxyPort with X-Forwarded-Prefix /preview/<token>.
//
// The network.egress extension (network.go) is served over
// driver.Network when the backend implements it and lists the extension.
// A policy, on create (field network, names prefixed "network.") or
// setNetwork, is normalised (absent egress: none; absent lists: empty),
// then checked against Limits.EgressModes (400 naming egress, listing the
// permitted modes), against Limits.MaxEgressRules (allow and deny
// together; 400 naming allow) and by internal/egress.Validate (the
// syntax of each entry, 400 naming it, allow[2]) before the backend sees
// it. getNetwork answers Get's Sandbox.Network (none when nil). On a
// backend without the extension the paths are 404 and a create's network
// of mode none is ignored; any other mode is a 400 naming network.egress.
//
// GET /v1/info is built once from the backend's Info, the extensions the
// server implements for every backend (info, exec.stream, upload.chunked,
// and auth.bearer with a token), files.ops, files.watch, processes
// (with processes.terminal), ports and network.egress when served, and
// its own limits (maxUploadBytes, streamHeartbeatSeconds,
// maxProcessWaitSeconds) beside the backend's (maxListPageSize, the
// watch, process and egress limits with their extension, maxStdinBytes
// with exec.stdin).
//
// # Serving a new backend
//
// Implement driver.Backend, then:
//
//	h, err := server.New(myBackend, server.Options{Token: token})
//	if err != nil {
//		return err
//	}
//	return http.ListenAndServe(addr, h)
//
// A new operation in the contract is a new method of handlers (the build
// fails until it exists: handlers must satisfy
// noxapi.StrictServerInterface) and usually a new driver method, which
// every backend must then implement.
package server
