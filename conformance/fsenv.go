package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/sse"
)

// fsReq is one request of the files extensions, sent raw so that headers
// and bodies are exactly as the check wants them.
type fsReq struct {
	method string
	// op is the last element of the endpoint: file, stat, list, mkdir,
	// remove, move or watch.
	op    string
	id    string
	query url.Values
	// header is added to the request.
	header http.Header
	// body is sent whole, with Content-Length (nil: no body).
	body []byte
	// stream, when set, is sent instead of body, size bytes declared
	// (-1: chunked, no Content-Length); the suite does not keep it.
	stream io.Reader
	size   int64
	// streamResponse hands a successful answer back unread (see
	// withStreamedResponse); the caller reads and closes resp.Body.
	streamResponse bool
}

// fsURL is the URL of r's endpoint with its query.
func (e *Env) fsURL(r fsReq) string {
	u := strings.TrimRight(e.BaseURL, "/") + "/v1/sandboxes/" + url.PathEscape(r.id) + "/fs/" + r.op
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	return u
}

// fsSend sends r and returns its exchange, and the response when r asks
// for it unread (nil otherwise). A 503 is retried like Env.send when the
// body can be sent again.
func (e *Env) fsSend(ctx context.Context, r fsReq) (*Exchange, *http.Response, error) {
	what := r.method + " fs/" + r.op + " " + r.query.Get("path")
	for attempt := 0; ; attempt++ {
		rctx := ctx
		if r.streamResponse {
			rctx = withStreamedResponse(rctx)
		}
		if r.stream != nil {
			rctx = withStreamedRequest(rctx)
		}
		var body io.Reader = http.NoBody
		switch {
		case r.stream != nil:
			body = r.stream
		case r.body != nil:
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(rctx, r.method, e.fsURL(r), body)
		if err != nil {
			return nil, nil, fmt.Errorf("build request %s: %w: %w", what, ErrSuite, err)
		}
		if r.stream != nil {
			req.ContentLength, req.GetBody = r.size, nil
			if r.size < 0 {
				req.ContentLength = -1
			}
		}
		for k, vs := range r.header {
			req.Header[k] = vs
		}
		if e.Token != "" {
			req.Header.Set("Authorization", "Bearer "+e.Token)
		}
		resp, err := (&recordingDoer{env: e}).Do(req)
		if err != nil {
			return nil, nil, transportError(ctx, what, err)
		}
		x := e.exchange(resp)
		unread := r.streamResponse && success(resp.StatusCode)
		if !unread {
			resp.Body.Close()
		}
		if x.Status != http.StatusServiceUnavailable || r.stream != nil || attempt == maxRetries {
			if unread {
				return x, resp, nil
			}
			return x, nil, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return x, nil, err
		}
	}
}

// fsDo sends r and returns its exchange (body read).
func (e *Env) fsDo(ctx context.Context, r fsReq) (*Exchange, error) {
	r.streamResponse = false
	x, _, err := e.fsSend(ctx, r)
	return x, err
}

// pathQuery is the query naming p.
func pathQuery(p string, kv ...string) url.Values {
	q := url.Values{"path": {p}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// readFile gets p of sandbox id with the extra header (may be nil).
func (e *Env) readFile(ctx context.Context, id, p string, header http.Header) (*Exchange, error) {
	return e.fsDo(ctx, fsReq{method: http.MethodGet, op: "file", id: id, query: pathQuery(p), header: header})
}

// writeFile puts content at p of sandbox id; kv are extra query
// parameters (parents, mode).
func (e *Env) writeFile(ctx context.Context, id, p string, content []byte, header http.Header, kv ...string) (*Exchange, error) {
	if content == nil {
		content = []byte{}
	}
	if header == nil {
		header = http.Header{}
	}
	if header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/octet-stream")
	}
	return e.fsDo(ctx, fsReq{method: http.MethodPut, op: "file", id: id, query: pathQuery(p, kv...), header: header, body: content})
}

// fsJSON posts body as JSON to the operation op (mkdir, remove, move).
func (e *Env) fsJSON(ctx context.Context, id, op string, body any) (*Exchange, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSuite, err)
	}
	return e.fsDo(ctx, fsReq{method: http.MethodPost, op: op, id: id, body: b,
		header: http.Header{"Content-Type": {"application/json"}}})
}

// fsGet gets op (stat, list) with query q.
func (e *Env) fsGet(ctx context.Context, id, op string, q url.Values) (*Exchange, error) {
	return e.fsDo(ctx, fsReq{method: http.MethodGet, op: op, id: id, query: q})
}

// fsInfo is a FileInfo read leniently (the validator judges its form).
type fsInfo struct {
	Path       string `json:"path"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Size       int64  `json:"size"`
	Mode       string `json:"mode"`
	LinkTarget string `json:"linkTarget"`
	Etag       string `json:"etag"`
}

// fsListPage is a FileList read leniently.
type fsListPage struct {
	Entries       []fsInfo `json:"entries"`
	NextPageToken *string  `json:"nextPageToken"`
}

// decodeInfo reads x's body as a FileInfo.
func decodeInfo(x *Exchange) (fsInfo, error) {
	var fi fsInfo
	if err := json.Unmarshal(x.Body, &fi); err != nil {
		return fi, ownFinding(x, aspectBody, bodyExcerpt(x), "a JSON FileInfo", fmt.Errorf("body is not a JSON FileInfo: %w\n%s", err, x))
	}
	return fi, nil
}

// writeOK writes content to p as a set-up step: any success will do.
func (e *Env) writeOK(ctx context.Context, id, p string, content []byte, kv ...string) (*Exchange, error) {
	x, err := e.writeFile(ctx, id, p, content, nil, kv...)
	if err != nil {
		return x, err
	}
	if err := expectSuccess(x); err != nil {
		return x, fmt.Errorf("write %s: %w", p, err)
	}
	return x, nil
}

// timedEvent is an event of a watch stream with the time it arrived.
type timedEvent struct {
	SSEEvent
	at time.Time
}

// watchStream is an open files.watch event stream, read as it comes.
type watchStream struct {
	env    *Env
	x      *Exchange
	body   io.Closer
	events chan timedEvent
	// err is the reason the stream ended; read only once ended.
	err error
	// ended is set by the check's goroutine when it finds events closed.
	ended bool
}

// openWatch opens a watch of p in sandbox id. A refused watch returns the
// exchange and a nil stream; the caller judges its status.
func (e *Env) openWatch(ctx context.Context, id, p string, recursive bool) (*watchStream, *Exchange, error) {
	q := pathQuery(p)
	if recursive {
		q.Set("recursive", "true")
	}
	x, resp, err := e.fsSend(ctx, fsReq{method: http.MethodGet, op: "watch", id: id, query: q, streamResponse: true,
		header: http.Header{"Accept": {"text/event-stream"}}})
	if err != nil || resp == nil {
		return nil, x, err
	}
	w := &watchStream{env: e, x: x, body: resp.Body, events: make(chan timedEvent, 256)}
	go func() {
		defer close(w.events)
		r := sse.NewReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					w.err = err
				}
				return
			}
			w.events <- timedEvent{SSEEvent{Event: ev.Type, Data: string(ev.Data)}, time.Now()}
		}
	}()
	return w, x, nil
}

// shown returns a copy of the stream's exchange as read so far, for
// messages and findings made while the stream is still being read.
func (w *watchStream) shown() *Exchange {
	w.env.mu.Lock()
	defer w.env.mu.Unlock()
	x := w.x
	return &Exchange{Method: x.Method, URL: x.URL, ReqHeader: x.ReqHeader, Status: x.Status, Header: x.Header,
		Body: bytes.Clone(x.Body), Operation: x.Operation, op: x.op}
}

// next returns the next event, or false when none came within d or the
// stream ended.
func (w *watchStream) next(ctx context.Context, d time.Duration) (timedEvent, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-w.events:
		if !ok {
			w.ended = true
		}
		return ev, ok
	case <-t.C:
		return timedEvent{}, false
	case <-ctx.Done():
		return timedEvent{}, false
	}
}

// close ends the stream.
func (w *watchStream) close() {
	_ = w.body.Close()
	for range w.events { //nolint:revive // drain so the reader ends
	}
}

// change is the FileEvent of a change event.
type change struct {
	Type    string `json:"type"`
	Path    string `json:"path"`
	OldPath string `json:"oldPath"`
	IsDir   bool   `json:"isDir"`
}

// waitChange reads events until one matches ok, within d. It returns the
// match (with its arrival time), every change seen on the way, and an
// error describing what came instead when none matched.
func (w *watchStream) waitChange(ctx context.Context, d time.Duration, ok func(change) bool) (change, time.Time, []change, error) {
	deadline := time.Now().Add(d)
	var seen []change
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ev, more := w.next(ctx, left)
		if !more {
			break
		}
		switch ev.Event {
		case "change":
			var c change
			if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
				return change{}, ev.at, seen, fmt.Errorf("change event data %q is not a JSON FileEvent: %w", ev.Data, err)
			}
			seen = append(seen, c)
			if ok(c) {
				return c, ev.at, seen, nil
			}
		case "error":
			return change{}, ev.at, seen, fmt.Errorf("the watch ended with an error event: %s", ev.Data)
		}
	}
	if w.ended && w.err != nil {
		return change{}, time.Time{}, seen, fmt.Errorf("read the event stream: %w", w.err)
	}
	if w.ended {
		return change{}, time.Time{}, seen, fmt.Errorf("the event stream ended (changes seen: %s)", showChanges(seen))
	}
	return change{}, time.Time{}, seen, fmt.Errorf("no matching event within %s (changes seen: %s)", d, showChanges(seen))
}

// showChanges lists changes as "create /a, write /a".
func showChanges(cs []change) string {
	if len(cs) == 0 {
		return "none"
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.Type + " " + c.Path
		if c.OldPath != "" {
			s[i] += " (from " + c.OldPath + ")"
		}
	}
	return strings.Join(s, ", ")
}

// names reports whether the error message of x names p (as given, or its
// absolute form below /workspace).
func namesPath(x *Exchange, p string) bool {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(x.Body, &body)
	abs := p
	if !strings.HasPrefix(p, "/") {
		abs = path.Join("/workspace", p)
	}
	return strings.Contains(body.Error, p) || strings.Contains(body.Error, abs)
}

// expectFSError checks x is a JSON Error with one of codes naming p.
func expectFSError(x *Exchange, p string, codes ...int) error {
	if err := expectError(x, codes...); err != nil {
		return err
	}
	if !namesPath(x, p) {
		return ownFinding(x, aspectBody, bodyExcerpt(x), fmt.Sprintf("an error message naming %q", p),
			fmt.Errorf("the error message does not name the path %q\n%s", p, x))
	}
	return nil
}
