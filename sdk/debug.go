package sdk

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Debug output bounds: the most of a request and of an answer body shown.
const (
	debugRequestBody = 2 << 10
	debugAnswerBody  = 4 << 10
)

// WithDebug writes every request and answer to w, as curl -v does: the
// method and URL, the headers that matter (the bearer token masked), the
// status and time taken, and the bodies, truncated: JSON and text bodies
// up to a few KiB, event streams as they arrive, archives by size only.
// It is for finding out what a backend sends; nox --debug uses it.
func WithDebug(w io.Writer) Option {
	return func(c *Client) error {
		if w == nil {
			return fmt.Errorf("WithDebug: nil io.Writer")
		}
		c.debug = w
		return nil
	}
}

// debugTransport logs requests and answers; see WithDebug.
type debugTransport struct {
	next http.RoundTripper
	mu   *sync.Mutex
	w    io.Writer
}

// The headers debugTransport shows.
var (
	debugRequestHeaders = []string{"Content-Type", "Accept", "Authorization", "X-Request-Id"}
	debugAnswerHeaders  = []string{"Content-Type", "Content-Length", "X-Request-Id", "Retry-After", "X-Nox-Isolation", "Location"}
)

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s\n", req.Method, req.URL.Redacted())
	for _, h := range debugRequestHeaders {
		if v := req.Header.Get(h); v != "" {
			if h == "Authorization" {
				v, _, _ = strings.Cut(v, " ")
				v += " ***"
			}
			fmt.Fprintf(&b, "> %s: %s\n", h, v)
		}
	}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
	case req.ContentLength >= 0:
		fmt.Fprintf(&b, "> Content-Length: %d\n", req.ContentLength)
	default:
		b.WriteString("> Transfer-Encoding: chunked\n")
	}
	if req.GetBody != nil && isText(req.Header.Get("Content-Type")) {
		if body, err := req.GetBody(); err == nil {
			data, _ := io.ReadAll(io.LimitReader(body, debugRequestBody+1))
			body.Close()
			writeDebugBody(&b, ">", data, debugRequestBody)
		}
	}
	t.write(b.String())

	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	b.Reset()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(&b, "< %s %s: %v (%s)\n", req.Method, req.URL.Redacted(), err, took)
		t.write(b.String())
		return nil, err
	}
	fmt.Fprintf(&b, "< %s (%s)\n", resp.Status, took)
	for _, h := range debugAnswerHeaders {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(&b, "< %s: %s\n", h, v)
		}
	}
	if len(resp.TransferEncoding) > 0 {
		fmt.Fprintf(&b, "< Transfer-Encoding: %s\n", strings.Join(resp.TransferEncoding, ", "))
	}
	ct := resp.Header.Get("Content-Type")
	switch mt, _, _ := mime.ParseMediaType(ct); {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		// The body is the upgraded connection (a terminal's WebSocket):
		// it must stay as it is.
		b.WriteString("< (switched protocols: the connection's traffic is not shown)\n")
	case mt == "text/event-stream":
		b.WriteString("< (event stream, shown as it arrives)\n")
		resp.Body = &debugStream{ReadCloser: resp.Body, t: t}
	case isText(ct) || ct == "":
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, debugAnswerBody+1))
		writeDebugBody(&b, "<", data, debugAnswerBody)
		rest := resp.Body
		if rerr != nil {
			rest = io.NopCloser(&errReaderOnce{err: rerr})
			resp.Body.Close()
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), rest), resp.Body}
	default:
		fmt.Fprintf(&b, "< (%s body not shown)\n", ct)
	}
	t.write(b.String())
	return resp, nil
}

func (t *debugTransport) write(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = io.WriteString(t.w, s)
}

// isText reports whether a content type is JSON or text.
func isText(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return strings.Contains(mt, "json") || strings.HasPrefix(mt, "text/")
}

// writeDebugBody writes up to limit bytes of a body, one line per line.
func writeDebugBody(b *strings.Builder, prefix string, data []byte, limit int) {
	more := len(data) > limit
	if more {
		data = data[:limit]
	}
	for _, line := range strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(data, []byte("\uFFFD"))), "\n"), "\n") {
		if line == "" {
			fmt.Fprintln(b, prefix)
			continue
		}
		fmt.Fprintf(b, "%s %s\n", prefix, line)
	}
	if more {
		fmt.Fprintf(b, "%s ... (truncated at %d bytes)\n", prefix, limit)
	}
}

// debugStream shows an event stream as it is read.
type debugStream struct {
	io.ReadCloser
	t *debugTransport
}

func (d *debugStream) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	if n > 0 {
		var b strings.Builder
		writeDebugBody(&b, "<", p[:n], debugAnswerBody)
		d.t.write(b.String())
	}
	return n, err
}

// errReaderOnce returns err on every read.
type errReaderOnce struct{ err error }

func (e *errReaderOnce) Read([]byte) (int, error) { return 0, e.err }
