package sdk

import (
	"context"
	"fmt"
	"io"

	"github.com/noxrunner/nox/gen/noxapi"
)

// DefaultMaxStdinBytes bounds ExecRequest.Stdin when the backend does not
// advertise Limits.MaxStdinBytes: 12 MiB, whose base64 form is the
// longest stdin member the contract allows (16 MiB).
const DefaultMaxStdinBytes = 12 << 20

// execBody builds the request body of an exec: req with its Stdin read
// (see ExecRequest.Stdin). It fails before any request when the stdin is
// too large, cannot be read, or holds bytes a backend without
// ExtExecStdin would drop.
func (c *Client) execBody(ctx context.Context, op string, req ExecRequest) (noxapi.ExecRequest, error) {
	body := toGenExec(req)
	if req.Stdin == nil {
		return body, nil
	}
	info, err := c.Capabilities(ctx)
	if err != nil {
		return body, fmt.Errorf("nox: %s: discovering the backend's extensions: %w", op, err)
	}
	limit := info.Limits.MaxStdinBytes
	if limit <= 0 {
		limit = DefaultMaxStdinBytes
	}
	data, err := readAllContext(ctx, io.LimitReader(req.Stdin, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return body, fmt.Errorf("nox: %s: reading stdin: %w", op, doneError(ctx))
		}
		return body, fmt.Errorf("nox: %s: reading stdin: %w", op, err)
	}
	if int64(len(data)) > limit {
		return body, fmt.Errorf("nox: %s: stdin is larger than the backend's %d bytes (maxStdinBytes); "+
			"stream it to a process started with Start and StartOptions.Stdin: %w", op, limit, ErrTooLarge)
	}
	if len(data) == 0 {
		return body, nil // an empty stdin is what every backend gives
	}
	if !info.Supports(ExtExecStdin) {
		return body, fmt.Errorf("nox: %s: %d bytes of stdin: the backend does not advertise extension %s and would drop them: %w",
			op, len(data), ExtExecStdin, ErrUnsupported)
	}
	body.Stdin, body.StdinEncoding = toGenStdin(data)
	return body, nil
}

// readAllContext reads r to its end, or until ctx ends: then it returns
// ctx's error at once and leaves a goroutine blocked on r until r
// returns (a terminal or a pipe nobody closes may never do).
func readAllContext(ctx context.Context, r io.Reader) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(r)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		return res.data, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
