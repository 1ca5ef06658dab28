package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

func execChecks() []Check {
	return []Check{
		{ID: "exec/argv-verbatim", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorCmd,
			Spec: "POST /v1/sandboxes/{sessionId}/exec: cmd is an argv array, never interpreted by a shell",
			Run:  checkArgvVerbatim},
		{ID: "exec/exit-codes", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorExec,
			Spec: "POST .../exec: non-zero exit is still 200; exit code passed through; 126 not executable, 127 not found, 128+N signal N",
			Run:  checkExitCodes},
		{ID: "exec/stdout-stderr", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorExec,
			Spec: "POST .../exec: stdout and stderr returned separately",
			Run:  checkStdoutStderr},
		{ID: "exec/env", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorEnv,
			Spec: "POST .../exec: env set before the command runs",
			Run:  checkEnv},
		{ID: "exec/workdir", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorWorkdir,
			Spec: "POST .../exec: workdir defaults to /workspace; a custom workdir is used",
			Run:  checkWorkdir},
		{ID: "exec/timeout-kills-process-tree", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorTimeout,
			Spec: "POST .../exec: timeoutSeconds kills the command and every process it started (exit 124)",
			Run:  checkTimeout},
		{ID: "exec/large-output-capped", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorStdout,
			Spec: "POST .../exec: stdout/stderr limited to a reasonable size (about 1 MB)",
			Run:  checkLargeOutput},
		{ID: "exec/output-not-blocking", Level: LevelRecommended, Parallel: true, Slow: true,
			Requirement: Should, Operations: []string{"execInSandbox"}, Anchor: anchorStdout,
			Spec: "POST .../exec: output beyond the cap is drained, not left to block the command: 50 MB on stdout ends well within the timeout, cut (stdoutTruncated with exec.flags)",
			Run:  checkOutputNotBlocking},
		{ID: "exec/non-ascii", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorStdout,
			Spec: "POST .../exec: stdout/stderr are UTF-8 strings; argv and env are UTF-8",
			Run:  checkNonASCII},
		// Not parallel: the other checks' commands would take the slots it
		// measures when the backend has few (maxConcurrentExecs).
		{ID: "exec/concurrent", Level: LevelMinimum, Parallel: false,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorExec,
			Spec: "POST .../exec: concurrent commands in one sandbox each get their own result",
			Run:  checkConcurrentExec},
		{ID: "exec/stdin-empty", Level: LevelRecommended, Parallel: true,
			Requirement: Should, Operations: []string{"execInSandbox"}, Anchor: anchorExec,
			Spec: "POST .../exec: commands are not interactive; stdin reads end of file at once",
			Run:  checkStdinEmpty},
		{ID: "exec/invalid-request-400", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorExecInvalid,
			Spec: "POST .../exec: 400 JSON Error for empty cmd, missing cmd, bad timeoutSeconds, malformed JSON",
			Run:  checkExecInvalid},
		{ID: "exec/unknown-sandbox-404", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorExecUnknown,
			Spec: "POST .../exec: 404 JSON Error for an unknown sandbox, which the request does not create",
			Run:  checkExecUnknown},
		{ID: "exec/workspace-paths-contained", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"execInSandbox"}, Anchor: anchorWorkdir,
			Spec: "POST .../exec: absolute /workspace/... paths in argv, scripts and env name the sandbox's own workspace, the one its workdir shows; another sandbox does not see what they write",
			Run:  checkWorkspacePaths},
	}
}

func argv(a ...string) noxapi.ExecRequest { return noxapi.ExecRequest{Cmd: a} }

func checkArgvVerbatim(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "argv")
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"echo", "$HOME;|&"}, "$HOME;|&\n"},
		{[]string{"echo", "a  b", "*", "`id`", "$(id)", "'q'", `"dq"`, "x>y"}, "a  b * `id` $(id) 'q' \"dq\" x>y\n"},
		{[]string{"printf", "%s|", "", "tab\there", "new\nline"}, "|tab\there|new\nline|"},
	} {
		res, x, err := env.ExecOK(ctx, id, argv(c.cmd...))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want(&errs, "stdout", res.Stdout, c.want, x)
		want(&errs, "exitCode", res.ExitCode, 0, x)
	}
	return errors.Join(errs...)
}

func checkExitCodes(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "exit")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "printf 'echo hi\\n' > /workspace/not-executable.sh && chmod 644 /workspace/not-executable.sh"); err != nil {
		return err
	}
	var errs []error
	for _, c := range []struct {
		cmd  []string
		code int32
	}{
		{[]string{"/workspace/not-executable.sh"}, 126},
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "exit 255"}, 255},
		{[]string{"sh", "-c", "kill -9 $$"}, 137},
		{[]string{"nox-conformance-no-such-command"}, 127},
	} {
		res, x, err := env.ExecOK(ctx, id, argv(c.cmd...))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want(&errs, fmt.Sprintf("exitCode of %q", c.cmd), res.ExitCode, c.code, x)
	}
	return errors.Join(errs...)
}

func checkStdoutStderr(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "stdio")
	if err != nil {
		return err
	}
	// This check judges the answer's form (status, fields, types): the
	// other exec checks read it leniently.
	x, err := env.Exec(ctx, id, argv("sh", "-c", "echo out; echo err >&2; printf 'no newline' >&2; exit 2"))
	if err != nil {
		return err
	}
	x.judge()
	if err := expectStatus(x, http.StatusOK); err != nil {
		return err
	}
	var lr lenientExecResult
	if err := decodeLenient(x, &lr); err != nil {
		return err
	}
	res := lr.result()
	var errs []error
	want(&errs, "stdout", res.Stdout, "out\n", x)
	want(&errs, "stderr", res.Stderr, "err\nno newline", x)
	want(&errs, "exitCode", res.ExitCode, 2, x)
	if res.DurationMs < 0 {
		errs = append(errs, fmt.Errorf("durationMs %d < 0\n%s", res.DurationMs, x))
	}
	return errors.Join(errs...)
}

func checkEnv(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "env")
	if err != nil {
		return err
	}
	req := argv("sh", "-c", `printf '%s|%s|%s' "$NOX_A" "$NOX_B" "$NOX_C"`)
	req.Env = map[string]string{"NOX_A": "x y", "NOX_B": "$HOME;`id`", "NOX_C": "line1\nline2"}
	res, x, err := env.ExecOK(ctx, id, req)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "stdout", res.Stdout, "x y|$HOME;`id`|line1\nline2", x)
	// Without env the variables are not set (no leak between commands).
	res, x, err = env.ExecOK(ctx, id, argv("sh", "-c", `printf '%s' "${NOX_A-unset}"`))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "stdout of a later exec without env", res.Stdout, "unset", x)
	return errors.Join(errs...)
}

func checkWorkdir(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "workdir")
	if err != nil {
		return err
	}
	var errs []error
	res, x, err := env.ExecOK(ctx, id, argv("pwd"))
	if err != nil {
		return err
	}
	want(&errs, "pwd without workdir", res.Stdout, "/workspace\n", x)
	if _, err := env.Sh(ctx, id, "mkdir -p /workspace/sub/dir"); err != nil {
		return errors.Join(append(errs, err)...)
	}
	req := argv("pwd")
	req.Workdir = ptr("/workspace/sub/dir")
	res, x, err = env.ExecOK(ctx, id, req)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "pwd with workdir /workspace/sub/dir", res.Stdout, "/workspace/sub/dir\n", x)
	return errors.Join(errs...)
}

// listProcesses returns the command lines of the processes the sandbox
// can see, one per line.
func listProcesses(ctx context.Context, env *Env, id string) (string, error) {
	out, err := env.Sh(ctx, id, `if [ -r /proc/self/cmdline ]; then for p in /proc/[0-9]*; do tr '\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done; else ps -eo args; fi`)
	if err != nil {
		return "", fmt.Errorf("list processes: %w", err)
	}
	if strings.TrimSpace(out) == "" {
		return "", Skip("cannot list processes in the sandbox (no /proc, no ps)")
	}
	return out, nil
}

func checkTimeout(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "timeout")
	if err != nil {
		return err
	}
	// Unique durations mark the processes this check starts.
	n := 3000 + rand.IntN(6000)
	marker := fmt.Sprintf("sleep %d", n)
	script := fmt.Sprintf("sleep %d & sleep %d & sh -c 'sleep %d' & sleep %d", n, n, n, n)
	req := argv("sh", "-c", script)
	req.TimeoutSeconds = ptr[int32](1)
	start := time.Now()
	res, x, err := env.ExecOK(ctx, id, req)
	took := time.Since(start)
	if err != nil {
		return err
	}
	var errs []error
	if limit := time.Second + env.cfg.TimeoutGrace; took > limit {
		errs = append(errs, fmt.Errorf("exec with timeoutSeconds 1 answered after %s, want within %s\n%s", took.Round(time.Millisecond), limit, x))
	}
	want(&errs, "exitCode of a timed-out command", res.ExitCode, 124, x)
	// Every process of the tree is dead (allow the grace period).
	deadline := time.Now().Add(env.cfg.TimeoutGrace)
	for {
		procs, err := listProcesses(ctx, env, id)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		var left []string
		for _, l := range strings.Split(procs, "\n") {
			if strings.Contains(l, marker) {
				left = append(left, strings.TrimSpace(l))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%d processes of the timed-out command still run %s after the answer: %q", len(left), env.cfg.TimeoutGrace, left))
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	// The sandbox still works.
	if err := env.shOutput(ctx, id, "echo after", "after\n", "exec after a timeout"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// outputCap returns the backend's advertised output cap, or 0.
func outputCap(env *Env) int64 {
	if env.Info != nil && env.Info.Limits != nil && env.Info.Limits.MaxOutputBytes != nil {
		return *env.Info.Limits.MaxOutputBytes
	}
	return 0
}

func checkLargeOutput(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "large")
	if err != nil {
		return err
	}
	const produced = 8 << 20
	req := argv("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; head -c %d /dev/zero | tr '\\0' b >&2; echo done >&2", produced, produced))
	req.TimeoutSeconds = ptr[int32](60)
	res, x, err := env.ExecOK(ctx, id, req)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("a command writing %d bytes to stdout and stderr: %w", produced, err))
	} else {
		limit := int64(4 << 20) // "about 1 MB"; anything up to 4 MiB passes
		if c := outputCap(env); c > 0 {
			limit = c
		}
		for _, s := range []struct{ name, out, fill string }{{"stdout", res.Stdout, "a"}, {"stderr", res.Stderr, "b"}} {
			if int64(len(s.out)) > limit {
				errs = append(errs, fmt.Errorf("%s holds %d bytes, want it capped at %d\n%s", s.name, len(s.out), limit, x))
			}
			if len(s.out) == 0 || strings.Trim(s.out, s.fill) != "" && !strings.HasPrefix(s.out, s.fill) {
				errs = append(errs, fmt.Errorf("%s is not the start of the output (%d bytes)\n%s", s.name, len(s.out), x))
			}
		}
		if res.ExitCode != 0 {
			errs = append(errs, fmt.Errorf("a command whose output was capped exited %d, want 0 (capping must not kill it)\n%s", res.ExitCode, x))
		}
	}
	if err := env.shOutput(ctx, id, "echo after", "after\n", "exec after large output"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkOutputNotBlocking(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "flood")
	if err != nil {
		return err
	}
	const produced, timeout = 50_000_000, 120
	req := argv("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a && echo done >&2", produced))
	req.TimeoutSeconds = ptr[int32](timeout)
	res, x, err := env.ExecOK(ctx, id, req)
	if err != nil {
		return fmt.Errorf("a command writing %d bytes to stdout: %w", produced, err)
	}
	var errs []error
	if res.ExitCode != 0 || flag(res.TimedOut) {
		errs = append(errs, fmt.Errorf("a command writing %d bytes to stdout (timeoutSeconds %d) exited %d, want 0: output past the cap must be read and dropped, not block the command\n%s", produced, timeout, res.ExitCode, x))
	}
	want(&errs, "stderr (written after the flood of stdout)", res.Stderr, "done\n", x)
	if len(res.Stdout) < produced && env.Has(api.ExtExecFlags) { // the cap itself is exec/large-output-capped's
		want(&errs, "stdoutTruncated of cut output", flag(res.StdoutTruncated), true, x)
	}
	return errors.Join(errs...)
}

func checkNonASCII(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "utf8")
	if err != nil {
		return err
	}
	var errs []error
	text := "héllo wörld ✓ 日本語 🚀"
	res, x, err := env.ExecOK(ctx, id, argv("echo", text))
	if err != nil {
		return err
	}
	want(&errs, "stdout of echo with UTF-8 argv", res.Stdout, text+"\n", x)
	req := argv("sh", "-c", `printf '%s' "$NOX_UTF8" >&2`)
	req.Env = map[string]string{"NOX_UTF8": text}
	res, x, err = env.ExecOK(ctx, id, req)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want(&errs, "stderr of printf with UTF-8 env", res.Stderr, text, x)
	// Invalid UTF-8 output must still give a valid answer (replaced
	// characters allowed).
	res, x, err = env.ExecOK(ctx, id, argv("printf", `ok\377\376end`))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("invalid UTF-8 on stdout: %w", err))...)
	}
	if !strings.HasPrefix(res.Stdout, "ok") || !strings.HasSuffix(res.Stdout, "end") {
		errs = append(errs, fmt.Errorf("invalid UTF-8 on stdout: got %q, want ok...end\n%s", res.Stdout, x))
	}
	return errors.Join(errs...)
}

func checkConcurrentExec(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "conc")
	if err != nil {
		return err
	}
	const n = 4
	lim := env.Info
	serial := lim != nil && lim.Limits != nil && (lim.Limits.MaxConcurrentExecs != nil && *lim.Limits.MaxConcurrentExecs < n ||
		lim.Limits.MaxConcurrentExecsPerSandbox != nil && *lim.Limits.MaxConcurrentExecsPerSandbox < n)
	// A rendezvous rather than a stopwatch, so that a loaded machine
	// cannot fail it: each command marks its start, then waits (up to
	// 20 s) until all n have started, and prints how many it saw. Run one
	// after another, the first sees only itself.
	var wg sync.WaitGroup
	errs := make([]error, n)
	seen := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			word := fmt.Sprintf("job-%d", i)
			script := fmt.Sprintf(`touch conc.%d; i=0; while [ "$(ls conc.* | wc -l)" -lt %d ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; ls conc.* | wc -l | tr -d ' '; echo %s; echo %s >&2`, i, n, word, word)
			req := argv("sh", "-c", script)
			req.TimeoutSeconds = ptr[int32](60)
			res, x, err := env.ExecOK(ctx, id, req)
			if err != nil {
				errs[i] = err
				return
			}
			count, out, _ := strings.Cut(res.Stdout, "\n")
			seen[i] = count
			var e []error
			want(&e, "stdout", out, word+"\n", x)
			want(&e, "stderr", res.Stderr, word+"\n", x)
			want(&e, "exitCode", res.ExitCode, 0, x)
			errs[i] = errors.Join(e...)
		}()
	}
	wg.Wait()
	all := errs
	if !serial && errors.Join(errs...) == nil && slices.ContainsFunc(seen, func(c string) bool { return c != strconv.Itoa(n) }) {
		all = append(all, fmt.Errorf("%d concurrent commands did not run at the same time (each saw this many started: %v): the backend ran them one after another", n, seen))
	}
	return errors.Join(all...)
}

func checkStdinEmpty(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "stdin")
	if err != nil {
		return err
	}
	req := argv("sh", "-c", "cat; echo end")
	req.TimeoutSeconds = ptr[int32](5)
	res, x, err := env.ExecOK(ctx, id, req)
	if err != nil {
		return err
	}
	var errs []error
	want(&errs, "stdout of `cat; echo end` (stdin must be empty)", res.Stdout, "end\n", x)
	want(&errs, "exitCode (a command reading stdin must not wait for input)", res.ExitCode, 0, x)
	return errors.Join(errs...)
}

func checkExecInvalid(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "invalid")
	if err != nil {
		return err
	}
	var errs []error
	for _, body := range []string{
		`{"cmd":[]}`,
		`{}`,
		`{"cmd":"echo hi"}`,
		`{"cmd":["echo","hi"],"timeoutSeconds":0}`,
		`{"cmd":["echo","hi"],"timeoutSeconds":-1}`,
		`{"cmd":["echo",`,
		`not json`,
	} {
		x, err := env.Raw(ctx, http.MethodPost, "/v1/sandboxes/"+id+"/exec", "application/json", []byte(body), true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, err)
		}
	}
	// The sandbox still works after bad requests.
	if err := env.shOutput(ctx, id, "echo fine", "fine\n", "exec after invalid requests"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkExecUnknown(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	env.Track(id)
	x, err := env.Exec(ctx, id, argv("echo", "hi"))
	if err != nil {
		return err
	}
	return errors.Join(expectUnknown(x), stillUnknown(ctx, env, id, "exec"))
}

func checkWorkspacePaths(ctx context.Context, env *Env) error {
	a, err := env.NewSandbox(ctx, "abs-a")
	if err != nil {
		return err
	}
	b, err := env.NewSandbox(ctx, "abs-b")
	if err != nil {
		return err
	}
	dir := "/workspace/abs-" + env.ID("d")
	var errs []error
	// Written through absolute paths: in a script, as argv elements, and
	// in an environment variable.
	steps := []noxapi.ExecRequest{
		argv("sh", "-c", "mkdir -p "+dir+" && echo one > "+dir+"/f"),
		argv("cp", dir+"/f", dir+"/g"),
		{Cmd: []string{"sh", "-c", `echo three > "$NOX_TARGET"`}, Env: map[string]string{"NOX_TARGET": dir + "/h"}},
	}
	for _, req := range steps {
		res, x, err := env.ExecOK(ctx, a, req)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		want(&errs, fmt.Sprintf("exitCode of %q", req.Cmd), res.ExitCode, 0, x)
	}
	// Read back relative to the workdir, and to the default workdir.
	req := argv("cat", "f", "g", "h")
	req.Workdir = &dir
	if res, x, err := env.ExecOK(ctx, a, req); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "stdout of `cat f g h` in workdir "+dir, res.Stdout, "one\none\nthree\n", x)
	}
	rel := strings.TrimPrefix(dir, "/workspace/")
	if res, x, err := env.ExecOK(ctx, a, argv("cat", rel+"/h")); err != nil {
		errs = append(errs, err)
	} else {
		want(&errs, "stdout of `cat "+rel+"/h` in the default workdir", res.Stdout, "three\n", x)
	}
	// Another sandbox does not see them.
	probe := "for p in " + dir + "/f " + dir + "/g " + dir + "/h; do if [ -e $p ]; then echo FOUND $p; fi; done"
	if out, err := env.Sh(ctx, b, probe); err != nil {
		errs = append(errs, fmt.Errorf("look for the files in another sandbox: %w", err))
	} else if out != "" {
		errs = append(errs, fmt.Errorf("files written through absolute /workspace paths in one sandbox appear in another: %q", strings.Fields(out)))
	}
	return errors.Join(errs...)
}
