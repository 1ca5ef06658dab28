package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// runState is shared by every Env of one run.
type runState struct {
	cfg      Config
	contract *spec
	info     *noxapi.Info // nil for a plain v1 backend
	seq      atomic.Int64
}

// Env is what a check works with: the backend's address, clients that
// validate every response against the contract, the run's id prefix and
// helpers. Each check gets its own Env; every sandbox created through it is
// deleted when the check ends, whatever its outcome.
type Env struct {
	// BaseURL is the backend's base URL.
	BaseURL string
	// Token is the configured bearer token ("" for none).
	Token string
	// Prefix starts every session id this run creates.
	Prefix string
	// Client is the generated client; it sends the token and validates and
	// records every exchange.
	Client *noxapi.Client
	// NoAuthClient is like Client but never sends a token.
	NoAuthClient *noxapi.Client
	// Info is the backend's GET /v1/info answer; nil for a plain v1
	// backend.
	Info *noxapi.Info

	cfg      Config
	run      *runState
	basePath string

	mu        sync.Mutex
	sandboxes []string
	notes     []string
	made      []*Exchange
	exchanges map[*http.Response]*Exchange
}

// newEnv builds the Env of one check.
func newEnv(run *runState) (*Env, error) {
	cfg := run.cfg
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	e := &Env{
		BaseURL: cfg.BaseURL, Token: cfg.Token, Prefix: cfg.IDPrefix, Info: run.info,
		cfg: cfg, run: run, basePath: u.Path, exchanges: map[*http.Response]*Exchange{},
	}
	doer := &recordingDoer{env: e}
	e.NoAuthClient, err = noxapi.NewClient(cfg.BaseURL, noxapi.WithHTTPClient(doer))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	e.Client, err = noxapi.NewClient(cfg.BaseURL, noxapi.WithHTTPClient(doer),
		noxapi.WithRequestEditorFn(e.authorize))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return e, nil
}

func (e *Env) authorize(_ context.Context, req *http.Request) error {
	if e.Token != "" {
		req.Header.Set("Authorization", "Bearer "+e.Token)
	}
	return nil
}

// Notef records a measurement or observation of the check (for example
// the latency of an event), reported with its result whatever its
// status.
func (e *Env) Notef(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// Has reports whether the backend advertises the extension ext in GET
// /v1/info.
func (e *Env) Has(ext string) bool {
	return e.Info != nil && slices.Contains(e.Info.Extensions, ext)
}

func (e *Env) record(resp *http.Response, x *Exchange) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.made = append(e.made, x)
	if resp != nil {
		e.exchanges[resp] = x
	}
}

// judgeConsistent judges answers that must agree, such as the answers to
// creates of one session id: a contract violation seen in every one of
// them is a deviation of the operation, which its own check reports; one
// seen in some but not all counts against this check.
func (e *Env) judgeConsistent(xs ...*Exchange) {
	common := map[string]int{}
	n := 0
	for _, x := range xs {
		if x == nil {
			continue
		}
		n++
		seen := map[string]bool{}
		for _, c := range x.complaints {
			if !seen[c.key] {
				seen[c.key] = true
				common[c.key]++
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range xs {
		if x == nil {
			continue
		}
		x.judge()
		for k, c := range common {
			if c == n {
				if x.except == nil {
					x.except = map[string]bool{}
				}
				x.except[k] = true
			}
		}
	}
}

// exchange returns the recorded exchange of resp (or a stub).
func (e *Env) exchange(resp *http.Response) *Exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.exchanges[resp]; x != nil {
		return x
	}
	x := &Exchange{Status: resp.StatusCode, Header: resp.Header}
	if resp.Request != nil {
		x.Method, x.URL = resp.Request.Method, resp.Request.URL.RequestURI()
	}
	return x
}

// ID returns a new session id for this run: the run prefix, a sequence
// number and name, e.g. "nox-conf-1a2b3c4d-7-exec". Ids are valid session
// ids (at most 128 characters of [A-Za-z0-9._-]).
func (e *Env) ID(name string) string {
	n := e.run.seq.Add(1)
	id := fmt.Sprintf("%s-%d-%s", e.Prefix, n, name)
	id = strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '-'
	}, id)
	if len(id) > 128 {
		id = id[:128]
	}
	return id
}

// Track records a session id for deletion when the check ends. Create and
// NewSandbox call it; call it for sandboxes created by other means.
func (e *Env) Track(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.sandboxes, id) {
		e.sandboxes = append(e.sandboxes, id)
	}
}

// transportError wraps an error of the HTTP transport. A backend that
// cannot be reached, or a cancelled run, is an error of the suite
// (ErrSuite); anything else (a reset connection, a request or check
// deadline passed) counts against the backend.
func transportError(ctx context.Context, what string, err error) error {
	var op *net.OpError
	if errors.Is(ctx.Err(), context.Canceled) || (errors.As(err, &op) && op.Op == "dial") {
		return fmt.Errorf("%s: %w: %w", what, ErrSuite, err)
	}
	return fmt.Errorf("%s: no response: %w", what, err)
}

// do sends a generated-client request and returns its exchange.
func (e *Env) do(ctx context.Context, what string, resp *http.Response, err error) (*Exchange, error) {
	if err != nil {
		return nil, transportError(ctx, what, err)
	}
	defer resp.Body.Close()
	x := e.exchange(resp)
	return x, nil
}

// maxRetries bounds how often send retries a 503 answer.
const maxRetries = 5

// send makes a request with call, retrying while the backend answers 503
// (not ready, or busy), as the contract allows, after its Retry-After
// (default 1 s, at most 5 s). It returns the last exchange.
func (e *Env) send(ctx context.Context, what string, call func() (*http.Response, error)) (*Exchange, error) {
	for attempt := 0; ; attempt++ {
		resp, err := call()
		x, err := e.do(ctx, what, resp, err)
		if err != nil || x.Status != http.StatusServiceUnavailable || attempt == maxRetries {
			return x, err
		}
		wait := time.Second
		if n, err := strconv.Atoi(x.Header.Get("Retry-After")); err == nil && n >= 0 {
			wait = min(time.Duration(n)*time.Second, 5*time.Second)
		}
		if err := sleep(ctx, wait); err != nil {
			return x, err
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// Create creates (or ensures) sandbox id with body (plus Config.Image),
// records it for deletion and returns the exchange; it does not judge the
// status.
func (e *Env) Create(ctx context.Context, id string, body noxapi.CreateSandboxRequest) (*Exchange, error) {
	e.Track(id)
	if body.Image == nil && e.cfg.Image != "" {
		body.Image = &e.cfg.Image
	}
	return e.send(ctx, "create sandbox "+id, func() (*http.Response, error) { return e.Client.CreateSandbox(ctx, id, body) })
}

// CreateOK creates sandbox id with the given TTL (0: 600 seconds) as a
// set-up step, and returns its answer, or an error when the answer is not
// a success. It reads the answer leniently (see [Env.ExecOK]): a missing
// or unreadable expiresAt is the zero time. The form of the answer is
// judged by the create checks.
func (e *Env) CreateOK(ctx context.Context, id string, ttl int32) (*noxapi.CreateSandboxResult, *Exchange, error) {
	if ttl == 0 {
		ttl = 600
	}
	x, err := e.Create(ctx, id, noxapi.CreateSandboxRequest{TTLSeconds: &ttl})
	if err != nil {
		return nil, x, err
	}
	if err := expectSuccess(x); err != nil {
		return nil, x, fmt.Errorf("create sandbox: %w", err)
	}
	var res lenientCreate
	if err := decodeLenient(x, &res); err != nil {
		return nil, x, fmt.Errorf("create sandbox: %w", err)
	}
	return &noxapi.CreateSandboxResult{PodName: res.PodName, ExpiresAt: res.ExpiresAt.Time}, x, nil
}

// NewSandbox creates a sandbox for the check (TTL 600 s) under a new id
// made from name, and returns the id.
func (e *Env) NewSandbox(ctx context.Context, name string) (string, error) {
	id := e.ID(name)
	if _, _, err := e.CreateOK(ctx, id, 0); err != nil {
		return "", err
	}
	return id, nil
}

// Exec runs req in sandbox id and returns the exchange, whatever the status.
func (e *Env) Exec(ctx context.Context, id string, req noxapi.ExecRequest) (*Exchange, error) {
	return e.send(ctx, "exec in "+id, func() (*http.Response, error) { return e.Client.ExecInSandbox(ctx, id, req) })
}

// ExecOK runs req in sandbox id and returns the result, or an error when
// the answer is not a success with a JSON body. The exit code is not
// judged. The answer is read leniently, as a client reads it: numbers with
// a fraction for integers (durationMs 1.5), missing fields as zero values;
// exec/stdout-stderr judges its exact form.
func (e *Env) ExecOK(ctx context.Context, id string, req noxapi.ExecRequest) (*noxapi.ExecResult, *Exchange, error) {
	x, err := e.Exec(ctx, id, req)
	if err != nil {
		return nil, x, err
	}
	if err := expectSuccess(x); err != nil {
		return nil, x, fmt.Errorf("exec: %w", err)
	}
	var res lenientExecResult
	if err := decodeLenient(x, &res); err != nil {
		return nil, x, fmt.Errorf("exec: %w", err)
	}
	return res.result(), x, nil
}

// Sh runs `sh -c script` in sandbox id (timeout 30 s) as a helper command
// and returns its stdout, or an error when the exec fails or exits
// non-zero.
func (e *Env) Sh(ctx context.Context, id, script string) (string, error) {
	t := int32(30)
	res, x, err := e.ExecOK(ctx, id, noxapi.ExecRequest{Cmd: []string{"sh", "-c", script}, TimeoutSeconds: &t})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return res.Stdout, ownFinding(x, aspectNone, fmt.Sprintf("exit %d, stderr %q", res.ExitCode, clip(res.Stderr, 200)), "exit 0",
			fmt.Errorf("helper command exited %d, want 0\n%s", res.ExitCode, x))
	}
	return res.Stdout, nil
}

// shOutput runs `sh -c script` in sandbox id like Sh and returns an error
// starting with what unless the script exits 0 with stdout exactly want.
func (e *Env) shOutput(ctx context.Context, id, script, want, what string) error {
	out, err := e.Sh(ctx, id, script)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if out != want {
		return fmt.Errorf("%s: stdout %q, want %q", what, out, want)
	}
	return nil
}

// UploadOK uploads archive to sandbox id under dest as a set-up step: any
// success will do (files/upload-gzip judges the answer).
func (e *Env) UploadOK(ctx context.Context, id, dest string, archive []byte) (*Exchange, error) {
	x, err := e.Upload(ctx, id, dest, archive)
	if err != nil {
		return x, err
	}
	if err := expectSuccess(x); err != nil {
		return x, fmt.Errorf("upload: %w", err)
	}
	return x, nil
}

// Upload posts archive (a tar, gzip-compressed or not) to sandbox id,
// extracting under dest ("" for the default), and returns the exchange.
func (e *Env) Upload(ctx context.Context, id, dest string, archive []byte) (*Exchange, error) {
	var p *noxapi.UploadFilesParams
	if dest != "" {
		p = &noxapi.UploadFilesParams{Dest: &dest}
	}
	return e.send(ctx, "upload to "+id, func() (*http.Response, error) {
		return e.Client.UploadFilesWithBody(ctx, id, p, "application/x-tar", bytes.NewReader(archive))
	})
}

// uploadStream posts an archive of size bytes to sandbox id, extracting
// under dest ("" for the default), without holding it in memory: open
// returns a new reader of the archive for each attempt. The request
// declares Content-Length: size, or, when chunked, no length (chunked
// transfer encoding). The exchange does not keep the body, only how much
// of it was sent.
func (e *Env) uploadStream(ctx context.Context, id, dest string, size int64, chunked bool, open func() io.Reader) (*Exchange, error) {
	var p *noxapi.UploadFilesParams
	if dest != "" {
		p = &noxapi.UploadFilesParams{Dest: &dest}
	}
	length := func(_ context.Context, req *http.Request) error {
		req.ContentLength, req.GetBody = size, nil
		if chunked {
			req.ContentLength = -1
		}
		return nil
	}
	return e.send(ctx, "upload to "+id, func() (*http.Response, error) {
		return e.Client.UploadFilesWithBody(ctx, id, p, "application/x-tar", open(), length)
	})
}

// Download gets the archive of src ("" for the default) from sandbox id
// and returns the exchange.
func (e *Env) Download(ctx context.Context, id, src string) (*Exchange, error) {
	var p *noxapi.DownloadFilesParams
	if src != "" {
		p = &noxapi.DownloadFilesParams{Src: &src}
	}
	return e.send(ctx, "download from "+id, func() (*http.Response, error) { return e.Client.DownloadFiles(ctx, id, p) })
}

// Raw sends a request built by hand (for malformed input) to path under
// the base URL, with the token when auth is true, validates the response
// and returns the exchange.
func (e *Env) Raw(ctx context.Context, method, path, contentType string, body []byte, auth bool) (*Exchange, error) {
	authz := ""
	if auth && e.Token != "" {
		authz = "Bearer " + e.Token
	}
	return e.rawHeader(ctx, method, path, contentType, body, authz)
}

// rawHeader is Raw with an explicit Authorization header ("" for none).
func (e *Env) rawHeader(ctx context.Context, method, path, contentType string, body []byte, authz string) (*Exchange, error) {
	u := strings.TrimRight(e.BaseURL, "/") + path
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w: %w", method, path, ErrSuite, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := (&recordingDoer{env: e}).Do(req)
	return e.do(ctx, method+" "+path, resp, err)
}

// cleanup deletes every sandbox the check created. A success or 404 is
// fine; anything else is a failure of the backend.
func (e *Env) cleanup(ctx context.Context) error {
	e.mu.Lock()
	ids := slices.Clone(e.sandboxes)
	e.mu.Unlock()
	var errs []error
	for _, id := range slices.Backward(ids) {
		resp, err := e.Client.DeleteSandbox(ctx, id)
		x, err := e.do(ctx, "clean up sandbox "+id, resp, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if x.Status == http.StatusNotFound {
			continue
		}
		if err := expectSuccess(x); err != nil {
			errs = append(errs, fmt.Errorf("clean up sandbox %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// violations returns the contract violations of the responses the check
// judged (repeats of one complaint counted, not listed again), leaving out
// those about an aspect of a response that an explicit finding of the
// check already judges.
func (e *Env) violations(explicit []*finding) []error {
	covered := map[*Exchange]map[aspect]bool{}
	for _, f := range explicit {
		if f.x != nil && f.aspect != aspectNone {
			if covered[f.x] == nil {
				covered[f.x] = map[aspect]bool{}
			}
			covered[f.x][f.aspect] = true
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*finding
	var texts []string
	counts := map[string]int{}
	for _, x := range e.made {
		if !x.judged.Load() {
			continue
		}
		for _, c := range x.complaints {
			if covered[x][c.aspect] || x.except[c.key] {
				continue
			}
			if counts[c.text]++; counts[c.text] > 1 {
				continue
			}
			texts = append(texts, c.text)
			out = append(out, &finding{key: c.key, title: c.title, req: Must, anchor: c.anchor, aspect: c.aspect, x: x,
				observed: c.observed, expected: c.expected,
				err: fmt.Errorf("response breaks the contract: %s\n%s", c.text, x)})
		}
	}
	errs := make([]error, len(out))
	for i, f := range out {
		if n := counts[texts[i]]; n > 1 {
			f.err = fmt.Errorf("%w\n(the same violation in %d more responses)", f.err, n-1)
		}
		errs[i] = f
	}
	return errs
}

// within reports whether got is within tol of want.
func within(got, want time.Time, tol time.Duration) bool {
	d := got.Sub(want)
	return d >= -tol && d <= tol
}
