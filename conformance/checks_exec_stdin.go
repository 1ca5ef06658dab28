package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// maxStdinTest bounds the maxStdinBytes exec/stdin-too-large-400 sends.
const maxStdinTest = 8 << 20

// withStdin is req with stdin s in encoding enc ("" for none).
func withStdin(req noxapi.ExecRequest, s string, enc noxapi.ExecRequestStdinEncoding) noxapi.ExecRequest {
	req.Stdin = &s
	if enc != "" {
		req.StdinEncoding = &enc
	}
	return req
}

func checkExecStdin(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "exec-stdin")
	if err != nil {
		return err
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	sum := sha256.Sum256(all)
	big := 256 << 10
	if m := limits(env).MaxStdinBytes; m != nil && *m < int64(big) {
		big = int(*m)
	}
	var errs []error
	for _, c := range []struct {
		what string
		req  noxapi.ExecRequest
		want string
	}{
		{"a line read by `read x`", withStdin(argv("sh", "-c", `read x; echo "got $x"`), "hello\n", ""), "got hello\n"},
		{"UTF-8 text through cat", withStdin(argv("cat"), "héllo ✓\nno newline", noxapi.UTF8), "héllo ✓\nno newline"},
		{"the 256 byte values in base64 through sha256sum", withStdin(argv("sha256sum"), base64.StdEncoding.EncodeToString(all), noxapi.Base64),
			hex.EncodeToString(sum[:]) + "  -\n"},
		{fmt.Sprintf("%d bytes through wc -c", big), withStdin(argv("sh", "-c", "wc -c | tr -d ' '"), strings.Repeat("s", big), ""), strconv.Itoa(big) + "\n"},
	} {
		c.req.TimeoutSeconds = ptr[int32](30)
		res, x, err := env.ExecOK(ctx, id, c.req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.what, err))
			continue
		}
		want(&errs, "stdout of "+c.what, res.Stdout, c.want, x)
		want(&errs, "exitCode of "+c.what, res.ExitCode, 0, x)
	}
	if env.Has(api.ExtExecStream) {
		so, x, err := streamStdout(ctx, env, id, withStdin(argv("cat"), "streamed\n", ""))
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		want(&errs, "stdout events of cat with stdin on exec/stream", so, "streamed\n", x)
	}
	return errors.Join(errs...)
}

// streamStdout runs req through exec/stream as a set-up step and
// returns what its stdout events hold, read leniently (exec/stream-events
// judges the stream).
func streamStdout(ctx context.Context, env *Env, id string, req noxapi.ExecRequest) (string, *Exchange, error) {
	resp, err := env.Client.ExecInSandboxStream(ctx, id, req)
	if err != nil {
		return "", nil, transportError(ctx, "exec stream in "+id, err)
	}
	defer resp.Body.Close()
	x := env.exchange(resp)
	if err := expectSuccess(x); err != nil {
		return "", x, fmt.Errorf("exec stream: %w", err)
	}
	events, _, _ := ParseSSE(resp.Body)
	var so strings.Builder
	for _, ev := range events {
		var c noxapi.OutputChunk
		if ev.Event == "stdout" && json.Unmarshal([]byte(ev.Data), &c) == nil {
			so.WriteString(c.Data)
		}
	}
	return so.String(), x, nil
}

func checkExecStdinInvalid(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "exec-stdin-bad")
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range []struct {
		body  string
		field string
	}{
		{`{"cmd":["cat"],"stdin":"not base64!","stdinEncoding":"base64"}`, "stdin"},
		{`{"cmd":["cat"],"stdin":"hi","stdinEncoding":"latin1"}`, "stdinEncoding"},
		{`{"cmd":["cat"],"stdin":42}`, "stdin"},
	} {
		x, err := env.Raw(ctx, http.MethodPost, "/v1/sandboxes/"+id+"/exec", "application/json", []byte(c.body), true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectErrorNamingAny(x, http.StatusBadRequest, c.field); err != nil {
			errs = append(errs, err)
		}
	}
	if err := env.shOutput(ctx, id, "echo fine", "fine\n", "exec after invalid stdin"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkExecStdinTooLarge(ctx context.Context, env *Env) error {
	mp := limits(env).MaxStdinBytes
	if mp == nil {
		return SkipUnclaimed("the backend does not advertise limits.maxStdinBytes")
	}
	limit := *mp
	if limit < 1 || limit > maxStdinTest {
		return Skip(fmt.Sprintf("limits.maxStdinBytes %d is not between 1 and %d: too costly to send", limit, maxStdinTest))
	}
	id, err := env.NewSandbox(ctx, "exec-stdin-max")
	if err != nil {
		return err
	}
	count := argv("sh", "-c", "wc -c | tr -d ' '")
	count.TimeoutSeconds = ptr[int32](30)
	var errs []error
	for _, c := range []struct {
		what string
		req  noxapi.ExecRequest
	}{
		{fmt.Sprintf("stdin of %d bytes, one above the advertised maxStdinBytes", limit+1), withStdin(count, strings.Repeat("a", int(limit+1)), "")},
		{fmt.Sprintf("stdin of %d bytes in base64, one above the advertised maxStdinBytes once decoded", limit+1),
			withStdin(count, base64.StdEncoding.EncodeToString([]byte(strings.Repeat("b", int(limit+1)))), noxapi.Base64)},
	} {
		x, err := env.Exec(ctx, id, c.req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if x.Status != http.StatusBadRequest {
			errs = append(errs, ownFinding(x, aspectStatus, fmt.Sprintf("status %d", x.Status), "400",
				fmt.Errorf("%s (maxStdinBytes %d): status %d, want 400\n%s", c.what, limit, x.Status, x)))
			continue
		}
		if err := expectErrorNamingAny(x, http.StatusBadRequest, "stdin"); err != nil {
			errs = append(errs, err)
		}
	}
	// The maximum itself is accepted, encoded in base64 too.
	res, x, err := env.ExecOK(ctx, id, withStdin(count, base64.StdEncoding.EncodeToString([]byte(strings.Repeat("c", int(limit)))), noxapi.Base64))
	if err != nil {
		errs = append(errs, fmt.Errorf("stdin of exactly maxStdinBytes (%d): %w", limit, err))
	} else {
		want(&errs, "stdout of wc -c with stdin of exactly maxStdinBytes", res.Stdout, strconv.FormatInt(limit, 10)+"\n", x)
	}
	return errors.Join(errs...)
}
