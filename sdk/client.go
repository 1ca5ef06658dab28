package sdk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// Version is the SDK's version, sent in the default User-Agent.
const Version = "0.1.0"

// DefaultUserAgent is the User-Agent header sent unless WithUserAgent is used.
const DefaultUserAgent = "nox-sdk-go/" + Version

// Client talks to one NoxRunner backend. It is safe for concurrent use.
// Create it with New.
type Client struct {
	baseURL    string
	gen        *noxapi.Client
	httpClient *http.Client
	transport  http.RoundTripper
	token      string
	userAgent  string
	timeout    time.Duration
	retry      RetryPolicy

	debug io.Writer // WithDebug

	infoMu sync.Mutex
	info   *Info // cached by Supports; plainV1 when the backend has no /v1/info
}

// An Option configures a Client in New.
type Option func(*Client) error

// RetryPolicy says how a Client retries failed calls. Calls are retried on
// connection errors and on 502, 503 and 504 answers, with exponential backoff
// and full jitter; a Retry-After header sets the delay instead (when it
// would outlast the context's deadline, the call ends at once with the
// answer's error). Only
// idempotent operations (health, info, create, touch, get, list, delete,
// download) are retried unless RetryNonIdempotent is set, and a request whose
// body cannot be replayed is never retried. The zero value of a field means
// its default.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts including the first; 1 disables
	// retries. Default 4.
	MaxAttempts int
	// InitialDelay is the backoff cap of the first retry. Default 200ms.
	InitialDelay time.Duration
	// MaxDelay caps the backoff (not a Retry-After delay). Default 5s.
	MaxDelay time.Duration
	// RetryNonIdempotent also retries exec, exec stream and upload. A 503
	// answer means the command did not start or the upload was not applied,
	// but a connection error may hide a command that ran: set it only for
	// commands that may run twice. Uploads are retried only when the body
	// can be replayed: an io.Seeker passed to Upload, or UploadFiles (never
	// UploadDir, which streams).
	RetryNonIdempotent bool
}

// DefaultRetryPolicy returns the policy a Client uses unless WithRetry or
// WithoutRetry is given.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, InitialDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialDelay <= 0 {
		p.InitialDelay = d.InitialDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	return p
}

// backoff returns the full-jitter delay before retry number n (1-based).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return rand.N(d + 1)
}

// WithHTTPClient makes the Client send requests with hc. Its Timeout should
// be zero: a Client timeout would cut streams and downloads; use WithTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil *http.Client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithTransport makes the Client send requests through rt (on a copy of
// the HTTP client, when WithHTTPClient is used too).
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) error {
		if rt == nil {
			return errors.New("WithTransport: nil http.RoundTripper")
		}
		c.transport = rt
		return nil
	}
}

// WithHandler serves every request in process by h, with no socket: a
// RoundTripper runs h with a ResponseWriter backed by an io.Pipe, so answers
// stream (Flush works) and request bodies are read as they are written. The
// base URL passed to New still decides the paths (use for example
// "http://nox.invalid/prefix" for a handler mounted under /prefix); name
// a host under .invalid, which nox's server accepts without a token (it
// refuses other DNS names then, against DNS rebinding). A WebSocket
// upgrade (Terminal) gets an in-memory connection.
func WithHandler(h http.Handler) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("WithHandler: nil http.Handler")
		}
		c.transport = HandlerTransport(h)
		return nil
	}
}

// WithTimeout bounds every call, all its attempts together: the time until
// the answer is read, enforced through the context (never
// http.Client.Timeout). For Exec and Shell the
// command's own timeout is added; for a command sent without one, the
// backend's default (Info.Limits.DefaultTimeout when Info was fetched,
// else DefaultExecTimeout). For Download and ExecStream it bounds the
// time until the answer's headers arrive; the body is governed by the
// caller's context (and, for streams, the idle timeout). Zero, the default,
// means no timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("WithTimeout: negative duration %s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithToken sends `Authorization: Bearer <token>` with every /v1/ request
// (extension auth.bearer).
func WithToken(token string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(token, "\r\n") {
			return errors.New("WithToken: token contains a line break")
		}
		c.token = token
		return nil
	}
}

// WithUserAgent replaces the default User-Agent, DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(ua, "\r\n") {
			return errors.New("WithUserAgent: user agent contains a line break")
		}
		c.userAgent = ua
		return nil
	}
}

// WithRetry sets the retry policy; see RetryPolicy.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		c.retry = p.withDefaults()
		return nil
	}
}

// WithoutRetry disables retries: every call is attempted once.
func WithoutRetry() Option {
	return func(c *Client) error {
		c.retry = RetryPolicy{MaxAttempts: 1}.withDefaults()
		return nil
	}
}

// New returns a Client for the backend at baseURL, e.g.
// "http://127.0.0.1:8080" or "https://host/prefix" (paths are appended to a
// path prefix).
func New(baseURL string, opts ...Option) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		return nil, fmt.Errorf("nox: base URL %q has no scheme: want http:// or https://, e.g. %q", baseURL, "http://"+baseURL)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("nox: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("nox: base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("nox: base URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("nox: base URL %q: must not have a query or fragment", baseURL)
	}
	c := &Client{
		userAgent: DefaultUserAgent,
		retry:     DefaultRetryPolicy(),
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("nox: %w", err)
		}
	}
	switch {
	case c.httpClient == nil:
		c.httpClient = &http.Client{Transport: c.transport}
	case c.transport != nil:
		hc := *c.httpClient
		hc.Transport = c.transport
		c.httpClient = &hc
	}
	if c.debug != nil {
		hc := *c.httpClient
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		hc.Transport = &debugTransport{next: next, mu: &sync.Mutex{}, w: c.debug}
		c.httpClient = &hc
	}
	c.baseURL = strings.TrimSuffix(u.String(), "/") + "/"
	c.gen, err = noxapi.NewClient(c.baseURL,
		noxapi.WithHTTPClient(c.httpClient),
		noxapi.WithRequestEditorFn(c.editRequest))
	if err != nil {
		return nil, fmt.Errorf("nox: %w", err)
	}
	return c, nil
}

// BaseURL returns the backend's base URL, with a trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

// editRequest adds the headers every request carries.
func (c *Client) editRequest(_ context.Context, req *http.Request) error {
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" && !strings.HasSuffix(req.URL.Path, "/healthz") {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return nil
}

// call describes one operation to do.
type call struct {
	op         string // operationId
	idempotent bool
	streaming  bool          // the body outlives the timeout (download, stream)
	untimed    bool          // the client's timeout does not apply (a stdin stream)
	extra      time.Duration // added to the client's timeout (exec)
	// rewind prepares the request body for another attempt; nil means the
	// body can be rebuilt at will (send builds it).
	rewind func() error
	// noReplay is set when the body can be sent only once.
	noReplay bool
}

// success reports whether an answer's status is a success: any 2xx, for
// every operation (a backend may answer a create 201 or an upload 204).
func success(status int) bool { return status >= 200 && status < 300 }

// do runs send (which builds and sends one request with the given context)
// with the client's timeout and retry policy. On success it returns the
// answer, whose body the caller must close; closing it releases the call's
// context. Any other status is returned as an *APIError.
func (c *Client) do(ctx context.Context, cl call, send func(ctx context.Context) (*http.Response, error)) (*http.Response, error) {
	if ctx == nil {
		return nil, fmt.Errorf("nox: %s: nil context", cl.op)
	}
	parent := ctx
	var cancel context.CancelCauseFunc
	ctx, cancel = context.WithCancelCause(ctx)
	var timer *time.Timer
	if c.timeout > 0 && !cl.untimed {
		d := c.timeout + cl.extra
		timer = time.AfterFunc(d, func() {
			// The call's errors add "nox: <op>: " in front.
			cancel(fmt.Errorf("timed out after %s: %w", d, context.DeadlineExceeded))
		})
	}
	release := func() {
		if timer != nil {
			timer.Stop()
		}
		cancel(context.Canceled)
	}

	attempts := 1
	if !cl.noReplay && (cl.idempotent || c.retry.RetryNonIdempotent) {
		attempts = c.retry.MaxAttempts
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 && cl.rewind != nil {
			if err := cl.rewind(); err != nil {
				release()
				return nil, fmt.Errorf("nox: %s: rewinding the request body: %w", cl.op, err)
			}
		}
		resp, err := send(ctx)
		var delay time.Duration
		if err != nil {
			if cerr := ctxError(parent, ctx); cerr != nil {
				release()
				return nil, fmt.Errorf("nox: %s: %w", cl.op, cerr)
			}
			if attempt >= attempts {
				release()
				return nil, fmt.Errorf("nox: %s: %w", cl.op, err)
			}
			delay = c.retry.backoff(attempt)
		} else {
			if success(resp.StatusCode) {
				if cl.streaming && timer != nil {
					timer.Stop()
				}
				resp.Body = &releaseBody{ReadCloser: resp.Body, release: release, parent: parent, ctx: ctx}
				return resp, nil
			}
			apiErr := newAPIError(cl.op, resp)
			resp.Body.Close()
			if attempt >= attempts || !retryableStatus(resp.StatusCode) {
				release()
				return nil, apiErr
			}
			delay = c.retry.backoff(attempt)
			if apiErr.RetryAfter > 0 {
				delay = apiErr.RetryAfter
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				release()
				return nil, apiErr // waiting would outlive the context
			}
			err = apiErr
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			cerr := ctxError(parent, ctx)
			release()
			return nil, fmt.Errorf("nox: %s: %w (last error: %v)", cl.op, cerr, err)
		}
	}
}

// ctxError returns the reason the call's context is done, or nil: the
// caller's context's error (and its cause) when it ended, else the
// client's timeout.
func ctxError(parent, ctx context.Context) error {
	if parent.Err() != nil {
		return doneError(parent)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// doneError returns the error of the done context ctx: ctx.Err(), or its
// cause when that matches ctx.Err(), else both, so that errors.Is finds
// context.Canceled (or DeadlineExceeded) and the cause alike.
func doneError(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || errors.Is(cause, err) {
		return cmp.Or(cause, err)
	}
	return fmt.Errorf("%w: %w", err, cause)
}

func retryableStatus(s int) bool {
	return s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// releaseBody releases the call's context when the body is closed and
// reports context errors instead of transport errors.
type releaseBody struct {
	io.ReadCloser
	release     func()
	parent, ctx context.Context
	once        sync.Once
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if cerr := ctxError(b.parent, b.ctx); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// drainClose reads a little of the body, so the connection can be reused, and
// closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// checkID rejects an empty session id before any request is made.
func checkID(op, id string) error {
	if id == "" {
		return fmt.Errorf("nox: %s: empty session id: %w", op, ErrInvalidArgument)
	}
	return nil
}
