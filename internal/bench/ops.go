package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// The commands measured.
var (
	cmdTrue   = []string{"true"}
	cmdEchoHi = []string{"echo", "hi"}
)

// opName names an exec of argv: "exec echo hi".
func opName(argv []string) string { return "exec " + strings.Join(argv, " ") }

// createSection creates CreateIterations new sandboxes one after another,
// deleting each (unless Keep) before the next.
func (r *runner) createSection(ctx context.Context) error {
	n := r.cfg.CreateIterations
	r.progress("create: %d new sandboxes", n)
	var created, deleted []time.Duration
	var createRetries, deleteRetries int
	for i := range n {
		id := r.id(fmt.Sprintf("c%d", i))
		d, retries, err := r.create(ctx, id)
		createRetries += retries
		if err != nil {
			return err
		}
		created = append(created, d)
		if r.cfg.Keep {
			continue
		}
		d, retries, err = r.remove(ctx, id)
		deleteRetries += retries
		if err != nil {
			return err
		}
		deleted = append(deleted, d)
	}
	r.report.Operations = append(r.report.Operations, Operation{Name: "create", Latency: Summarize(created), Retries: createRetries})
	if len(deleted) > 0 {
		r.report.Operations = append(r.report.Operations, Operation{Name: "delete", Latency: Summarize(deleted), Retries: deleteRetries})
	}
	return nil
}

// ensureSection creates the existing sandbox sb Iterations times.
func (r *runner) ensureSection(ctx context.Context, sb *sdk.Sandbox) error {
	n := r.cfg.Iterations
	r.progress("ensure: %d creates of an existing sandbox", n)
	op := Operation{Name: "ensure"}
	samples := make([]time.Duration, 0, n)
	for range n {
		d, retries, err := r.call(ctx, func(ctx context.Context) error {
			_, err := sb.Create(ctx, sdk.CreateOptions{})
			return err
		})
		op.Retries += retries
		if err != nil {
			return err
		}
		samples = append(samples, d)
	}
	op.Latency = Summarize(samples)
	r.report.Operations = append(r.report.Operations, op)
	return nil
}

// execSection measures exec of true and of echo hi, each call followed
// by the same command run with os/exec when cfg.Bare is set.
func (r *runner) execSection(ctx context.Context, sb *sdk.Sandbox) error {
	for _, argv := range [][]string{cmdTrue, cmdEchoHi} {
		r.progress("%s: %d calls", opName(argv), r.cfg.Iterations)
		op, err := r.measure(ctx, opName(argv),
			func(ctx context.Context) (time.Duration, int, error) { return r.exec(ctx, sb, argv) },
			func(ctx context.Context) (time.Duration, error) { return bareExec(ctx, argv) })
		if err != nil {
			return err
		}
		r.report.Operations = append(r.report.Operations, op)
	}
	return nil
}

// streamSection measures the time from the start of a streamed echo hi
// to its first stdout event.
func (r *runner) streamSection(ctx context.Context, sb *sdk.Sandbox) error {
	if ok, err := r.cfg.Client.Supports(ctx, sdk.ExtExecStream); err == nil && !ok {
		r.note("stream first byte: the backend does not advertise exec.stream; the SDK fell back to exec, so it is the time of a whole exec")
	}
	r.progress("stream first byte: %d calls", r.cfg.Iterations)
	op, err := r.measure(ctx, "stream first byte",
		func(ctx context.Context) (time.Duration, int, error) { return r.firstByte(ctx, sb, cmdEchoHi) },
		func(ctx context.Context) (time.Duration, error) { return bareFirstByte(ctx, cmdEchoHi) })
	if err != nil {
		return err
	}
	r.report.Operations = append(r.report.Operations, op)
	return nil
}

// measure runs call Iterations times (after a few unmeasured warm-up
// calls), each followed by bare when cfg.Bare is set, and summarises.
func (r *runner) measure(ctx context.Context, name string,
	call func(context.Context) (time.Duration, int, error),
	bare func(context.Context) (time.Duration, error)) (Operation, error) {
	n := r.cfg.Iterations
	op := Operation{Name: name}
	for range min(3, n) {
		if _, _, err := call(ctx); err != nil {
			return op, err
		}
	}
	samples := make([]time.Duration, 0, n)
	var bareSamples []time.Duration
	for range n {
		d, retries, err := call(ctx)
		op.Retries += retries
		if err != nil {
			return op, err
		}
		samples = append(samples, d)
		if r.cfg.Bare == "" {
			continue
		}
		bd, err := bare(ctx)
		if err != nil {
			return op, fmt.Errorf("bare %s: %w", name, err)
		}
		bareSamples = append(bareSamples, bd)
	}
	op.Latency = Summarize(samples)
	if len(bareSamples) > 0 {
		s := Summarize(bareSamples)
		op.Bare = &s
		if s.P50Ms > 0 {
			op.Ratio = op.Latency.P50Ms / s.P50Ms
		}
	}
	return op, nil
}

// exec runs argv in sb and fails unless it exits 0.
func (r *runner) exec(ctx context.Context, sb *sdk.Sandbox, argv []string) (time.Duration, int, error) {
	return r.call(ctx, func(ctx context.Context) error {
		res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: argv})
		if err != nil {
			return fmt.Errorf("exec %s in %q: %w", strings.Join(argv, " "), sb.ID(), err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("exec %s in %q: exit code %d: %s", strings.Join(argv, " "), sb.ID(), res.ExitCode, strings.TrimSpace(res.Stderr))
		}
		return nil
	})
}

// firstByte streams argv in sb and returns the time until its first
// stdout event.
func (r *runner) firstByte(ctx context.Context, sb *sdk.Sandbox, argv []string) (time.Duration, int, error) {
	var first time.Duration
	_, retries, err := r.call(ctx, func(ctx context.Context) error {
		first = 0
		var once sync.Once
		start := time.Now()
		res, err := sb.ExecStream(ctx, sdk.ExecRequest{Cmd: argv}, sdk.StreamOptions{
			OnStdout: func([]byte) { once.Do(func() { first = time.Since(start) }) },
		})
		if err != nil {
			return fmt.Errorf("exec stream %s in %q: %w", strings.Join(argv, " "), sb.ID(), err)
		}
		if res.ExitCode != 0 || first == 0 {
			return fmt.Errorf("exec stream %s in %q: exit code %d, no stdout event", strings.Join(argv, " "), sb.ID(), res.ExitCode)
		}
		return nil
	})
	return first, retries, err
}

// bareExec runs argv with os/exec on this host, collecting its output as
// the backend does, and returns how long it took.
func bareExec(ctx context.Context, argv []string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if _, err := cmd.Output(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// bareFirstByte starts argv with os/exec and returns the time until the
// first byte of its stdout.
func bareFirstByte(ctx context.Context, argv []string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var b [1]byte
	_, rerr := io.ReadFull(out, b[:])
	d := time.Since(start)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, fmt.Errorf("%s printed nothing: %w", strings.Join(argv, " "), rerr)
	}
	return d, nil
}
