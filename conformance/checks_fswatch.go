package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// watchLatency is how soon after the command that made a change has
// answered a watch should report it. On a loaded machine the bound is the
// command's own round trip when that is longer: a report slower than a
// whole exec is a deviation, a scheduler's hiccup is not.
const watchLatency = 200 * time.Millisecond

// watchWait bounds the wait for an event that must come.
const watchWait = 3 * time.Second

// keyWatchLatency names changes reported later than watchLatency.
const keyWatchLatency = "watch-latency"

// keyWatchReady names watch streams that do not start with a ready
// event (every watch check sees it; it is named once).
const keyWatchReady = "watch-ready-first"

// startWatch opens a watch of dir and waits for its ready event, which
// must come first. A watch that is refused or does not start with ready
// is a deviation every watch check sees, named once. The caller closes
// the stream.
func startWatch(ctx context.Context, env *Env, id, dir string, recursive bool) (*watchStream, error) {
	w, x, err := env.openWatch(ctx, id, dir, recursive)
	if err != nil {
		return nil, err
	}
	x.judge()
	if w == nil {
		return nil, fmt.Errorf("watch %s: %w", dir, expectSuccess(x))
	}
	// The stream is closed before x is shown: its reader has ended.
	notReady := func(observed string, err error) error {
		return &finding{key: keyWatchReady, req: Must, anchor: anchorFSWatch, aspect: aspectBody, x: x,
			title:    "watch streams do not start with a ready event",
			observed: observed, expected: "event: ready first", err: err}
	}
	if ct := x.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		w.close()
		return nil, notReady(fmt.Sprintf("Content-Type %q", ct), fmt.Errorf("watch answered Content-Type %q, want text/event-stream\n%s", ct, x))
	}
	ev, ok := w.next(ctx, watchWait)
	if ok && ev.Event == "ready" {
		return w, nil
	}
	w.close()
	switch {
	case !ok:
		return nil, notReady("no event", fmt.Errorf("no ready event within %s of the watch's answer\n%s", watchWait, x))
	default:
		return nil, notReady(fmt.Sprintf("event %q first", ev.Event), fmt.Errorf("the first event is %q (data %q), want ready\n%s", ev.Event, ev.Data, x))
	}
}

// awaitChange waits for the change ok describes after what; its error
// names what and shows the stream.
func awaitChange(ctx context.Context, w *watchStream, what string, ok func(change) bool) (time.Time, []change, error) {
	_, at, seen, err := w.waitChange(ctx, watchWait, ok)
	if err != nil {
		return at, seen, ownFinding(w.shown(), aspectBody, "changes: "+showChanges(seen), what,
			fmt.Errorf("%s: %w\n%s", what, err, w.shown()))
	}
	return at, seen, nil
}

func is(typ, p string) func(change) bool {
	return func(c change) bool { return c.Type == typ && c.Path == p }
}

func checkWatchCreate(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "watch-create")
	if err != nil {
		return err
	}
	const dir = "/workspace/w"
	if _, err := env.Sh(ctx, id, "mkdir -p "+dir); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	w, err := startWatch(ctx, env, id, dir, false)
	if err != nil {
		return err
	}
	defer w.close()
	var errs []error
	// A file created by a command: timed from the command's answer.
	f := dir + "/made-by-exec.txt"
	sent := time.Now()
	if _, err := env.Sh(ctx, id, "echo hi > "+f); err != nil {
		return fmt.Errorf("create a file with a command: %w", err)
	}
	answered := time.Now()
	at, _, err := awaitChange(ctx, w, "a create event for "+f+", made by a command", is("create", f))
	if err != nil {
		errs = append(errs, err)
	} else {
		late := at.Sub(answered)
		bound := max(watchLatency, answered.Sub(sent))
		env.Notef("create of a file by a command reported %s after the command answered (%s after it was sent; %s is the bound)",
			max(late, 0).Round(time.Millisecond), at.Sub(sent).Round(time.Millisecond), bound.Round(time.Millisecond))
		if late > bound {
			errs = append(errs, &finding{key: keyWatchLatency, req: Should, anchor: anchorFSWatch, aspect: aspectNone, x: w.shown(),
				title:    fmt.Sprintf("watch reports a change later than %s (or the command's round trip, if longer) after the command that made it answered", watchLatency),
				observed: fmt.Sprintf("create reported %s after the command answered", late.Round(time.Millisecond)), expected: "within " + bound.Round(time.Millisecond).String(),
				err: fmt.Errorf("the create of %s was reported %s after the command answered, want within %s", f, late.Round(time.Millisecond), bound.Round(time.Millisecond))})
		}
	}
	// A directory made by a command.
	sub := dir + "/sub"
	if _, err := env.Sh(ctx, id, "mkdir "+sub); err != nil {
		return errors.Join(append(errs, fmt.Errorf("mkdir with a command: %w", err))...)
	}
	if _, seen, err := awaitChange(ctx, w, "a create event for the directory "+sub, is("create", sub)); err != nil {
		errs = append(errs, err)
	} else if !seen[len(seen)-1].IsDir {
		errs = append(errs, ownFinding(w.shown(), aspectBody, "isDir false", "isDir true",
			fmt.Errorf("the create event of the directory %s has isDir false\n%s", sub, w.shown())))
	}
	// A file written through the files API.
	api := dir + "/made-by-api.txt"
	if _, err := env.writeOK(ctx, id, api, []byte("api")); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if _, _, err := awaitChange(ctx, w, "a create event for "+api+", written through the files API", is("create", api)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// coalescedWrites bounds the write events 200 quick appends may give
// when they take less than a second; slower appends (a loaded machine)
// may give one more per 50 ms window they span.
const coalescedWrites = 20

// coalesceWindow is the contract's window for coalescing writes.
const coalesceWindow = 50 * time.Millisecond

func checkWatchEvents(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "watch-events")
	if err != nil {
		return err
	}
	const dir = "/workspace/e"
	if _, err := env.Sh(ctx, id, "mkdir -p "+dir); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	w, err := startWatch(ctx, env, id, dir, false)
	if err != nil {
		return err
	}
	defer w.close()
	var errs []error
	f, g := dir+"/c.txt", dir+"/d.txt"
	began := time.Now()
	if _, err := env.Sh(ctx, id, fmt.Sprintf(`: > %[1]s; i=0; while [ $i -lt 200 ]; do echo $i >> %[1]s; i=$((i+1)); done; mv %[1]s %[2]s`, f, g)); err != nil {
		return fmt.Errorf("append to a file with a command: %w", err)
	}
	// The appends lasted at most the command's round trip: beyond a
	// second, each 50 ms window they spanned may add an event.
	allowed := max(coalescedWrites, int(time.Since(began)/coalesceWindow)+2)
	// Everything up to the rename: the create and the coalesced writes.
	_, seen, err := awaitChange(ctx, w, "a rename event for "+f+" to "+g, func(c change) bool { return c.Type == "rename" })
	if err != nil {
		errs = append(errs, err)
	} else {
		r := seen[len(seen)-1]
		if r.Path != g || r.OldPath != f {
			errs = append(errs, ownFinding(w.shown(), aspectBody, fmt.Sprintf("rename %s from %q", r.Path, r.OldPath), fmt.Sprintf("rename %s from %s", g, f),
				fmt.Errorf("the rename inside the watched directory is reported as path %q oldPath %q, want %q and %q\n%s", r.Path, r.OldPath, g, f, w.shown())))
		}
		writes, creates := 0, 0
		for _, c := range seen {
			if c.Path == f && c.Type == "write" {
				writes++
			}
			if c.Path == f && c.Type == "create" {
				creates++
			}
		}
		env.Notef("200 appends gave %d write events", writes)
		if creates == 0 {
			errs = append(errs, ownFinding(w.shown(), aspectBody, "changes: "+showChanges(seen), "a create event for "+f,
				fmt.Errorf("no create event for %s before its rename (changes: %s)\n%s", f, showChanges(seen), w.shown())))
		}
		if writes > allowed {
			errs = append(errs, ownFinding(w.shown(), aspectBody, fmt.Sprintf("%d write events", writes), fmt.Sprintf("at most %d (coalesced within 50 ms)", allowed),
				fmt.Errorf("200 quick appends to %s gave %d write events, want at most %d: writes are not coalesced\n%s", f, writes, allowed, w.shown())))
		}
	}
	if _, err := env.Sh(ctx, id, "rm "+g); err != nil {
		return errors.Join(append(errs, fmt.Errorf("remove with a command: %w", err))...)
	}
	if _, _, err := awaitChange(ctx, w, "a remove event for "+g, is("remove", g)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkWatchRecursive(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "watch-recursive")
	if err != nil {
		return err
	}
	const dir = "/workspace/r"
	if _, err := env.Sh(ctx, id, "mkdir -p "+dir+"/pre/deeper"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	w, err := startWatch(ctx, env, id, dir, true)
	if err != nil {
		return err
	}
	defer w.close()
	var errs []error
	pre := dir + "/pre/deeper/p.txt"
	if _, err := env.Sh(ctx, id, "touch "+pre); err != nil {
		return fmt.Errorf("create a file with a command: %w", err)
	}
	if _, _, err := awaitChange(ctx, w, "a create event for "+pre+", two levels below the watched directory", is("create", pre)); err != nil {
		errs = append(errs, err)
	}
	sub := dir + "/new-sub"
	if _, err := env.Sh(ctx, id, "mkdir "+sub); err != nil {
		return errors.Join(append(errs, fmt.Errorf("mkdir with a command: %w", err))...)
	}
	if _, _, err := awaitChange(ctx, w, "a create event for the new directory "+sub, is("create", sub)); err != nil {
		return errors.Join(append(errs, err)...)
	}
	deep := sub + "/deep.txt"
	if _, err := env.Sh(ctx, id, "echo deep > "+deep); err != nil {
		return errors.Join(append(errs, fmt.Errorf("create a file with a command: %w", err))...)
	}
	if _, _, err := awaitChange(ctx, w, "a create event for "+deep+", in a directory made after the watch started", is("create", deep)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkWatchErrors(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "watch-errors")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "touch /workspace/file"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	var errs []error
	for _, c := range []struct {
		p    string
		code int
	}{{"/workspace/missing-dir", http.StatusNotFound}, {"/workspace/file", http.StatusConflict}} {
		w, x, err := env.openWatch(ctx, id, c.p, false)
		if w != nil {
			w.close()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectFSError(x, c.p, c.code); err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", c.p, err))
		}
	}
	return errors.Join(errs...)
}
