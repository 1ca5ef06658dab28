package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/gen/noxapi"
)

// procSend is one request of an error check: what it does and how to
// send it.
type procSend struct {
	what string
	send func() (*Exchange, error)
}

// procSends are the requests naming process pid of sandbox id, one per
// operation on a process.
func procSends(ctx context.Context, env *Env, id, pid string) []procSend {
	return []procSend{
		{"get", func() (*Exchange, error) { return env.getProc(ctx, id, pid) }},
		{"wait", func() (*Exchange, error) { return env.waitProc(ctx, id, pid, ptr[int32](1)) }},
		{"output", func() (*Exchange, error) {
			s, x, err := env.openOutput(ctx, id, pid, outQuery{follow: ptr(false)})
			if s != nil {
				s.close()
			}
			return x, err
		}},
		{"stdin", func() (*Exchange, error) { return env.writeStdin(ctx, id, pid, []byte("x"), false) }},
		{"signal", func() (*Exchange, error) { return env.signalProc(ctx, id, pid, noxapi.TERM) }},
		{"resize", func() (*Exchange, error) { return env.resizeProc(ctx, id, pid, 24, 80) }},
		{"kill", func() (*Exchange, error) { return env.killProc(ctx, id, pid) }},
	}
}

func checkProcUnknownProcess(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-unknown")
	if err != nil {
		return err
	}
	// A sandbox with a process, so that the backend has a table to look in.
	if _, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60")); err != nil {
		return err
	}
	pid := "no-such-process-" + env.Prefix
	var errs []error
	for _, s := range procSends(ctx, env, id, pid) {
		x, err := s.send()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectErrorNamingAny(x, http.StatusNotFound, pid); err != nil {
			errs = append(errs, fmt.Errorf("%s of an unknown process: %w", s.what, err))
		}
	}
	return errors.Join(errs...)
}

func checkProcUnknownSandbox(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	env.Track(id)
	sends := append([]procSend{
		{"start", func() (*Exchange, error) { return env.startProc(ctx, id, procCmd("true")) }},
		{"list", func() (*Exchange, error) { return env.listProcs(ctx, id, nil) }},
	}, procSends(ctx, env, id, "1")...)
	var errs []error
	for _, s := range sends {
		x, err := s.send()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectUnknown(x); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	if err := stillUnknown(ctx, env, id, "process start"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// badProc is a malformed request and the field its 400 must name (any of
// names; none for malformed JSON).
type badProc struct {
	method, path, body string
	header             http.Header
	names              []string
}

func checkProcInvalid(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "proc-invalid")
	if err != nil {
		return err
	}
	p, _, err := env.startProcOK(ctx, id, procCmd("sleep", "60"))
	if err != nil {
		return err
	}
	starts, one := procPath(id, "", ""), func(op string) string { return procPath(id, p.ID, op) }
	post := func(path, body string, names ...string) badProc {
		return badProc{method: http.MethodPost, path: path, body: body, names: names}
	}
	get := func(path string, names ...string) badProc {
		return badProc{method: http.MethodGet, path: path, names: names}
	}
	cases := []badProc{
		post(starts, `{"cmd":[]}`, "cmd"),
		post(starts, `{}`, "cmd"),
		post(starts, `{"cmd":"echo hi"}`, "cmd"),
		post(starts, `{"cmd":["true"],"pty":{"rows":0,"cols":80}}`, "rows"),
		post(starts, `{"cmd":["true"],"pty":{"rows":24,"cols":1001}}`, "cols"),
		post(starts, `{"cmd":["true"],"pty":{"rows":24}}`, "cols"),
		post(starts, `{"cmd":["true"],"timeoutSeconds":-1}`, "timeoutSeconds"),
		post(starts, `{"cmd":["true"],"tag":"`+strings.Repeat("t", 129)+`"}`, "tag"),
		post(starts, `{"cmd":["true"],"workdir":""}`, "workdir"),
		post(starts, `{"cmd":["true"`),
		post(one("signal"), `{"signal":"FOO"}`, "signal"),
		post(one("signal"), `{"signal":"SIGTERM"}`, "signal"),
		post(one("signal"), `{}`, "signal"),
		post(one("resize"), `{"rows":0,"cols":80}`, "rows"),
		post(one("resize"), `{"rows":24,"cols":1001}`, "cols"),
		get(one("wait")+"?timeoutSeconds=-1", "timeoutSeconds"),
		get(one("wait")+"?timeoutSeconds=soon", "timeoutSeconds"),
		get(one("output")+"?from=-1", "from"),
		get(one("output")+"?follow=maybe", "follow"),
		{method: http.MethodGet, path: one("output"), header: http.Header{"Last-Event-ID": {"abc"}}, names: []string{"Last-Event-ID", "Last-Event-Id"}},
		{method: http.MethodPost, path: one("stdin") + "?close=maybe", header: http.Header{"Content-Type": {"application/octet-stream"}}, names: []string{"close"}},
		get(procPath(id, "-x", ""), "processId", "process id", "-x"),
		get(procPath(id, strings.Repeat("p", 65), ""), "processId", "process id", strings.Repeat("p", 65)),
	}
	var errs []error
	for _, c := range cases {
		h := c.header
		if h == nil && c.body != "" {
			h = http.Header{"Content-Type": {"application/json"}}
		}
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		x, err := env.rawWith(ctx, c.method, c.path, h, body)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(c.names) == 0 {
			err = expectError(x, http.StatusBadRequest)
		} else {
			err = expectErrorNamingAny(x, http.StatusBadRequest, c.names...)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// The bad starts started nothing; the process is unharmed.
	l, lx, err := env.listProcsOK(ctx, id)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(l.Items) != 1 || l.Items[0].ID != p.ID || l.Items[0].State != "running" {
		errs = append(errs, ownFinding(lx, aspectNone, fmt.Sprintf("%d processes listed", len(l.Items)), "the one running process",
			fmt.Errorf("after the bad requests the sandbox lists %d processes, want only the running process %s\n%s", len(l.Items), p.ID, lx)))
	}
	return errors.Join(errs...)
}

// listProcsOK lists the processes of sandbox id as a set-up step.
func (e *Env) listProcsOK(ctx context.Context, id string) (procList, *Exchange, error) {
	x, err := e.listProcs(ctx, id, nil)
	if err != nil {
		return procList{}, x, err
	}
	var l procList
	if err := expectSuccess(x); err != nil {
		return l, x, fmt.Errorf("list processes: %w", err)
	}
	return l, x, decodeLenient(x, &l)
}

// rawWith sends a request built by hand to path under the base URL,
// with the token and the given headers, and returns the exchange.
func (e *Env) rawWith(ctx context.Context, method, path string, header http.Header, body []byte) (*Exchange, error) {
	u := strings.TrimRight(e.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w: %w", method, path, ErrSuite, err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if e.Token != "" {
		req.Header.Set("Authorization", "Bearer "+e.Token)
	}
	resp, err := (&recordingDoer{env: e}).Do(req)
	return e.do(ctx, method+" "+path, resp, err)
}
