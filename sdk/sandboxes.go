package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// maxJSONBody bounds a JSON answer the SDK decodes (exec results hold up to
// a few MiB of output).
const maxJSONBody = 64 << 20

// decodeJSON decodes a JSON answer into the generated model v with
// decodeModel, closes the body, and returns the members it could not read.
func decodeJSON(op string, resp *http.Response, v any) (map[string]string, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return nil, fmt.Errorf("nox: %s: reading the answer: %w", op, err)
	}
	unparsed, err := decodeModel(body, v)
	if err != nil {
		return nil, fmt.Errorf("nox: %s: decoding the answer %q: %w", op, truncate(string(bytes.TrimSpace(body)), 200), err)
	}
	return unparsed, nil
}

// decodeOptionalJSON decodes the body of a successful answer whose effect
// has happened (create, touch, upload) into the generated model v: the
// status said the call succeeded, so no body is an error. An empty body
// leaves v zero; a body decodeModel cannot read leaves it zero too and is
// returned in unparsed under "" (truncated to 1 KiB).
func decodeOptionalJSON(resp *http.Response, v any) map[string]string {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	unparsed, err := decodeModel(body, v)
	if err != nil {
		reflect.ValueOf(v).Elem().SetZero()
		return map[string]string{"": truncate(string(body), 1024)}
	}
	return unparsed
}

// Health checks the backend's liveness. It returns nil when the backend
// answers 200 with a body containing "OK" (like the Python client), and an
// *APIError matching ErrUnavailable when it answers 503.
//
//meta:operation GET /healthz
func (c *Client) Health(ctx context.Context) error {
	const op = "healthz"
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.Healthz(ctx)
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return fmt.Errorf("nox: %s: reading the answer: %w", op, err)
	}
	if !bytes.Contains(body, []byte("OK")) {
		return &APIError{StatusCode: resp.StatusCode, Operation: op, RequestID: resp.Header.Get("X-Request-Id"),
			Message: fmt.Sprintf("unexpected health body %q", truncate(string(body), 200))}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Info fetches the backend's description (extension info). On a plain v1
// backend it fails with an error matching ErrUnsupported and the answer's
// category (an *APIError matching ErrNotFound for a 404); use Supports to
// test for an extension on any backend. Info refreshes the cache Supports
// uses.
//
//meta:operation GET /v1/info
func (c *Client) Info(ctx context.Context) (*Info, error) {
	const op = "getInfo"
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.GetInfo(ctx)
	})
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && slices.Contains([]int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented}, apiErr.StatusCode) {
			c.setInfo(&Info{APIVersion: "v1", PlainV1: true})
			return nil, &unsupportedError{op: op, ext: ExtInfo, answer: apiErr, matchAnswer: true}
		}
		return nil, err
	}
	var g noxapi.Info
	if _, err := decodeJSON(op, resp, &g); err != nil {
		return nil, err
	}
	info := fromGenInfo(&g)
	c.setInfo(info)
	return info, nil
}

func (c *Client) setInfo(i *Info) {
	c.infoMu.Lock()
	c.info = i
	c.infoMu.Unlock()
}

// cachedInfo returns the cached Info, or nil when the backend was not asked.
func (c *Client) cachedInfo() *Info {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.info
}

// Capabilities returns the backend's description, fetched once and cached
// by the Client. A plain v1 backend (404, 405 or 501 on GET /v1/info)
// yields an Info with PlainV1 set and no extensions, and no error.
func (c *Client) Capabilities(ctx context.Context) (*Info, error) {
	if i := c.cachedInfo(); i != nil {
		return i, nil
	}
	i, err := c.Info(ctx)
	if errors.Is(err, ErrUnsupported) {
		return c.cachedInfo(), nil
	}
	return i, err
}

// Supports reports whether the backend advertises the extension ext (one
// of the Ext... constants). It uses Capabilities, so the backend is asked
// at most once per Client; a plain v1 backend supports nothing.
func (c *Client) Supports(ctx context.Context, ext string) (bool, error) {
	i, err := c.Capabilities(ctx)
	if err != nil {
		return false, err
	}
	return i.Supports(ext), nil
}

// Create creates the sandbox for the session id id, or ensures an existing
// one is running and refreshes its expiry. It is idempotent.
//
//meta:operation PUT /v1/sandboxes/{sessionId}
func (c *Client) Create(ctx context.Context, id string, opts CreateOptions) (*CreateResult, error) {
	const op = "createSandbox"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if err := c.checkCreateNetwork(ctx, op, opts.Network); err != nil {
		return nil, err
	}
	body := toGenCreate(opts)
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.CreateSandbox(ctx, id, body)
	})
	if err != nil {
		return nil, err
	}
	var g noxapi.CreateSandboxResult
	unparsed := decodeOptionalJSON(resp, &g)
	return fromGenCreate(&g, unparsed), nil
}

// Touch extends the sandbox's TTL: it expires TTL after now. An unknown
// sandbox is an error matching ErrNotFound.
//
//meta:operation POST /v1/sandboxes/{sessionId}/touch
func (c *Client) Touch(ctx context.Context, id string) (*TouchResult, error) {
	const op = "touchSandbox"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, call{op: op, idempotent: true},
		func(ctx context.Context) (*http.Response, error) {
			return c.gen.TouchSandbox(ctx, id)
		})
	if err != nil {
		return nil, err
	}
	var g noxapi.TouchResult
	unparsed := decodeOptionalJSON(resp, &g)
	return fromGenTouch(&g, unparsed), nil
}

// Get returns the status of one sandbox (extension sandboxes.get). An
// unknown sandbox is an error matching ErrNotFound; a backend without the
// extension fails with an error matching ErrUnsupported instead.
//
//meta:operation GET /v1/sandboxes/{sessionId}
func (c *Client) Get(ctx context.Context, id string) (*SandboxStatus, error) {
	const op = "getSandbox"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.GetSandbox(ctx, id)
	})
	if err != nil {
		return nil, c.unsupported(ctx, op, ExtSandboxesGet, err)
	}
	var g noxapi.SandboxStatus
	unparsed, err := decodeJSON(op, resp, &g)
	if err != nil {
		return nil, err
	}
	s := fromGenStatus(&g, unparsed)
	return &s, nil
}

// List iterates over the sandboxes the caller can see, ordered by session
// id, fetching pages as needed (extension sandboxes.list). On an error the
// iteration yields it once, with a zero SandboxStatus, and stops; on a
// backend without the extension that error matches ErrUnsupported.
//
//	for s, err := range client.List(ctx, sdk.ListOptions{}) {
//		if err != nil { return err }
//		fmt.Println(s.SessionID, s.State)
//	}
//
//meta:operation GET /v1/sandboxes
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[SandboxStatus, error] {
	const op = "listSandboxes"
	return func(yield func(SandboxStatus, error) bool) {
		token := opts.PageToken
		seen := map[string]bool{}
		for {
			params := &noxapi.ListSandboxesParams{PageToken: ptrIf(token)}
			if opts.PageSize > 0 {
				ps := int32(min(opts.PageSize, 1000))
				params.PageSize = &ps
			}
			resp, err := c.do(ctx, call{op: op, idempotent: true}, func(ctx context.Context) (*http.Response, error) {
				return c.gen.ListSandboxes(ctx, params)
			})
			if err != nil {
				yield(SandboxStatus{}, c.unsupported(ctx, op, ExtSandboxesList, err))
				return
			}
			var page noxapi.SandboxList
			unparsed, err := decodeJSON(op, resp, &page)
			if err != nil {
				yield(SandboxStatus{}, err)
				return
			}
			for i := range page.Items {
				if !yield(fromGenStatus(&page.Items[i], unparsedUnder(unparsed, "items."+strconv.Itoa(i)+".")), nil) {
					return
				}
			}
			next := deref(page.NextPageToken)
			if next == "" {
				return
			}
			if seen[next] {
				yield(SandboxStatus{}, fmt.Errorf("nox: %s: the backend repeated page token %q", op, next))
				return
			}
			seen[next] = true
			token = next
		}
	}
}

// Delete deletes the sandbox at once. An unknown sandbox is an error
// matching ErrNotFound, which callers may treat as success.
//
//meta:operation DELETE /v1/sandboxes/{sessionId}
func (c *Client) Delete(ctx context.Context, id string) error {
	const op = "deleteSandbox"
	if err := checkID(op, id); err != nil {
		return err
	}
	resp, err := c.do(ctx, call{op: op, idempotent: true},
		func(ctx context.Context) (*http.Response, error) {
			return c.gen.DeleteSandbox(ctx, id)
		})
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	return nil
}

// WaitReady waits until the sandbox runs commands, like the Python client's
// wait_for_pod_ready: it runs ["echo", "ready"] with a 5 second timeout until
// stdout is "ready", backing off exponentially between attempts. It gives up
// at once on errors that polling cannot cure (ErrNotFound, ErrUnauthorized,
// ErrInvalidArgument), and when the context or opts.Timeout ends, returning
// an error that wraps the context error and mentions the last failure.
func (c *Client) WaitReady(ctx context.Context, id string, opts WaitOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.MaxInterval <= 0 {
		opts.MaxInterval = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	delay := opts.Interval
	var last error
	for {
		res, err := c.Exec(ctx, id, ExecRequest{Cmd: []string{"echo", "ready"}, Timeout: 5 * time.Second})
		switch {
		case err == nil && strings.TrimSpace(res.Stdout) == "ready":
			return nil
		case err == nil:
			last = fmt.Errorf("probe exited %d with stdout %q", res.ExitCode, truncate(res.Stdout, 100))
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrInvalidArgument):
			return fmt.Errorf("nox: waiting for sandbox %q: %w", id, err)
		case ctx.Err() != nil && last != nil:
			// The wait ended during this probe: the failure before it
			// says more than the deadline.
		default:
			last = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("nox: waiting for sandbox %q: %w (last: %v)", id, ctx.Err(), last)
		case <-t.C:
		}
		delay = min(delay*2, opts.MaxInterval)
	}
}
