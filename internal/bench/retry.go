package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// Retry bounds: a call is attempted at most maxAttempts times; without a
// Retry-After the wait before retry n is a random delay of up to
// firstBackoff * 2^(n-1), at most maxBackoff.
const (
	maxAttempts  = 8
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
	// maxRetryAfter caps a Retry-After delay, so that a backend asking
	// for an hour does not stall a benchmark.
	maxRetryAfter = 30 * time.Second
)

// call runs f until it succeeds, retrying (as the backend asks) after an
// error matching sdk.ErrUnavailable: a 502, 503 or 504 answer, which
// means the call was not carried out. It returns the time of the
// successful attempt and the number of retries, which it also adds to the
// run's count.
func (r *runner) call(ctx context.Context, f func(context.Context) error) (time.Duration, int, error) {
	return r.callN(ctx, maxAttempts, f)
}

// callN is call with at most attempts attempts.
func (r *runner) callN(ctx context.Context, attempts int, f func(context.Context) error) (time.Duration, int, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := f(ctx)
		d := time.Since(start)
		if err == nil {
			return d, attempt - 1, nil
		}
		if !errors.Is(err, sdk.ErrUnavailable) || attempt >= attempts || ctx.Err() != nil {
			if attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return d, attempt - 1, err
		}
		r.retries.Add(1)
		if err := sleep(ctx, retryDelay(err, attempt)); err != nil {
			return d, attempt, err
		}
	}
}

// retryDelay is the wait before retrying after err, the error of attempt
// number attempt: the answer's Retry-After, else a jittered exponential
// backoff.
func retryDelay(err error, attempt int) time.Duration {
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return min(apiErr.RetryAfter, maxRetryAfter)
	}
	d := firstBackoff << min(attempt-1, 10)
	return rand.N(min(d, maxBackoff)) + time.Millisecond
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
