package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// outputWait bounds the read of an output stream that must end (the
// output of an ended process, follow=false).
const outputWait = 10 * time.Second

// numberedLines is the output of `seq`-like numbered lines "line-000\n"
// to "line-<n-1>\n" as replaySh prints them.
func numberedLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "line-%03d\n", i)
	}
	return b.Bytes()
}

// replaySh prints numberedLines(n), pausing now and then so that the
// output comes in several chunks.
func replaySh(n int) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do printf 'line-%%03d\n' $i; i=$((i+1)); if [ $((i %% 50)) -eq 0 ]; then sleep 0.05; fi; done`, n)
}

// judgeChunks checks the chunks of a stream read from offset from:
// contiguous from it, each output event's id the offset after it, each
// data schema-valid. It returns a finding per kind of fault, the first
// chunk that shows it and how many more do.
func judgeChunks(env *Env, out procOutput, from int64, x *Exchange) []error {
	type fault struct {
		observed, expected string
		err                error
		more               int
	}
	var kinds []string
	faults := map[string]*fault{}
	bad := func(kind, observed, expected string, err error) {
		if f := faults[kind]; f != nil {
			f.more++
			return
		}
		kinds = append(kinds, kind)
		faults[kind] = &fault{observed: observed, expected: expected, err: err}
	}
	next := from
	for i, c := range out.chunks {
		if err := env.run.contract.validateSchema("ProcessOutputChunk", []byte(c.event.Data)); err != nil {
			bad("schema", "output data "+clip(c.event.Data, 80), "a ProcessOutputChunk", fmt.Errorf("output event %d: data %w", i, err))
		}
		if (c.Data == nil) == (c.DataBase64 == nil) {
			bad("data", "output data "+clip(c.event.Data, 80), "exactly one of data and dataBase64", fmt.Errorf("output event %d has both or neither of data and dataBase64", i))
		}
		if int64(c.Offset) != next {
			bad("offset", fmt.Sprintf("chunk %d at offset %d", i, c.Offset), fmt.Sprintf("offset %d", next),
				fmt.Errorf("output event %d has offset %d, want %d (the offset after the previous chunk, or the offset asked for)", i, c.Offset, next))
		}
		next = int64(c.Offset) + int64(len(c.bytes))
		if !c.event.HasID || offsetID(c.event.ID) != next {
			bad("id", fmt.Sprintf("id %q after a chunk of %d bytes at %d", c.event.ID, len(c.bytes), c.Offset), fmt.Sprintf("id: %d", next),
				fmt.Errorf("output event %d (offset %d, %d bytes) has id %q, want %d, the offset after the chunk", i, c.Offset, len(c.bytes), c.event.ID, next))
		}
	}
	var errs []error
	for _, k := range kinds {
		f := faults[k]
		err := f.err
		if f.more > 0 {
			err = fmt.Errorf("%w (and %d more output events)", err, f.more)
		}
		errs = append(errs, ownFinding(x, aspectBody, f.observed, f.expected, fmt.Errorf("%w\n%s", err, x)))
	}
	return errs
}

func checkProcOutputReplay(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-replay")
	if err != nil {
		return err
	}
	const lines = 200
	whole := numberedLines(lines)
	p, _, err := env.startProcOK(ctx, id, procSh(replaySh(lines)))
	if err != nil {
		return err
	}
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil || !e.ended() {
		return errors.Join(err, fmt.Errorf("the process did not end within %s", procWait))
	}
	var errs []error
	total := int64(len(whole))
	for _, c := range []struct {
		what  string
		q     outQuery
		start int64
	}{
		{"from 0", outQuery{}, 0},
		{"from=1000", outQuery{from: ptr[int64](1000)}, 1000},
		{"from=100 with Last-Event-ID: 1234 (which wins)", outQuery{from: ptr[int64](100), lastEventID: "1234"}, 1234},
		{"Last-Event-ID: " + strconv.FormatInt(total, 10) + ", the end", outQuery{lastEventID: strconv.FormatInt(total, 10)}, total},
	} {
		b, err := env.readOutput(ctx, id, p.ID, c.q, outputWait)
		if b.x != nil {
			b.x.judge()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
			continue
		}
		if _, _, perr := ParseSSE(bytes.NewReader(b.x.Body)); perr != nil {
			errs = append(errs, ownFinding(b.x, aspectBody, clip(perr.Error(), 120), "a well-formed event stream",
				fmt.Errorf("%s: event stream grammar: %w\n%s", c.what, perr, b.x)))
		}
		for _, e := range judgeChunks(env, b.procOutput, c.start, b.x) {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, e))
		}
		if got := b.bytes(); !bytes.Equal(got, whole[c.start:]) {
			errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("%d bytes %q", len(got), clip(string(got), 40)),
				fmt.Sprintf("the %d bytes from offset %d", total-c.start, c.start),
				fmt.Errorf("%s: the output events hold %d bytes starting %q, want the %d bytes of the output from offset %d, starting %q\n%s",
					c.what, len(got), clip(string(got), 40), total-c.start, c.start, clip(string(whole[c.start:]), 40), b.x)))
		}
		if len(b.truncated) > 0 {
			errs = append(errs, ownFinding(b.x, aspectBody, "a truncated event", "none", fmt.Errorf("%s: a truncated event though nothing was dropped\n%s", c.what, b.x)))
		}
	}
	return errors.Join(errs...)
}

func checkProcOutputFollow(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-follow")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procSh(`echo first; while [ ! -e gate ]; do sleep 0.02; done; echo second; exit 5`))
	if err != nil {
		return err
	}
	s, x, err := env.openOutput(ctx, id, p.ID, outQuery{})
	if err != nil {
		return err
	}
	x.judge()
	if s == nil {
		return expectSuccess(x)
	}
	defer s.close()
	var got []byte
	seen := func(ev outEvent) bool {
		if ev.Type == "output" {
			if out, err := decodeOutput([]outEvent{ev}); err == nil {
				got = append(got, out.bytes()...)
			}
		}
		return bytes.Contains(got, []byte("first\n")) || ev.Type == "exit"
	}
	events, ok := s.readUntil(ctx, outputWait, seen)
	if !ok {
		return ownFinding(s.shown(), aspectBody, fmt.Sprintf("output %q", got), "first\\n", fmt.Errorf("the output printed before the client attached did not arrive within %s\n%s", outputWait, s.shown()))
	}
	if _, err := env.Sh(ctx, id, "touch gate"); err != nil {
		return err
	}
	opened := time.Now()
	more, ended := s.readAll(ctx, outputWait)
	events = append(events, more...)
	var errs []error
	for _, ev := range more {
		if ev.Type == "output" {
			env.Notef("output printed after the client attached arrived %s after the command that let it print answered", ev.at.Sub(opened).Round(time.Millisecond))
			break
		}
	}
	shown := s.shown()
	out, err := decodeOutput(events)
	if err != nil {
		return ownFinding(shown, aspectBody, clip(err.Error(), 120), "output events as the contract describes", fmt.Errorf("%w\n%s", err, shown))
	}
	want(&errs, "output followed", string(out.bytes()), "first\nsecond\n", shown)
	if err := expectExitLast(events, out, shown); err != nil {
		errs = append(errs, err)
	} else {
		if err := env.run.contract.validateSchema("Process", []byte(events[out.exitAt].Data)); err != nil {
			errs = append(errs, ownFinding(shown, aspectBody, "exit data "+clip(events[out.exitAt].Data, 80), "a Process", fmt.Errorf("exit event data %w\n%s", err, shown)))
		}
		want(&errs, "state in the exit event", out.exit.State, "exited", shown)
		want(&errs, "exitCode in the exit event", out.exit.exit(), 5, shown)
		want(&errs, "outputBytes in the exit event", int64(out.exit.OutputBytes), 13, shown)
		if !ended {
			errs = append(errs, streamOpenFinding(shown, fmt.Errorf("the stream did not end after its exit event\n%s", shown)))
		}
	}
	if out.end {
		errs = append(errs, ownFinding(shown, aspectBody, "an end event", "no end event when following", fmt.Errorf("an end event in a followed stream\n%s", shown)))
	}
	return errors.Join(errs...)
}

func checkProcOutputEnd(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-end")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procSh("echo ready; exec sleep 60"))
	if err != nil {
		return err
	}
	if _, err := env.awaitOutput(ctx, id, p.ID, 6, procWait); err != nil {
		return err
	}
	var errs []error
	b, err := env.readOutput(ctx, id, p.ID, outQuery{follow: ptr(false)}, outputWait)
	if b.x != nil {
		b.x.judge()
	}
	switch {
	case err != nil:
		errs = append(errs, err)
	case !b.ended:
		errs = append(errs, ownFinding(b.x, aspectBody, "the stream stayed open", "an end event, then the end of the stream",
			fmt.Errorf("follow=false on a running process: the stream did not end within %s\n%s", outputWait, b.x)))
	default:
		want(&errs, "output with follow=false", string(b.bytes()), "ready\n", b.x)
		last := ""
		if len(b.events) > 0 {
			last = b.events[len(b.events)-1].Type
		}
		if !b.end || last != "end" {
			errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("last event %q", last), "end last",
				fmt.Errorf("follow=false on a running process: the last event is %q, want end\n%s", last, b.x)))
		}
		if b.exit != nil {
			errs = append(errs, ownFinding(b.x, aspectBody, "an exit event", "none while it runs", fmt.Errorf("an exit event for a running process\n%s", b.x)))
		}
	}
	// Once it has ended, follow=false ends with exit.
	if _, err := env.killProc(ctx, id, p.ID); err != nil {
		return errors.Join(append(errs, err)...)
	}
	b, err = env.readOutput(ctx, id, p.ID, outQuery{follow: ptr(false)}, outputWait)
	switch {
	case err != nil:
		errs = append(errs, err)
	case b.end:
		errs = append(errs, ownFinding(b.x, aspectBody, "an end event", "exit, no end",
			fmt.Errorf("follow=false on an ended process: an end event, want exit\n%s", b.x)))
	default:
		if err := expectExitLast(b.events, b.procOutput, b.x); err != nil {
			errs = append(errs, fmt.Errorf("follow=false on an ended process: %w", err))
		}
	}
	return errors.Join(errs...)
}

// maxTruncatedTest bounds the processOutputBytes proc/output-truncated
// overflows.
const maxTruncatedTest = 8 << 20

// pageLine is the length of the lines truncSh prints.
const pageLine = 4096

// truncSh prints n lines of pageLine bytes, each starting with its
// number; truncLines is what it prints.
func truncSh(n int) string {
	return fmt.Sprintf(`b=$(head -c %d /dev/zero | tr '\0' x); i=0; while [ $i -lt %d ]; do printf '%%06d:%%s\n' $i "$b"; i=$((i+1)); done`, pageLine-8, n)
}

func truncLines(n int) []byte {
	fill := strings.Repeat("x", pageLine-8)
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%06d:%s\n", i, fill)
	}
	return b.Bytes()
}

func checkProcOutputTruncated(ctx context.Context, env *Env) error {
	lp := limits(env).ProcessOutputBytes
	if lp == nil {
		return SkipUnclaimed("the backend does not advertise limits.processOutputBytes")
	}
	limit := *lp
	if limit > maxTruncatedTest || limit < 1 {
		return Skip(fmt.Sprintf("limits.processOutputBytes %d is not between 1 and %d: too costly to overflow", limit, maxTruncatedTest))
	}
	id, err := env.NewSandbox(ctx, "proc-trunc")
	if err != nil {
		return err
	}
	n := int(limit*3/2/pageLine) + 2
	whole := truncLines(n)
	total := int64(len(whole))
	p, _, err := env.startProcOK(ctx, id, procSh(truncSh(n)))
	if err != nil {
		return err
	}
	e, ex, err := env.waitEnd(ctx, id, p.ID, 30*time.Second)
	if err != nil || !e.ended() {
		return errors.Join(err, fmt.Errorf("the process printing %d bytes did not end within 30s", total))
	}
	var errs []error
	want(&errs, fmt.Sprintf("outputBytes after printing %d bytes", total), int64(e.OutputBytes), total, ex)
	start := int64(e.OutputStart)
	if start <= 0 || start < total-limit || start > total {
		errs = append(errs, ownFinding(ex, aspectBody, fmt.Sprintf("outputStart %d", start), fmt.Sprintf("between %d and %d", total-limit, total),
			fmt.Errorf("after %d bytes of output with processOutputBytes %d, the record's outputStart is %d, want the oldest offset kept, between %d and %d\n%s",
				total, limit, start, total-limit, total, ex)))
		return errors.Join(errs...)
	}
	b, err := env.readEnded(ctx, id, p.ID, 0, 30*time.Second)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	b.x.judge()
	switch {
	case len(b.truncated) != 1:
		errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("%d truncated events", len(b.truncated)), "one truncated event first",
			fmt.Errorf("reading from 0 after %d bytes of output (processOutputBytes %d): %d truncated events, want one before the output\n%s", total, limit, len(b.truncated), b.x)))
	case b.events[0].Type != "truncated":
		errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("first event %q", b.events[0].Type), "truncated first",
			fmt.Errorf("the truncated event is not the first event\n%s", b.x)))
	default:
		if err := env.run.contract.validateSchema("ProcessOutputTruncated", []byte(b.events[0].Data)); err != nil {
			errs = append(errs, ownFinding(b.x, aspectBody, "truncated data "+clip(b.events[0].Data, 80), "a ProcessOutputTruncated", fmt.Errorf("truncated event data %w\n%s", err, b.x)))
		}
		t := b.truncated[0]
		want(&errs, "from in the truncated event", int64(t.From), 0, b.x)
		want(&errs, "outputStart in the truncated event (the record's)", int64(t.OutputStart), start, b.x)
	}
	if got := b.bytes(); b.first() != start || !bytes.Equal(got, whole[start:]) {
		errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("%d bytes from offset %d", len(got), b.first()), fmt.Sprintf("the %d bytes from outputStart %d", total-start, start),
			fmt.Errorf("after the truncated event, the output events hold %d bytes from offset %d, want the newest %d bytes, from outputStart %d\n%s", len(got), b.first(), total-start, start, b.x)))
	}
	// A read within what is kept has no truncated event.
	from := total - 100
	b, err = env.readEnded(ctx, id, p.ID, from, outputWait)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(b.truncated) != 0 || !bytes.Equal(b.bytes(), whole[from:]) {
		errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("%d truncated events, %d bytes", len(b.truncated), len(b.bytes())), "the last 100 bytes, no truncated event",
			fmt.Errorf("reading from %d, within the output kept: %d truncated events and %d bytes, want the last 100 bytes and no truncated event\n%s", from, len(b.truncated), len(b.bytes()), b.x)))
	}
	return errors.Join(errs...)
}

func checkProcOutputBinary(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-binary")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procSh(`printf 'h\303\251llo\n'; sleep 0.1; printf 'ok\377\376\001\200end\n'`))
	if err != nil {
		return err
	}
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil || !e.ended() {
		return errors.Join(err, fmt.Errorf("the process did not end within %s", procWait))
	}
	b, err := env.readEnded(ctx, id, p.ID, 0, outputWait)
	if err != nil {
		return err
	}
	b.x.judge()
	var errs []error
	wantBytes := []byte("h\xc3\xa9llo\nok\xff\xfe\x01\x80end\n")
	if got := b.bytes(); !bytes.Equal(got, wantBytes) {
		errs = append(errs, ownFinding(b.x, aspectBody, fmt.Sprintf("bytes %q", got), fmt.Sprintf("bytes %q", wantBytes),
			fmt.Errorf("the output events hold %q, want the bytes printed, %q\n%s", got, wantBytes, b.x)))
	}
	for i, c := range b.chunks {
		switch {
		case c.DataBase64 == nil && c.Data == nil:
			errs = append(errs, ownFinding(b.x, aspectBody, "output data "+clip(c.event.Data, 80), "data or dataBase64",
				fmt.Errorf("output event %d has neither data nor dataBase64\n%s", i, b.x)))
		case c.DataBase64 != nil && utf8.Valid(c.bytes):
			errs = append(errs, ownFinding(b.x, aspectBody, "dataBase64 of UTF-8 "+clip(string(c.bytes), 40), "data",
				fmt.Errorf("output event %d carries valid UTF-8 %q as dataBase64, want data\n%s", i, c.bytes, b.x)))
		}
	}
	return errors.Join(errs...)
}

func checkProcOutputStreams(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-streams")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procSh(`echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; printf tail >&2`))
	if err != nil {
		return err
	}
	if e, _, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil || !e.ended() {
		return errors.Join(err, fmt.Errorf("the process did not end within %s", procWait))
	}
	b, err := env.readEnded(ctx, id, p.ID, 0, outputWait)
	if err != nil {
		return err
	}
	b.x.judge()
	var errs []error
	want(&errs, "stdout chunks, concatenated", b.stream("stdout"), "out1\nout2\n", b.x)
	want(&errs, "stderr chunks, concatenated", b.stream("stderr"), "err1\ntail", b.x)
	var order []string
	for _, c := range b.chunks {
		if c.Stream != "stdout" && c.Stream != "stderr" {
			errs = append(errs, ownFinding(b.x, aspectBody, "stream "+c.Stream, "stdout or stderr", fmt.Errorf("a chunk labelled %q, want stdout or stderr\n%s", c.Stream, b.x)))
		}
		order = append(order, c.Stream+" "+strconv.Quote(string(c.bytes)))
	}
	env.Notef("chunks: %s", strings.Join(order, ", "))
	return errors.Join(errs...)
}

func checkProcSurvivesDisconnect(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-survive")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procSh(`echo one; while [ ! -e gate ]; do sleep 0.02; done; echo two`))
	if err != nil {
		return err
	}
	// A client follows the output, then goes away.
	s, x, err := env.openOutput(ctx, id, p.ID, outQuery{})
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("output: %w", expectSuccess(x))
	}
	var got []byte
	_, ok := s.readUntil(ctx, outputWait, func(ev outEvent) bool {
		if out, err := decodeOutput([]outEvent{ev}); err == nil {
			got = append(got, out.bytes()...)
		}
		return len(got) >= 4 || ev.Type == "exit"
	})
	s.close()
	if !ok || string(got) != "one\n" {
		return fmt.Errorf("the first output did not arrive: %q", got)
	}
	// So does a client waiting for it.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if resp, err := env.Client.WaitProcess(wctx, id, p.ID, nil); err == nil {
		resp.Body.Close()
	}
	cancel()
	var errs []error
	r, rx, err := env.getProcOK(ctx, id, p.ID)
	if err != nil {
		return err
	}
	if r.State != "running" {
		errs = append(errs, ownFinding(rx, aspectNone, "state "+r.State, "running",
			fmt.Errorf("after its output stream and a wait were dropped, the process is %s (exit %d), want running\n%s", r.State, r.exit(), rx)))
	}
	// A new client resumes where the first stopped.
	s, x, err = env.openOutput(ctx, id, p.ID, outQuery{from: ptr[int64](4)})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if s == nil {
		return errors.Join(append(errs, fmt.Errorf("reattach: %w", expectSuccess(x)))...)
	}
	defer s.close()
	if _, err := env.Sh(ctx, id, "touch gate"); err != nil {
		return errors.Join(append(errs, err)...)
	}
	events, ended := s.readAll(ctx, outputWait)
	shown := s.shown()
	out, err := decodeOutput(events)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("reattach: %w\n%s", err, shown))...)
	}
	want(&errs, "output after reattaching from offset 4", string(out.bytes()), "two\n", shown)
	if !ended {
		errs = append(errs, streamOpenFinding(shown, fmt.Errorf("the reattached stream did not end within %s of the process's end\n%s", outputWait, shown)))
	}
	if e, wx, err := env.waitEnd(ctx, id, p.ID, procWait); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "exitCode of the reattached process", e.exit(), 0, wx)
	}
	return errors.Join(errs...)
}

// keyProcOpen names output streams of ended processes that stay open
// (every check that reads one to its end sees it; it is named once).
const keyProcOpen = "process-output-open"

// streamOpenFinding is the finding of an output stream that stayed open
// though its process had ended.
func streamOpenFinding(x *Exchange, err error) error {
	return &finding{key: keyProcOpen, req: Must, anchor: anchorProcOutput, aspect: aspectNone, x: x,
		title:    "output streams of processes that ended stay open",
		observed: "the stream stayed open", expected: "the stream ends after the exit event", err: err}
}

// keyProcExit names output streams of ended processes without an exit
// event last (every check that reads one to its end sees it; it is named
// once).
const keyProcExit = "process-output-exit"

// expectExitLast checks that the last of events is the exit event.
func expectExitLast(events []outEvent, out procOutput, x *Exchange) error {
	if out.exit != nil && out.exitAt == len(events)-1 {
		return nil
	}
	observed := "no exit event"
	if out.exit != nil {
		observed = fmt.Sprintf("event %q after exit", events[len(events)-1].Type)
	}
	return &finding{key: keyProcExit, req: Must, anchor: anchorProcOutput, aspect: aspectBody, x: x,
		title:    "output streams of processes that ended do not end with an exit event",
		observed: observed, expected: "an exit event, last",
		err: fmt.Errorf("the output stream of a process that ended does not end with its exit event (%s)\n%s", observed, x)}
}
