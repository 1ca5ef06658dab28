package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/noxrunner/nox/api"
)

// The set-up of the ports checks: a server started inside the sandbox
// with the processes extension, and the requests of the ports extension.

// portsServerScript is the Python program the ports checks run inside the
// sandbox. Mode ws is a WebSocket echo server (RFC 6455: each message
// comes back as it was sent, text or binary; a ping gets its pong). Mode http serves the directory it runs in
// (SimpleHTTPRequestHandler: GET and HEAD, with portsFile written first; other methods answer 501),
// except under /echo, where GET and POST answer the request as JSON
// (method, path with query, headers, body in hex); mode tcp echoes every byte of
// each connection. Either binds 127.0.0.1 on a port of the system's
// choosing and writes the port to its port file, by renaming it into place.
const portsServerScript = `import http.server, json, os, socket, sys, threading
mode, portfile = sys.argv[1], sys.argv[2]
def announce(port):
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
if mode == "tcp":
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    def serve(c):
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()
    announce(s.getsockname()[1])
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
if mode == "ws":
    import base64, hashlib, struct
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    def frame(op, data):
        n = len(data)
        if n < 126:
            return bytes([0x80 | op, n]) + data
        if n < 65536:
            return bytes([0x80 | op, 126]) + struct.pack(">H", n) + data
        return bytes([0x80 | op, 127]) + struct.pack(">Q", n) + data
    def serve(c):
        f = c.makefile("rb")
        f.readline()
        key = ""
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip().lower() == "sec-websocket-key":
                key = v.strip()
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
        while True:
            h = f.read(2)
            if len(h) < 2:
                break
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", f.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", f.read(8))[0]
            mask = f.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
            if op == 8:
                c.sendall(frame(8, data[:2]))
                break
            c.sendall(frame(10 if op == 9 else op, data))
        c.close()
    announce(s.getsockname()[1])
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
class H(http.server.SimpleHTTPRequestHandler):
    def echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).hex()
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
            "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        if self.path.startswith("/echo"):
            return self.echo()
        return super().do_GET()
    def do_POST(self):
        if self.path.startswith("/echo"):
            return self.echo()
        # Read the body first: closing with unread bytes resets the
        # connection, which could cut the answer.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_error(501, "Unsupported method ('POST')")
    def log_message(self, *a):
        pass
os.makedirs("sub/dir", exist_ok=True)
with open("sub/dir/data.bin", "wb") as f:
    f.write(b"ports-check\x00\xff\xfe binary\n")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
announce(srv.server_address[1])
srv.serve_forever()
`

// portsFile is the file the http server serves in the ports checks, and
// its content: text and bytes that are not UTF-8.
const (
	portsFile        = "sub/dir/data.bin"
	portsFileContent = "ports-check\x00\xff\xfe binary\n"
)

// portsDir is where the ports checks put the server's files in the
// sandbox.
const portsDir = "/tmp/nox-ports"

// portServer starts the server of portsServerScript in mode (http or
// tcp) in sandbox id and returns the port it listens on. It skips the
// check when the backend cannot start one (no processes extension, no
// python3).
func (e *Env) portServer(ctx context.Context, id, mode string) (int, error) {
	if !e.Has(api.ExtProcesses) {
		return 0, Skip("starting a server inside the sandbox needs the processes extension, which the backend does not advertise")
	}
	if err := e.needPython(ctx, id, "to run a server with"); err != nil {
		return 0, err
	}
	dir := portsDir + "-" + mode
	setup := fmt.Sprintf("mkdir -p %[1]s && cat > %[1]s/server.py <<'NOXEOF'\n%[2]sNOXEOF\n", dir, portsServerScript)
	if _, err := e.Sh(ctx, id, setup); err != nil {
		return 0, err
	}
	req := procCmd("python3", "server.py", mode, dir+"/port")
	req.Workdir = &dir
	if _, _, err := e.startProcOK(ctx, id, req); err != nil {
		return 0, err
	}
	out, err := e.awaitFile(ctx, id, dir+"/port", procWait)
	if err != nil {
		return 0, fmt.Errorf("the %s server in the sandbox did not start: %w: %w", mode, ErrSuite, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("the %s server wrote port %q: %w: %w", mode, out, ErrSuite, err)
	}
	return port, nil
}

// portPath is the proxy path of port in sandbox id, then rest (which
// starts with "/" and may hold a query).
func portPath(id string, port int, rest string) string {
	return "/v1/sandboxes/" + url.PathEscape(id) + "/ports/" + strconv.Itoa(port) + rest
}

// tunnelPath is the tunnel path of port in sandbox id.
func tunnelPath(id string, port int) string {
	return "/v1/sandboxes/" + url.PathEscape(id) + "/tunnel/" + strconv.Itoa(port)
}

// proxy sends method to rest on port in sandbox id through the proxy,
// with the token.
func (e *Env) proxy(ctx context.Context, method, id string, port int, rest string, body []byte) (*Exchange, error) {
	return e.Raw(ctx, method, portPath(id, port, rest), "", body, true)
}

// getURL sends a GET to the absolute URL u without a token (a browser
// opening a preview URL) and returns the exchange.
func (e *Env) getURL(ctx context.Context, u string) (*Exchange, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request GET %s: %w: %w", u, ErrSuite, err)
	}
	resp, err := (&recordingDoer{env: e}).Do(req)
	return e.do(ctx, "GET "+u, resp, err)
}

// dialTunnel opens the tunnel to port in sandbox id. The handshake's
// answer is recorded and validated like every other; a refused handshake
// returns the exchange and a nil connection, for the caller to judge.
func (e *Env) dialTunnel(ctx context.Context, id string, port int) (*websocket.Conn, *Exchange, error) {
	return e.dialWebSocket(ctx, tunnelPath(id, port), "open a tunnel to port "+strconv.Itoa(port))
}

// dialWebSocket opens a WebSocket to path of the backend (with the
// token), recording the exchange; what names the request in errors. A
// refused upgrade is a nil connection with the answer in the exchange.
func (e *Env) dialWebSocket(ctx context.Context, path, what string) (*websocket.Conn, *Exchange, error) {
	u := strings.TrimRight(e.BaseURL, "/") + path
	h := http.Header{}
	if e.Token != "" {
		h.Set("Authorization", "Bearer "+e.Token)
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.cfg.HTTPClient, HTTPHeader: h})
	x := &Exchange{Method: http.MethodGet, URL: strings.TrimRight(e.basePath, "/") + path, ReqHeader: h.Clone()}
	x.ReqHeader.Set("Upgrade", "websocket")
	if resp == nil {
		x.Err = err
		e.record(nil, x)
		return nil, x, transportError(ctx, what, err)
	}
	x.Status, x.Header = resp.StatusCode, resp.Header.Clone()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		x.Body = body
	}
	if req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, u, nil); rerr == nil {
		x.op, x.complaints = e.run.contract.validateResponse(ctx, req, e.basePath, x.Status, x.Header, body)
		x.Operation = x.op.id
	}
	e.record(nil, x)
	if err != nil {
		return nil, x, nil
	}
	return c, x, nil
}

// freePort finds a port on which nothing listens in sandbox id: one the
// system hands out to a socket bound to port 0, closed at once. Without
// python3 it falls back to port 1, which nothing listens on in a sandbox
// whose commands run unprivileged.
func (e *Env) freePort(ctx context.Context, id string) (int, error) {
	out, err := e.Sh(ctx, id, `command -v python3 >/dev/null && python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' || echo 1`)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("free port %q: %w: %w", out, ErrSuite, err)
	}
	return p, nil
}

// errNoUpgrade is a tunnel handshake refused where it should succeed.
var errNoUpgrade = errors.New("the tunnel's WebSocket handshake was refused")

// waitUntil sleeps until t (and a little after), or until ctx ends.
func waitUntil(ctx context.Context, t time.Time) error {
	return sleep(ctx, time.Until(t)+250*time.Millisecond)
}
