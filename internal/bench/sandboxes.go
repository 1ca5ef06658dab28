package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// cleanupTimeout bounds the clean-up at the end of a run, which goes on
// after the run's context is cancelled.
const cleanupTimeout = 2 * time.Minute

// id returns the session id of the run's sandbox named suffix.
func (r *runner) id(suffix string) string { return r.cfg.IDPrefix + "-" + suffix }

// track records id for clean-up. It is called before the create request,
// so that a sandbox created by a call whose answer was lost is deleted
// too.
func (r *runner) track(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.created = append(r.created, id)
}

// untrack forgets id once it was deleted.
func (r *runner) untrack(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, v := range r.created {
		if v == id {
			r.created = append(r.created[:i], r.created[i+1:]...)
			return
		}
	}
}

// create creates the new sandbox id and returns the time of the call and
// its retries.
func (r *runner) create(ctx context.Context, id string) (time.Duration, int, error) {
	return r.createN(ctx, id, maxAttempts)
}

// createN is create with at most attempts attempts.
func (r *runner) createN(ctx context.Context, id string, attempts int) (time.Duration, int, error) {
	r.track(id)
	d, retries, err := r.callN(ctx, attempts, func(ctx context.Context) error {
		_, err := r.cfg.Client.Create(ctx, id, sdk.CreateOptions{})
		return err
	})
	if err != nil {
		return d, retries, fmt.Errorf("creating sandbox %q: %w", id, err)
	}
	r.mu.Lock()
	r.report.Sandboxes++
	r.mu.Unlock()
	return d, retries, nil
}

// remove deletes sandbox id and returns the time of the call and its
// retries.
func (r *runner) remove(ctx context.Context, id string) (time.Duration, int, error) {
	d, retries, err := r.call(ctx, func(ctx context.Context) error {
		return r.cfg.Client.Delete(ctx, id)
	})
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return d, retries, fmt.Errorf("deleting sandbox %q: %w", id, err)
	}
	r.untrack(id)
	if err == nil {
		r.mu.Lock()
		r.report.Deleted++
		r.mu.Unlock()
	}
	return d, retries, nil
}

// ready creates sandbox id (in at most attempts attempts), waits until
// it runs commands and runs one command in it, unmeasured.
func (r *runner) ready(ctx context.Context, id string, attempts int) (*sdk.Sandbox, error) {
	if _, _, err := r.createN(ctx, id, attempts); err != nil {
		return nil, err
	}
	sb := r.cfg.Client.Sandbox(id)
	if err := sb.WaitReady(ctx, sdk.WaitOptions{}); err != nil {
		return nil, fmt.Errorf("waiting for sandbox %q: %w", id, err)
	}
	if _, _, err := r.exec(ctx, sb, cmdTrue); err != nil {
		return nil, err
	}
	return sb, nil
}

// warmSandbox prepares the sandbox the ensure, exec, stream and transfer
// sections use.
func (r *runner) warmSandbox(ctx context.Context) (*sdk.Sandbox, error) {
	r.progress("preparing a warm sandbox %s", r.id("main"))
	return r.ready(ctx, r.id("main"), maxAttempts)
}

// cleanup deletes every sandbox the run made, unless cfg.Keep, with a
// context that outlives ctx's cancellation.
func (r *runner) cleanup(ctx context.Context) {
	r.mu.Lock()
	ids := append([]string(nil), r.created...)
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if r.cfg.Keep {
		r.note("--keep: %d sandboxes left in place (ids starting %s-)", len(ids), r.cfg.IDPrefix)
		return
	}
	r.progress("deleting %d sandboxes", len(ids))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	slots := make(chan struct{}, 8)
	for _, id := range ids {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			if _, _, err := r.remove(ctx, id); err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, f := range failed {
		r.note("clean-up: %s", f)
	}
}
