package sandbox

// A command's standard streams, on every platform.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// orDiscard is w, or io.Discard when w is nil.
func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// writeInput writes p to f, a pollable pipe or terminal, blocking while
// it is full until ctx ends (a write deadline in the past interrupts it).
func writeInput(ctx context.Context, f *os.File, p []byte) (int, error) {
	if ctx.Err() != nil {
		return 0, fmt.Errorf("write stdin: %w", context.Cause(ctx))
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = f.SetWriteDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			if !stop() { // the deadline was set: clear it for the next write
				<-fired
				_ = f.SetWriteDeadline(time.Time{})
			}
		}()
	}
	n, err := f.Write(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return n, fmt.Errorf("write stdin: %w", context.Cause(ctx))
	case errors.Is(err, os.ErrClosed), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EIO):
		return n, ErrNoStdin
	}
	return n, fmt.Errorf("write stdin: %w", err)
}
