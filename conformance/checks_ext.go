package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

func extChecks() []Check {
	return []Check{
		{ID: "info/shape", Level: LevelExtension, Capability: api.ExtInfo, Parallel: true,
			Requirement: Must, Operations: []string{"getInfo"}, Anchor: anchorInfo,
			Spec: "GET /v1/info: apiVersion v1, backend name and version, extensions including info",
			Run:  checkInfo},
		{ID: "sandbox/get", Level: LevelExtension, Capability: api.ExtSandboxesGet, Parallel: true,
			Requirement: Must, Operations: []string{"getSandbox"}, Anchor: anchorGet,
			Spec: "GET /v1/sandboxes/{sessionId}: SandboxStatus consistent with create, no expiry refresh, 404 unknown",
			Run:  checkGet},
		{ID: "sandbox/list-paging", Level: LevelExtension, Capability: api.ExtSandboxesList, Parallel: false,
			Requirement: Must, Operations: []string{"listSandboxes"}, Anchor: anchorList,
			Spec: "GET /v1/sandboxes: ordered by session id, paged with pageSize/nextPageToken, 400 on bad paging",
			Run:  checkList},
		{ID: "exec/stream-events", Level: LevelExtension, Capability: api.ExtExecStream, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandboxStream"}, Anchor: anchorExecStream,
			Spec: "POST .../exec/stream: text/event-stream of stdout/stderr OutputChunks then one exit ExecResult equal to buffered exec",
			Run:  checkStream},
		{ID: "exec/stream-heartbeat", Level: LevelExtension, Capability: api.ExtExecStream, Parallel: true, Slow: true,
			Requirement: Must, Operations: []string{"execInSandboxStream"}, Anchor: anchorExecStream,
			Spec: "POST .../exec/stream: heartbeat comments at least every streamHeartbeatSeconds (15 when not advertised) while the command is silent",
			Run:  checkStreamHeartbeat},
		{ID: "exec/stream-errors", Level: LevelExtension, Capability: api.ExtExecStream, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandboxStream"}, Anchor: anchorExecStream,
			Spec: "POST .../exec/stream: errors before the stream are JSON (400 empty cmd, 404 unknown sandbox)",
			Run:  checkStreamErrors},
		{ID: "exec/flags-timed-out", Level: LevelExtension, Capability: api.ExtExecFlags, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtExecFlags}, Anchor: anchorTimedOut,
			Spec: "ExecResult.timedOut (exec.flags): true exactly when the timeout killed the command",
			Run:  checkFlagsTimedOut},
		{ID: "exec/flags-truncated", Level: LevelExtension, Capability: api.ExtExecFlags, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtExecFlags}, Anchor: anchorTruncated,
			Spec: "ExecResult.stdoutTruncated/stderrTruncated (exec.flags): true exactly when output was cut",
			Run:  checkFlagsTruncated},
		{ID: "exec/oom-killed", Level: LevelExtension, Capability: api.ExtExecFlags, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtExecFlags}, Anchor: anchorOOMKilled,
			Spec: "ExecResult.oomKilled (exec.flags): a command exceeding the sandbox's memoryLimit is killed with exit 137, oomKilled true and a note on stderr; the sandbox stays usable",
			Run:  checkOOMKilled},
		{ID: "sandbox/create-ttl-over-max", Level: LevelExtension, Capability: api.ExtInfo, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Extensions: []string{api.ExtInfo}, Anchor: anchorMaxTTL,
			Spec: "PUT /v1/sandboxes/{sessionId}: ttlSeconds above Info.limits.maxTtlSeconds is a 400 JSON Error naming ttlSeconds; the maximum itself is accepted",
			Run:  checkCreateTTLOverMax},
		{ID: "exec/timeout-over-max", Level: LevelExtension, Capability: api.ExtInfo, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtInfo}, Anchor: anchorMaxTimeout,
			Spec: "POST .../exec: timeoutSeconds above Info.limits.maxTimeoutSeconds is a 400 JSON Error naming timeoutSeconds; the maximum itself is accepted",
			Run:  checkTimeoutOverMax},
		{ID: "files/upload-too-large-413", Level: LevelExtension, Capability: api.ExtInfo, Parallel: true,
			Requirement: Must, Operations: []string{"uploadFiles"}, Extensions: []string{api.ExtInfo}, Anchor: anchorUploadTooBig,
			Spec: "POST .../files/upload: a body above Info.limits.maxUploadBytes is a 413 JSON Error, with or without Content-Length, and nothing of it is extracted",
			Run:  checkUploadTooLarge},
		{ID: "auth/bearer-required", Level: LevelExtension, Capability: api.ExtAuthBearer, Parallel: true,
			Requirement: Must, Extensions: []string{api.ExtAuthBearer}, Anchor: anchorBearer,
			Spec: "auth.bearer: /v1/ requests without or with a wrong token get 401 JSON Error; /healthz stays open",
			Run:  checkAuth},
		{ID: "exec/saturated-503", Level: LevelExtension, Capability: api.ExtInfo, Parallel: false,
			Requirement: Should, Operations: []string{"execInSandbox"}, Extensions: []string{api.ExtInfo}, Anchor: anchorExecBusy,
			Spec: fmt.Sprintf("POST .../exec: with Info.limits.maxConcurrentExecs commands running, one more is answered 503 JSON Error with Retry-After (seconds), not queued without bound (skipped above %d)", maxSaturated),
			Run:  checkSaturated},
	}
}

func checkInfo(ctx context.Context, env *Env) error {
	resp, err := env.Client.GetInfo(ctx)
	x, err := env.do(ctx, "GET /v1/info", resp, err)
	if err != nil {
		return err
	}
	x.judge()
	var info noxapi.Info
	if err := expectJSON(x, http.StatusOK, &info); err != nil {
		return err
	}
	var errs []error
	if info.APIVersion != "v1" {
		errs = append(errs, fmt.Errorf("apiVersion %q, want \"v1\"\n%s", info.APIVersion, x))
	}
	if info.Backend.Name == "" || info.Backend.Version == "" {
		errs = append(errs, fmt.Errorf("backend name and version must be non-empty\n%s", x))
	}
	if !slices.Contains(info.Extensions, api.ExtInfo) {
		errs = append(errs, fmt.Errorf("extensions must include %q (GET /v1/info answered)\n%s", api.ExtInfo, x))
	}
	if l := info.Limits; l != nil {
		if l.DefaultTTLSeconds != nil && l.MaxTTLSeconds != nil && *l.DefaultTTLSeconds > *l.MaxTTLSeconds {
			errs = append(errs, fmt.Errorf("limits: defaultTtlSeconds %d > maxTtlSeconds %d", *l.DefaultTTLSeconds, *l.MaxTTLSeconds))
		}
		if l.DefaultTimeoutSeconds != nil && l.MaxTimeoutSeconds != nil && *l.DefaultTimeoutSeconds > *l.MaxTimeoutSeconds {
			errs = append(errs, fmt.Errorf("limits: defaultTimeoutSeconds %d > maxTimeoutSeconds %d", *l.DefaultTimeoutSeconds, *l.MaxTimeoutSeconds))
		}
	}
	return errors.Join(errs...)
}

func checkGet(ctx context.Context, env *Env) error {
	id := env.ID("get")
	const ttl = 600
	pod, exp, _, err := createAndCheck(ctx, env, id, ttl, false)
	if err != nil {
		return err
	}
	st, x, err := getStatus(ctx, env, id, true)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "sessionId", st.SessionID, id, x)
	want(&errs, "podName (as create answered)", st.PodName, pod, x)
	want(&errs, "ttlSeconds", st.TTLSeconds, int32(ttl), x)
	if st.State != noxapi.Ready && st.State != noxapi.Pending {
		errs = append(errs, fmt.Errorf("state %q of a new sandbox, want ready or pending\n%s", st.State, x))
	}
	if st.LastActiveAt.Before(st.CreatedAt) {
		errs = append(errs, fmt.Errorf("lastActiveAt before createdAt\n%s", x))
	}
	if d := st.ExpiresAt.Sub(st.LastActiveAt); d < ttl*time.Second-time.Second || d > ttl*time.Second+time.Second {
		errs = append(errs, fmt.Errorf("expiresAt - lastActiveAt = %s, want ttlSeconds (%ds)\n%s", d, ttl, x))
	}
	if !within(st.ExpiresAt, exp, time.Second) {
		errs = append(errs, fmt.Errorf("expiresAt %s differs from create's %s\n%s", st.ExpiresAt.Format(time.RFC3339Nano), exp.Format(time.RFC3339Nano), x))
	}
	if err := sleep(ctx, 1100*time.Millisecond); err != nil {
		return err
	}
	st2, x2, err := getStatus(ctx, env, id, true)
	if err != nil {
		errs = append(errs, err)
	} else if !st2.ExpiresAt.Equal(st.ExpiresAt) {
		errs = append(errs, fmt.Errorf("get refreshed the expiry (it must not): %s then %s\n%s", st.ExpiresAt.Format(time.RFC3339Nano), st2.ExpiresAt.Format(time.RFC3339Nano), x2))
	}
	unknown := env.ID("never-created")
	env.Track(unknown)
	resp, err := env.Client.GetSandbox(ctx, unknown)
	if ux, err := env.do(ctx, "get "+unknown, resp, err); err != nil {
		errs = append(errs, err)
	} else if err := expectUnknown(ux); err != nil {
		errs = append(errs, fmt.Errorf("get of an unknown sandbox: %w", err))
	}
	return errors.Join(errs...)
}

func checkList(ctx context.Context, env *Env) error {
	var mine []string
	for _, n := range []string{"list-b", "list-a", "list-c"} {
		id, err := env.NewSandbox(ctx, n)
		if err != nil {
			return err
		}
		mine = append(mine, id)
	}
	var errs []error
	var seen []string
	var token *string
	for page := 0; ; page++ {
		if page > 10000 {
			errs = append(errs, errors.New("more than 10000 pages of size 1: nextPageToken never ends"))
			break
		}
		size := int32(1)
		resp, err := env.Client.ListSandboxes(ctx, &noxapi.ListSandboxesParams{PageSize: &size, PageToken: token})
		x, err := env.do(ctx, "list sandboxes", resp, err)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		x.judge()
		var l lenientList
		if err := expectJSON(x, http.StatusOK, &l); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if len(l.Items) > 1 {
			errs = append(errs, fmt.Errorf("page of %d items with pageSize 1\n%s", len(l.Items), x))
		}
		for _, it := range l.Items {
			seen = append(seen, it.SessionID)
		}
		if l.NextPageToken == nil {
			break
		}
		if *l.NextPageToken == "" {
			errs = append(errs, fmt.Errorf("empty nextPageToken (absent means the last page)\n%s", x))
			break
		}
		token = l.NextPageToken
	}
	for _, id := range mine {
		if n := countOf(seen, id); n != 1 {
			errs = append(errs, fmt.Errorf("sandbox %s listed %d times over the pages, want once", id, n))
		}
	}
	var ours []string
	for _, s := range seen {
		if strings.HasPrefix(s, env.Prefix) {
			ours = append(ours, s)
		}
	}
	if !slices.IsSorted(seen) {
		errs = append(errs, fmt.Errorf("sandboxes not ordered by session id across pages: %q", ours))
	}
	for _, q := range []string{"pageSize=0", "pageSize=1001", "pageSize=abc", "pageToken=%21%21not-a-token%21%21"} {
		x, err := env.Raw(ctx, http.MethodGet, "/v1/sandboxes?"+q, "", nil, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, fmt.Errorf("list with %s: %w", q, err))
		}
	}
	return errors.Join(errs...)
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// stream runs req through exec/stream and parses the events.
func stream(ctx context.Context, env *Env, id string, req noxapi.ExecRequest) ([]SSEEvent, int, *Exchange, error) {
	resp, err := env.Client.ExecInSandboxStream(ctx, id, req)
	if err != nil {
		return nil, 0, nil, transportError(ctx, "exec stream in "+id, err)
	}
	defer resp.Body.Close()
	x := env.exchange(resp)
	x.judge()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, x, expectStatus(x, http.StatusOK)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return nil, 0, x, fmt.Errorf("Content-Type %q, want text/event-stream\n%s", ct, x)
	}
	events, comments, perr := ParseSSE(resp.Body)
	if perr != nil {
		perr = fmt.Errorf("event stream grammar: %w\n%s", perr, x)
	}
	return events, comments, x, perr
}

// streamResult checks the events of one stream and returns the exit
// result and the concatenated output.
func streamResult(env *Env, events []SSEEvent, x *Exchange) (*noxapi.ExecResult, string, string, error) {
	var errs []error
	var stdout, stderr strings.Builder
	var exit *noxapi.ExecResult
	exits := 0
	for i, ev := range events {
		switch ev.Event {
		case "stdout", "stderr":
			if err := env.run.contract.validateSchema("OutputChunk", []byte(ev.Data)); err != nil {
				errs = append(errs, fmt.Errorf("event %d (%s) data %q %w", i, ev.Event, ev.Data, err))
				continue
			}
			var c noxapi.OutputChunk
			_ = json.Unmarshal([]byte(ev.Data), &c)
			if ev.Event == "stdout" {
				stdout.WriteString(c.Data)
			} else {
				stderr.WriteString(c.Data)
			}
			if exits > 0 {
				errs = append(errs, fmt.Errorf("event %d (%s) after the exit event", i, ev.Event))
			}
		case "exit":
			exits++
			if err := env.run.contract.validateSchema("ExecResult", []byte(ev.Data)); err != nil {
				errs = append(errs, fmt.Errorf("exit event data %q %w", ev.Data, err))
				continue
			}
			var r noxapi.ExecResult
			_ = json.Unmarshal([]byte(ev.Data), &r)
			exit = &r
		case "error":
			errs = append(errs, fmt.Errorf("event %d: the backend failed during the stream: %s", i, ev.Data))
		default:
			errs = append(errs, fmt.Errorf("event %d has type %q, want stdout, stderr, exit or error", i, ev.Event))
		}
	}
	if exits != 1 {
		errs = append(errs, fmt.Errorf("%d exit events, want exactly one", exits))
	} else if events[len(events)-1].Event != "exit" {
		errs = append(errs, errors.New("the exit event is not the last event"))
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("the stream was:\n%s", x))
	}
	return exit, stdout.String(), stderr.String(), errors.Join(errs...)
}

func checkStream(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "stream")
	if err != nil {
		return err
	}
	req := argv("sh", "-c", `echo out1; echo err1 >&2; sleep 0.3; printf 'a\r\nb\n\nünï\n'; printf tail >&2; exit 3`)
	events, _, x, err := stream(ctx, env, id, req)
	if err != nil {
		return err
	}
	exit, so, se, err := streamResult(env, events, x)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if exit == nil {
		return errors.Join(errs...)
	}
	const wantOut, wantErr = "out1\na\r\nb\n\nünï\n", "err1\ntail"
	want(&errs, "stdout events, concatenated", so, wantOut, x)
	want(&errs, "stderr events, concatenated", se, wantErr, x)
	want(&errs, "exit event stdout", exit.Stdout, wantOut, x)
	want(&errs, "exit event stderr", exit.Stderr, wantErr, x)
	want(&errs, "exit event exitCode", exit.ExitCode, 3, x)
	// Same semantics as the buffered exec.
	res, bx, err := env.ExecOK(ctx, id, req)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if res.ExitCode != exit.ExitCode || res.Stdout != exit.Stdout || res.Stderr != exit.Stderr {
		errs = append(errs, fmt.Errorf("buffered exec of the same command differs from the exit event\nstream:\n%s\nbuffered:\n%s", x, bx))
	}
	// A timeout ends the stream with exit 124 too.
	treq := argv("sh", "-c", "echo started; sleep 30")
	treq.TimeoutSeconds = ptr[int32](1)
	start := time.Now()
	tev, _, tx, err := stream(ctx, env, id, treq)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if took := time.Since(start); took > time.Second+env.cfg.TimeoutGrace {
		errs = append(errs, fmt.Errorf("stream of a command with timeoutSeconds 1 lasted %s", took.Round(time.Millisecond)))
	}
	texit, tso, _, err := streamResult(env, tev, tx)
	if err != nil {
		errs = append(errs, err)
	}
	if texit != nil {
		want(&errs, "exit event exitCode after a timeout", texit.ExitCode, 124, tx)
		want(&errs, "stdout events before the timeout", tso, "started\n", tx)
	}
	return errors.Join(errs...)
}

func checkStreamErrors(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "stream-err")
	if err != nil {
		return err
	}
	var errs []error
	x, err := env.Raw(ctx, http.MethodPost, "/v1/sandboxes/"+id+"/exec/stream", "application/json", []byte(`{"cmd":[]}`), true)
	if err != nil {
		errs = append(errs, err)
	} else if err := expectError(x, http.StatusBadRequest); err != nil {
		errs = append(errs, fmt.Errorf("empty cmd: %w", err))
	}
	unknown := env.ID("never-created")
	env.Track(unknown)
	x, err = env.Raw(ctx, http.MethodPost, "/v1/sandboxes/"+unknown+"/exec/stream", "application/json", []byte(`{"cmd":["echo","hi"]}`), true)
	if err != nil {
		errs = append(errs, err)
	} else if err := expectUnknown(x); err != nil {
		errs = append(errs, fmt.Errorf("unknown sandbox: %w", err))
	}
	return errors.Join(errs...)
}

func flag(b *bool) bool { return b != nil && *b }

func checkFlagsTimedOut(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "flags-to")
	if err != nil {
		return err
	}
	var errs []error
	req := argv("sleep", "30")
	req.TimeoutSeconds = ptr[int32](1)
	res, x, err := env.ExecOK(ctx, id, req)
	if err != nil {
		return err
	}
	want(&errs, "timedOut of a command killed by its timeout", flag(res.TimedOut), true, x)
	want(&errs, "exitCode", res.ExitCode, 124, x)
	res, x, err = env.ExecOK(ctx, id, argv("sh", "-c", "exit 124"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "timedOut of a command that exits 124 by itself", flag(res.TimedOut), false, x)
	return errors.Join(errs...)
}

func checkFlagsTruncated(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "flags-tr")
	if err != nil {
		return err
	}
	var errs []error
	res, x, err := env.ExecOK(ctx, id, argv("sh", "-c", "echo small; echo small >&2"))
	if err != nil {
		return err
	}
	want(&errs, "stdoutTruncated of small output", flag(res.StdoutTruncated), false, x)
	want(&errs, "stderrTruncated of small output", flag(res.StderrTruncated), false, x)
	n := int64(8 << 20)
	if c := outputCap(env); c > 0 {
		n = c + 4096
	}
	req := argv("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a", n))
	req.TimeoutSeconds = ptr[int32](60)
	res, x, err = env.ExecOK(ctx, id, req)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if int64(len(res.Stdout)) < n {
		want(&errs, "stdoutTruncated of cut output", flag(res.StdoutTruncated), true, x)
	} else {
		want(&errs, "stdoutTruncated of complete output", flag(res.StdoutTruncated), false, x)
	}
	want(&errs, "stderrTruncated when only stdout was large", flag(res.StderrTruncated), false, x)
	return errors.Join(errs...)
}

func checkAuth(ctx context.Context, env *Env) error {
	if env.Token == "" {
		return Skip("no token configured")
	}
	var errs []error
	id := env.ID("auth")
	env.Track(id)
	ttl := []byte(`{"ttlSeconds":60}`)
	for _, c := range []struct {
		method, path, ct string
		body             []byte
	}{
		{http.MethodGet, "/v1/info", "", nil},
		{http.MethodPut, "/v1/sandboxes/" + id, "application/json", ttl},
		{http.MethodPost, "/v1/sandboxes/" + id + "/exec", "application/json", []byte(`{"cmd":["echo","hi"]}`)},
		{http.MethodDelete, "/v1/sandboxes/" + id, "", nil},
	} {
		for _, tok := range []string{"", "wrong-" + env.Token} {
			req := c
			x, err := rawWithToken(ctx, env, req.method, req.path, req.ct, req.body, tok)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			what := "without a token"
			if tok != "" {
				what = "with a wrong token"
			}
			if err := expectError(x, http.StatusUnauthorized); err != nil {
				errs = append(errs, fmt.Errorf("%s %s %s: %w", c.method, c.path, what, err))
			}
		}
	}
	resp, err := env.NoAuthClient.Healthz(ctx)
	if hx, err := env.do(ctx, "GET /healthz", resp, err); err != nil {
		errs = append(errs, err)
	} else if err := expectStatus(hx, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("/healthz without a token must stay open: %w", err))
	}
	return errors.Join(errs...)
}

// rawWithToken is Raw with an explicit Authorization token ("" for none).
func rawWithToken(ctx context.Context, env *Env, method, path, ct string, body []byte, token string) (*Exchange, error) {
	if token == "" {
		return env.Raw(ctx, method, path, ct, body, false)
	}
	return env.rawHeader(ctx, method, path, ct, body, "Bearer "+token)
}

func checkStreamHeartbeat(ctx context.Context, env *Env) error {
	hb := 15 * time.Second
	if env.Info != nil && env.Info.Limits != nil && env.Info.Limits.StreamHeartbeatSeconds != nil && *env.Info.Limits.StreamHeartbeatSeconds > 0 {
		hb = time.Duration(*env.Info.Limits.StreamHeartbeatSeconds) * time.Second
	}
	id, err := env.NewSandbox(ctx, "heartbeat")
	if err != nil {
		return err
	}
	silence := int32(hb/time.Second) + 2
	req := argv("sh", "-c", fmt.Sprintf("sleep %d; echo done", silence))
	req.TimeoutSeconds = ptr(silence + 30)
	start := time.Now()
	resp, err := env.Client.ExecInSandboxStream(ctx, id, req)
	if err != nil {
		return transportError(ctx, "exec stream in "+id, err)
	}
	defer resp.Body.Close()
	x := env.exchange(resp)
	if err := expectStatus(x, http.StatusOK); err != nil {
		return err
	}
	// Measure the longest silence on the connection.
	var buf bytes.Buffer
	last, maxGap := start, time.Duration(0)
	p := make([]byte, 4096)
	for {
		n, rerr := resp.Body.Read(p)
		if n > 0 {
			now := time.Now()
			maxGap = max(maxGap, now.Sub(last))
			last = now
			buf.Write(p[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read the event stream: %w\n%s", rerr, x)
		}
	}
	var errs []error
	events, comments, perr := ParseSSE(&buf)
	if perr != nil {
		errs = append(errs, fmt.Errorf("event stream grammar: %w", perr))
	}
	if comments == 0 {
		errs = append(errs, fmt.Errorf("no heartbeat comment during %ds of silence (heartbeat interval %s)", silence, hb))
	}
	if tol := hb + 1500*time.Millisecond; maxGap > tol {
		errs = append(errs, fmt.Errorf("the stream was silent for %s, want at most the heartbeat interval %s", maxGap.Round(time.Millisecond), hb))
	}
	exit, so, _, err := streamResult(env, events, x)
	if err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "stdout", so, "done\n", x)
		want(&errs, "exitCode", exit.ExitCode, 0, x)
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("the stream was:\n%s", x))
	}
	return errors.Join(errs...)
}

// limits returns the backend's advertised limits (never nil).
func limits(env *Env) noxapi.BackendLimits {
	if env.Info == nil || env.Info.Limits == nil {
		return noxapi.BackendLimits{}
	}
	return *env.Info.Limits
}

// expectErrorNaming checks that x is a JSON Error with status code whose
// message names field.
func expectErrorNaming(x *Exchange, code int, field string) error {
	if err := expectError(x, code); err != nil {
		return err
	}
	var body noxapi.Error
	_ = json.Unmarshal(x.Body, &body)
	if !strings.Contains(body.Error, field) {
		return fmt.Errorf("error message %q does not name the field %s\n%s", body.Error, field, x)
	}
	return nil
}

// oomHog grows a shell variable until the memory limit stops it; it needs
// nothing but sh.
const oomHog = "x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done"

func checkOOMKilled(ctx context.Context, env *Env) error {
	id := env.ID("oom")
	const memory = "64Mi"
	x, err := env.Create(ctx, id, noxapi.CreateSandboxRequest{TTLSeconds: ptr[int32](600), MemoryLimit: ptr(memory)})
	if err != nil {
		return err
	}
	if x.Status == http.StatusBadRequest {
		return Skip(fmt.Sprintf("the backend refuses memoryLimit %s: %s", memory, x.Body))
	}
	if err := expectSuccess(x); err != nil {
		return fmt.Errorf("create with memoryLimit %s: %w", memory, err)
	}
	if env.Has(api.ExtSandboxesGet) {
		st, _, err := getStatus(ctx, env, id, false)
		if err != nil {
			return err
		}
		if st.Limits != nil && slices.Contains(st.Limits.Unenforced, "memory") {
			return SkipUnclaimed("the backend declares the memory limit unenforced (limits.unenforced of GET /v1/sandboxes/{sessionId})")
		}
	}
	var errs []error
	req := argv("sh", "-c", oomHog)
	req.TimeoutSeconds = ptr[int32](60)
	res, ex, err := env.ExecOK(ctx, id, req)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("a command exceeding memoryLimit %s: %w", memory, err))
	case res.ExitCode == 124 || flag(res.TimedOut):
		errs = append(errs, fmt.Errorf("a command growing without bound ran until its timeout (exit %d): memoryLimit %s is not enforced, yet the backend does not declare memory in limits.unenforced\n%s", res.ExitCode, memory, ex))
	default:
		want(&errs, "exitCode of a command killed for exceeding memoryLimit", res.ExitCode, 137, ex)
		want(&errs, "oomKilled of a command killed for exceeding memoryLimit", flag(res.OomKilled), true, ex)
		if strings.TrimSpace(res.Stderr) == "" {
			errs = append(errs, fmt.Errorf("stderr of a command killed for exceeding memoryLimit is empty, want a note saying so\n%s", ex))
		}
	}
	// The server and the sandbox survive.
	resp, err := env.NoAuthClient.Healthz(ctx)
	if hx, err := env.do(ctx, "GET /healthz", resp, err); err != nil {
		errs = append(errs, fmt.Errorf("after the out-of-memory kill: %w", err))
	} else if err := expectStatus(hx, http.StatusOK); err != nil {
		errs = append(errs, fmt.Errorf("health after the out-of-memory kill: %w", err))
	}
	if err := env.shOutput(ctx, id, "echo after", "after\n", "exec after the out-of-memory kill"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkCreateTTLOverMax(ctx context.Context, env *Env) error {
	mp := limits(env).MaxTTLSeconds
	if mp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxTtlSeconds")
	}
	max := *mp
	if max == math.MaxInt32 {
		return SkipUnclaimed("limits.maxTtlSeconds is the largest int32: no ttlSeconds lies above it")
	}
	if max < 1 {
		return fmt.Errorf("limits.maxTtlSeconds %d is not positive", max)
	}
	var errs []error
	over := env.ID("ttl-over-max")
	req := noxapi.CreateSandboxRequest{TTLSeconds: ptr(max + 1)}
	if env.cfg.Image != "" {
		req.Image = &env.cfg.Image
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	x, err := env.Raw(ctx, http.MethodPut, "/v1/sandboxes/"+over, "application/json", body, true)
	if err != nil {
		return err
	}
	if x.Status/100 == 2 {
		env.Track(over) // accepted: delete it afterwards
	}
	if err := expectErrorNaming(x, http.StatusBadRequest, "ttlSeconds"); err != nil {
		errs = append(errs, fmt.Errorf("create with ttlSeconds %d, one above the advertised maxTtlSeconds: %w", max+1, err))
	}
	if _, _, _, err := createAndCheck(ctx, env, env.ID("ttl-max"), max, false); err != nil {
		errs = append(errs, fmt.Errorf("create with ttlSeconds %d, the advertised maxTtlSeconds: %w", max, err))
	}
	return errors.Join(errs...)
}

func checkTimeoutOverMax(ctx context.Context, env *Env) error {
	mp := limits(env).MaxTimeoutSeconds
	if mp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxTimeoutSeconds")
	}
	max := *mp
	if max == math.MaxInt32 {
		return SkipUnclaimed("limits.maxTimeoutSeconds is the largest int32: no timeoutSeconds lies above it")
	}
	if max < 1 {
		return fmt.Errorf("limits.maxTimeoutSeconds %d is not positive", max)
	}
	id, err := env.NewSandbox(ctx, "timeout-max")
	if err != nil {
		return err
	}
	var errs []error
	req := argv("echo", "ran")
	req.TimeoutSeconds = ptr(max + 1)
	x, err := env.Exec(ctx, id, req)
	if err != nil {
		return err
	}
	if err := expectErrorNaming(x, http.StatusBadRequest, "timeoutSeconds"); err != nil {
		errs = append(errs, fmt.Errorf("exec with timeoutSeconds %d, one above the advertised maxTimeoutSeconds: %w", max+1, err))
	}
	req.TimeoutSeconds = ptr(max)
	res, x, err := env.ExecOK(ctx, id, req)
	if err != nil {
		errs = append(errs, fmt.Errorf("exec with timeoutSeconds %d, the advertised maxTimeoutSeconds: %w", max, err))
	} else if res.ExitCode != 0 || res.Stdout != "ran\n" {
		errs = append(errs, fmt.Errorf("exec with timeoutSeconds %d, the advertised maxTimeoutSeconds: want exit 0 and stdout \"ran\\n\"\n%s", max, x))
	}
	return errors.Join(errs...)
}

// maxTestedUpload is the largest maxUploadBytes files/upload-too-large-413
// sends more than; above it the check is skipped as too slow.
const maxTestedUpload = 64 << 20

func checkUploadTooLarge(ctx context.Context, env *Env) error {
	mp := limits(env).MaxUploadBytes
	if mp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxUploadBytes")
	}
	max := *mp
	if max > maxTestedUpload {
		return Skip(fmt.Sprintf("limits.maxUploadBytes %d is above %d: too slow to exceed", max, maxTestedUpload))
	}
	if max < 1 {
		return fmt.Errorf("limits.maxUploadBytes %d is not positive", max)
	}
	id, err := env.NewSandbox(ctx, "too-large")
	if err != nil {
		return err
	}
	tag := env.ID("t")
	dest := "/workspace/too-large-" + tag
	// A small file first: a backend that extracts as it reads would
	// write it before it notices the limit.
	files := []streamedFile{{"small-" + tag + ".txt", 6, 's'}, {"big-" + tag + ".bin", max + 1, 'b'}}
	size, open, err := streamTar(files)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	var errs []error
	ways := []bool{false}
	if env.Has(api.ExtUploadChunked) { // others need not read chunked bodies at all
		ways = append(ways, true)
	}
	lengthStatus := 0
	for _, chunked := range ways {
		how := fmt.Sprintf("with Content-Length: %d", size)
		if chunked {
			how = "chunked, without Content-Length"
		}
		x, err := env.uploadStream(ctx, id, dest, size, chunked, open)
		if err != nil {
			errs = append(errs, fmt.Errorf("upload of a %d-byte plain tar (maxUploadBytes %d), %s: %w", size, max, how, err))
			continue
		}
		if !chunked {
			lengthStatus = x.Status
		}
		err = expectError(x, http.StatusRequestEntityTooLarge)
		if chunked && err != nil && x.Status == http.StatusBadRequest && lengthStatus == http.StatusRequestEntityTooLarge {
			err = chunkedRefused(x, true) // the same upload with a length was judged
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("upload of a %d-byte plain tar (maxUploadBytes %d), %s: %w", size, max, how, err))
		}
	}
	// Nothing of it was extracted: dest is absent or empty.
	if out, err := env.Sh(ctx, id, fmt.Sprintf("if [ -e '%s' ]; then ls -A '%s'; fi", dest, dest)); err != nil {
		errs = append(errs, fmt.Errorf("inspect dest after the refused uploads: %w", err))
	} else if out != "" {
		errs = append(errs, fmt.Errorf("refused uploads left files in dest %s: %q", dest, strings.Fields(out)))
	}
	// Uploads within the limit still work.
	small, err := BuildTar([]TarEntry{{Name: "after.txt", Body: []byte("after\n")}}, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	if _, err := env.UploadOK(ctx, id, dest, small); err != nil {
		errs = append(errs, fmt.Errorf("upload after the refused ones: %w", err))
	} else if err := env.shOutput(ctx, id, fmt.Sprintf("cat '%s/after.txt'", dest), "after\n", "file of the upload after the refused ones"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// maxSaturated is the largest maxConcurrentExecs exec/saturated-503
// saturates; above it the check is skipped as too costly.
const maxSaturated = 8

// saturationWait bounds how long exec/saturated-503 waits for the answer
// to a command beyond the limit.
const saturationWait = 15 * time.Second

func checkSaturated(ctx context.Context, env *Env) error {
	lp := limits(env).MaxConcurrentExecs
	if lp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxConcurrentExecs")
	}
	n := int(*lp)
	if n > maxSaturated {
		return Skip(fmt.Sprintf("limits.maxConcurrentExecs %d is above %d: too costly to saturate", n, maxSaturated))
	}
	if n < 1 {
		return fmt.Errorf("limits.maxConcurrentExecs %d is not positive", n)
	}
	id, err := env.NewSandbox(ctx, "saturate")
	if err != nil {
		return err
	}
	// n commands hold every slot until the sandbox is deleted.
	hold, release := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := argv("sleep", "120")
			req.TimeoutSeconds = ptr[int32](150)
			resp, err := env.Client.ExecInSandbox(hold, id, req)
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	defer func() {
		resp, err := env.Client.DeleteSandbox(context.WithoutCancel(ctx), id) // kills the commands
		if err == nil {
			resp.Body.Close()
		}
		release()
		wg.Wait()
	}()
	return probeSaturated(ctx, env, id, n)
}

// probeSaturated sends one command more than the n running in sandbox id,
// until it is answered 503 (judged) or the tries run out.
func probeSaturated(ctx context.Context, env *Env, id string, n int) error {
	var last *Exchange
	for try := 0; try < 10; try++ {
		if err := sleep(ctx, 500*time.Millisecond); err != nil { // let the n commands start
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, saturationWait)
		resp, err := env.Client.ExecInSandbox(pctx, id, argv("true"))
		x, err := env.do(pctx, "exec beyond the limit in "+id, resp, err)
		queued := pctx.Err() != nil
		cancel()
		if queued {
			return ownFinding(x, aspectNone, fmt.Sprintf("no answer within %s", saturationWait), "503 with Retry-After",
				fmt.Errorf("with %d commands running (maxConcurrentExecs %d), one more got no answer within %s: it is queued, want 503 with Retry-After", n, n, saturationWait))
		}
		if err != nil {
			return err
		}
		last = x
		if x.Status == http.StatusServiceUnavailable {
			return expectRetryAfter(x)
		}
		if !success(x.Status) {
			return expectStatus(x, http.StatusServiceUnavailable)
		}
	}
	return ownFinding(last, aspectStatus, fmt.Sprintf("status %d", last.Status), "503 with Retry-After",
		fmt.Errorf("with %d commands running (maxConcurrentExecs %d), one more still ran at once, want 503 with Retry-After\n%s", n, n, last))
}

// expectRetryAfter checks a 503: a JSON Error with Retry-After in seconds.
func expectRetryAfter(x *Exchange) error {
	var errs []error
	if err := expectError(x, http.StatusServiceUnavailable); err != nil {
		errs = append(errs, err)
	}
	ra := x.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 0 {
		errs = append(errs, ownFinding(x, aspectHeader, fmt.Sprintf("Retry-After %q", ra), "Retry-After: <seconds>",
			fmt.Errorf("503 without Retry-After in seconds (Retry-After %q)\n%s", ra, x)))
	}
	return errors.Join(errs...)
}
