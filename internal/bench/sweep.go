package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/noxrunner/nox/sdk"
)

const (
	// createParallelism bounds the sweep's sandbox creations in flight.
	createParallelism = 8
	// sweepCreateAttempts bounds the attempts at creating a sweep
	// sandbox: a backend at capacity is not waited for long.
	sweepCreateAttempts = 3
)

// sweep runs each concurrency level: that many sandboxes, each running
// SweepExecs execs of true one after another, all at once; with cfg.Bare,
// then the same load as plain fork/exec.
func (r *runner) sweep(ctx context.Context) error {
	sandboxes, err := r.sweepSandboxes(ctx, slices.Max(r.cfg.Concurrency))
	if err != nil {
		return err
	}
	for _, c := range r.cfg.Concurrency {
		r.progress("sweep: %d at once, %d execs each", c, r.cfg.SweepExecs)
		level, err := r.level(ctx, sandboxes[:min(c, len(sandboxes))], c)
		if err != nil {
			return fmt.Errorf("concurrency %d: %w", c, err)
		}
		if r.cfg.Bare != "" {
			bare, err := bareLevel(ctx, c, r.cfg.SweepExecs)
			if err != nil {
				return fmt.Errorf("concurrency %d: bare: %w", c, err)
			}
			level.Bare = bare
			if level.ExecsPerSec > 0 {
				level.Ratio = bare.ExecsPerSec / level.ExecsPerSec
			}
		}
		r.report.Sweep = append(r.report.Sweep, level)
	}
	return nil
}

// sweepSandboxes prepares up to n warm sandboxes, createParallelism at
// a time. When the backend refuses one for want of capacity (a 502, 503
// or 504 that outlasts sweepCreateAttempts attempts), it stops there and
// returns those it has, with a note; it fails only when it has none.
func (r *runner) sweepSandboxes(ctx context.Context, n int) ([]*sdk.Sandbox, error) {
	r.progress("sweep: preparing %d sandboxes", n)
	var out []*sdk.Sandbox
	for start := 0; start < n; start += createParallelism {
		batch := make([]*sdk.Sandbox, min(createParallelism, n-start))
		var mu sync.Mutex
		var refused error
		err := parallel(ctx, len(batch), len(batch), func(ctx context.Context, i int) error {
			sb, err := r.ready(ctx, r.id(fmt.Sprintf("s%d", start+i)), sweepCreateAttempts)
			if errors.Is(err, sdk.ErrUnavailable) {
				mu.Lock()
				refused = cmp.Or(refused, err)
				mu.Unlock()
				return nil
			}
			batch[i] = sb
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, sb := range batch {
			if sb != nil {
				out = append(out, sb)
			}
		}
		if refused != nil {
			if len(out) == 0 {
				return nil, refused
			}
			r.note("sweep: the backend made %d of the %d sandboxes asked for (%v); levels above %d share them",
				len(out), n, refused, len(out))
			break
		}
	}
	return out, nil
}

// level runs one sweep level: c workers, worker i on sandbox i modulo
// len(sandboxes).
func (r *runner) level(ctx context.Context, sandboxes []*sdk.Sandbox, c int) (Level, error) {
	l := Level{Concurrency: c, Sandboxes: len(sandboxes)}
	var mu sync.Mutex
	var samples []time.Duration
	start := time.Now()
	err := parallel(ctx, c, c, func(ctx context.Context, i int) error {
		sb := sandboxes[i%len(sandboxes)]
		mine := make([]time.Duration, 0, r.cfg.SweepExecs)
		retries := 0
		defer func() {
			mu.Lock()
			samples = append(samples, mine...)
			l.Retries += retries
			mu.Unlock()
		}()
		for range r.cfg.SweepExecs {
			d, n, err := r.exec(ctx, sb, cmdTrue)
			retries += n
			if err != nil {
				return err
			}
			mine = append(mine, d)
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return l, err
	}
	l.Execs = len(samples)
	l.Seconds = elapsed.Seconds()
	l.ExecsPerSec = float64(l.Execs) / l.Seconds
	l.Latency = Summarize(samples)
	return l, nil
}

// bareLevel runs c workers, each running execs fork/execs of true.
func bareLevel(ctx context.Context, c, execs int) (*BareLevel, error) {
	var mu sync.Mutex
	var samples []time.Duration
	start := time.Now()
	err := parallel(ctx, c, c, func(ctx context.Context, _ int) error {
		mine := make([]time.Duration, 0, execs)
		defer func() {
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		}()
		for range execs {
			d, err := bareExec(ctx, cmdTrue)
			if err != nil {
				return err
			}
			mine = append(mine, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	return &BareLevel{Execs: len(samples), Seconds: elapsed.Seconds(),
		ExecsPerSec: float64(len(samples)) / elapsed.Seconds(), Latency: Summarize(samples)}, nil
}

// parallel runs f(ctx, i) for i in [0, n), at most width at once, and
// returns the first error; an error cancels the context of the others.
func parallel(ctx context.Context, n, width int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(width, 1))
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := f(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
