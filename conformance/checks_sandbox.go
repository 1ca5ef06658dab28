package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

func sandboxChecks() []Check {
	return []Check{
		{ID: "sandbox/create", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorCreate,
			Spec: "PUT /v1/sandboxes/{sessionId}: 200 {podName, expiresAt (RFC 3339, now + ttlSeconds)}",
			Run:  checkCreate},
		{ID: "sandbox/create-default-ttl", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorTTL,
			Spec: "PUT /v1/sandboxes/{sessionId}: ttlSeconds absent means the default (900, or Info.limits.defaultTtlSeconds)",
			Run:  checkCreateDefaultTTL},
		{ID: "sandbox/create-idempotent", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorCreate,
			Spec: "PUT /v1/sandboxes/{sessionId}: idempotent ensure, same podName, expiry refreshed",
			Run:  checkCreateIdempotent},
		{ID: "sandbox/create-concurrent", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorCreate,
			Spec: "PUT /v1/sandboxes/{sessionId}: concurrent creates of one session id yield one sandbox",
			Run:  checkCreateConcurrent},
		{ID: "sandbox/create-invalid-session-id", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorSessionID,
			Spec: "PUT /v1/sandboxes/{sessionId}: 400 JSON Error for an invalid session id",
			Run:  checkCreateInvalidID},
		{ID: "sandbox/create-invalid-ttl", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorTTL,
			Spec: "PUT /v1/sandboxes/{sessionId}: 400 JSON Error for an invalid ttlSeconds or malformed JSON",
			Run:  checkCreateInvalidTTL},
		{ID: "sandbox/create-resource-limits", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorQuantity,
			Spec: "PUT /v1/sandboxes/{sessionId}: Kubernetes quantities accepted for cpuLimit/memoryLimit/ephemeralStorageLimit; 400 for malformed ones",
			Run:  checkCreateLimits},
		{ID: "sandbox/touch-extends-expiry", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"touchSandbox"}, Anchor: anchorTouch,
			Spec: "POST /v1/sandboxes/{sessionId}/touch: 200, expiresAt = now + ttlSeconds",
			Run:  checkTouch},
		{ID: "sandbox/touch-unknown-404", Level: LevelRecommended, Parallel: true,
			Requirement: Must, Operations: []string{"touchSandbox"}, Anchor: anchorTouchUnknown,
			Spec: "POST /v1/sandboxes/{sessionId}/touch: 404 JSON Error for an unknown sandbox",
			Run:  checkTouchUnknown},
		{ID: "sandbox/delete", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"deleteSandbox"}, Anchor: anchorDelete,
			Spec: "DELETE /v1/sandboxes/{sessionId}: 204 (or 200), then the sandbox is gone (exec 404)",
			Run:  checkDelete},
		{ID: "sandbox/delete-unknown", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"deleteSandbox"}, Anchor: anchorDeleteUnknown,
			Spec: "DELETE /v1/sandboxes/{sessionId}: unknown session id is 404 (or 204)",
			Run:  checkDeleteUnknown},
		{ID: "sandbox/isolation-files", Level: LevelMinimum, Parallel: true,
			Requirement: Must, Operations: []string{"createSandbox", "execInSandbox"}, Anchor: anchorSpecSecurity,
			Spec: "Security: isolation between sandboxes (one sandbox cannot see another's files)",
			Run:  checkIsolationFiles},
		{ID: "sandbox/ttl-expiry", Level: LevelMinimum, Parallel: true, Slow: true,
			Requirement: Must, Operations: []string{"createSandbox"}, Anchor: anchorSpecGeneral,
			Spec: "Lifecycle: a sandbox idle past expiresAt is cleaned up (exec answers 404)",
			Run:  checkTTLExpiry},
	}
}

// expiresAtOf reads the expiresAt of a create or touch answer leniently
// (any timestamp form real backends send). An answer whose expiresAt
// cannot be read at all shows the timestamp deviation.
func expiresAtOf(x *Exchange) (time.Time, error) {
	var res lenientCreate
	if err := decodeLenient(x, &res); err != nil {
		return time.Time{}, err
	}
	if res.ExpiresAt.Raw == "" || res.ExpiresAt.Raw == "null" {
		return time.Time{}, ownFinding(x, aspectNone, "no expiresAt", "expiresAt", fmt.Errorf("no expiresAt in the answer\n%s", x))
	}
	if res.ExpiresAt.IsZero() {
		return time.Time{}, &finding{key: keyTimestamps, title: timestampsTitle, req: Must, anchor: anchorCreate, x: x,
			observed: "expiresAt " + res.ExpiresAt.Raw, expected: exampleTimestamp,
			err: fmt.Errorf("expiresAt %s cannot be read as a timestamp\n%s", res.ExpiresAt.Raw, x)}
	}
	return res.ExpiresAt.Time, nil
}

// createAndCheck creates id with ttl and returns podName and expiresAt.
// Strict, the answer is the check's subject: it must be a 200 matching the
// contract, with expiresAt now + ttl within the clock skew. Otherwise it
// is read leniently, as a client reads it.
func createAndCheck(ctx context.Context, env *Env, id string, ttl int32, strict bool) (string, time.Time, *Exchange, error) {
	before := time.Now()
	x, err := env.Create(ctx, id, noxapi.CreateSandboxRequest{TTLSeconds: &ttl})
	if err != nil {
		return "", time.Time{}, x, err
	}
	after := time.Now()
	if strict {
		x.judge()
		err = expectStatus(x, http.StatusOK)
	} else {
		err = expectSuccess(x)
	}
	if err != nil {
		return "", time.Time{}, x, err
	}
	var errs []error
	var res lenientCreate
	if err := decodeLenient(x, &res); err != nil {
		return "", time.Time{}, x, err
	}
	if strict && res.PodName == "" && bytes.Contains(x.Body, []byte(`"podName"`)) {
		errs = append(errs, ownFinding(x, aspectNone, `podName ""`, "a non-empty podName", fmt.Errorf("answer has an empty podName\n%s", x)))
	}
	exp, err := expiresAtOf(x)
	if err != nil {
		errs = append(errs, err)
	} else if strict {
		skew := env.cfg.ClockSkew
		lo := before.Add(time.Duration(ttl)*time.Second - skew)
		hi := after.Add(time.Duration(ttl)*time.Second + skew)
		if exp.Before(lo) || exp.After(hi) {
			errs = append(errs, ownFinding(x, aspectNone, "expiresAt "+exp.UTC().Format(time.RFC3339), fmt.Sprintf("about now + %ds", ttl),
				fmt.Errorf("expiresAt %s is not about now + ttlSeconds (%ds): want between %s and %s\n%s",
					exp.Format(time.RFC3339), ttl, lo.UTC().Format(time.RFC3339), hi.UTC().Format(time.RFC3339), x)))
		}
	}
	return res.PodName, exp, x, errors.Join(errs...)
}

func checkCreate(ctx context.Context, env *Env) error {
	id := env.ID("create")
	_, _, _, err := createAndCheck(ctx, env, id, 600, true)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// The sandbox is usable (the Python client's readiness probe).
	res, x, err := env.ExecOK(ctx, id, noxapi.ExecRequest{Cmd: []string{"echo", "ready"}, TimeoutSeconds: ptr[int32](5)})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if res.Stdout != "ready\n" || res.ExitCode != 0 {
		errs = append(errs, ownFinding(x, aspectNone, fmt.Sprintf("exit %d, stdout %q", res.ExitCode, res.Stdout), `exit 0, stdout "ready\n"`,
			fmt.Errorf("readiness probe: want exit 0 and stdout \"ready\\n\"\n%s", x)))
	}
	return errors.Join(errs...)
}

func checkCreateDefaultTTL(ctx context.Context, env *Env) error {
	ttl := int32(900)
	if env.Info != nil && env.Info.Limits != nil && env.Info.Limits.DefaultTTLSeconds != nil {
		ttl = *env.Info.Limits.DefaultTTLSeconds
	}
	id := env.ID("default-ttl")
	before := time.Now()
	x, err := env.Create(ctx, id, noxapi.CreateSandboxRequest{})
	if err != nil {
		return err
	}
	after := time.Now()
	if err := expectSuccess(x); err != nil {
		return err
	}
	exp, err := expiresAtOf(x)
	if err != nil {
		return err
	}
	skew := env.cfg.ClockSkew
	if lo, hi := before.Add(time.Duration(ttl)*time.Second-skew), after.Add(time.Duration(ttl)*time.Second+skew); exp.Before(lo) || exp.After(hi) {
		return ownFinding(x, aspectNone, "expiresAt "+exp.UTC().Format(time.RFC3339), fmt.Sprintf("about now + %ds", ttl),
			fmt.Errorf("create without ttlSeconds: expiresAt %s, want about now + %ds\n%s", exp.Format(time.RFC3339), ttl, x))
	}
	return nil
}

func checkCreateIdempotent(ctx context.Context, env *Env) error {
	id := env.ID("ensure")
	pod1, exp1, x1, err := createAndCheck(ctx, env, id, 600, false)
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, "echo keep > /workspace/keep.txt"); err != nil {
		return fmt.Errorf("write a file before the second create: %w", err)
	}
	if err := sleep(ctx, 1100*time.Millisecond); err != nil {
		return err
	}
	pod2, exp2, x2, err := createAndCheck(ctx, env, id, 600, false)
	// The second answer must be like the first: a departure from the
	// contract in both is the create checks' subject, not this one's.
	env.judgeConsistent(x1, x2)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("second create of the same id: %w", err))
	}
	if pod2 != "" && pod1 != pod2 {
		errs = append(errs, ownFinding(x2, aspectNone, fmt.Sprintf("podName %q", pod2), fmt.Sprintf("the first's %q", pod1),
			fmt.Errorf("second create answered podName %q, want the first's %q\n%s", pod2, pod1, x2)))
	}
	if !exp1.IsZero() && !exp2.IsZero() && !exp2.After(exp1) {
		errs = append(errs, ownFinding(x2, aspectNone, "expiresAt "+exp2.Format(time.RFC3339Nano), "later than the first's "+exp1.Format(time.RFC3339Nano),
			fmt.Errorf("second create did not refresh expiresAt: %s, first was %s\n%s", exp2.Format(time.RFC3339Nano), exp1.Format(time.RFC3339Nano), x2)))
	}
	out, err := env.Sh(ctx, id, "cat /workspace/keep.txt")
	if err != nil || out != "keep\n" {
		errs = append(errs, fmt.Errorf("a file written before the second create is gone (the ensure recreated the sandbox): stdout %q, %v", out, err))
	}
	return errors.Join(errs...)
}

func checkCreateConcurrent(ctx context.Context, env *Env) error {
	id := env.ID("concurrent")
	const n = 6
	var wg sync.WaitGroup
	pods := make([]string, n)
	errs := make([]error, n)
	xs := make([]*Exchange, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod, _, x, err := createAndCheck(ctx, env, id, 600, false)
			pods[i], xs[i], errs[i] = pod, x, err
		}()
	}
	wg.Wait()
	env.judgeConsistent(xs...)
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d concurrent creates of one id misbehaved; the first: %w", len(failed), n, failed[0])
	}
	var all []error
	for i := 1; i < n; i++ {
		if pods[i] != pods[0] {
			all = append(all, fmt.Errorf("concurrent creates of %s answered different podNames: %q", id, pods))
			break
		}
	}
	if err := env.shOutput(ctx, id, "echo one", "one\n", "exec after concurrent creates"); err != nil {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func checkCreateInvalidID(ctx context.Context, env *Env) error {
	ttl := int32(60)
	var errs []error
	bad := []string{
		env.ID("space") + " x",                    // space
		"_" + env.ID("under"),                     // must start with a letter or digit
		"-" + env.ID("dash"),                      // must start with a letter or digit
		env.ID("long") + strings.Repeat("a", 129), // too long
		env.ID("semi") + ";x",
		env.ID("uni") + "é",
	}
	for _, id := range bad {
		body, _ := json.Marshal(noxapi.CreateSandboxRequest{TTLSeconds: &ttl})
		x, err := env.Raw(ctx, http.MethodPut, "/v1/sandboxes/"+url.PathEscape(id), "application/json", body, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if x.Status/100 == 2 {
			env.Track(id) // the backend accepted it: delete it afterwards
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, fmt.Errorf("session id %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func checkCreateInvalidTTL(ctx context.Context, env *Env) error {
	var errs []error
	cases := []struct{ name, body string }{
		{"ttl-zero", `{"ttlSeconds":0}`},
		{"ttl-negative", `{"ttlSeconds":-5}`},
		{"ttl-string", `{"ttlSeconds":"600"}`},
		{"ttl-fraction", `{"ttlSeconds":1.5}`},
		{"malformed", `{"ttlSeconds":`},
	}
	for _, c := range cases {
		id := env.ID(c.name)
		env.Track(id)
		x, err := env.Raw(ctx, http.MethodPut, "/v1/sandboxes/"+id, "application/json", []byte(c.body), true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, fmt.Errorf("body %s: %w", c.body, err))
		}
	}
	return errors.Join(errs...)
}

func checkCreateLimits(ctx context.Context, env *Env) error {
	var errs []error
	id := env.ID("limits")
	ttl := int32(600)
	x, err := env.Create(ctx, id, noxapi.CreateSandboxRequest{TTLSeconds: &ttl,
		CPULimit: ptr("500m"), MemoryLimit: ptr("512Mi"), EphemeralStorageLimit: ptr("1Gi")})
	if err != nil {
		return err
	}
	if err := expectSuccess(x); err != nil {
		errs = append(errs, fmt.Errorf("create with valid limits: %w", err))
	} else if err := env.shOutput(ctx, id, "echo limited", "limited\n", "exec in a sandbox with limits"); err != nil {
		errs = append(errs, err)
	}
	for _, body := range []string{
		`{"ttlSeconds":60,"cpuLimit":"lots"}`,
		`{"ttlSeconds":60,"memoryLimit":"1 GB"}`,
		`{"ttlSeconds":60,"ephemeralStorageLimit":"-2Gi"}`,
	} {
		bid := env.ID("bad-limit")
		x, err := env.Raw(ctx, http.MethodPut, "/v1/sandboxes/"+bid, "application/json", []byte(body), true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if x.Status/100 == 2 {
			env.Track(bid)
		}
		if err := expectError(x, http.StatusBadRequest); err != nil {
			errs = append(errs, fmt.Errorf("body %s: %w", body, err))
		}
	}
	return errors.Join(errs...)
}

// getStatus returns a sandbox's status through getSandbox, read
// leniently. Strict, the answer is the check's subject: it must be a 200
// matching the contract.
func getStatus(ctx context.Context, env *Env, id string, strict bool) (*noxapi.SandboxStatus, *Exchange, error) {
	resp, err := env.Client.GetSandbox(ctx, id)
	x, err := env.do(ctx, "get sandbox "+id, resp, err)
	if err != nil {
		return nil, x, err
	}
	if strict {
		x.judge()
		err = expectStatus(x, http.StatusOK)
	} else {
		err = expectSuccess(x)
	}
	if err != nil {
		return nil, x, fmt.Errorf("get sandbox: %w", err)
	}
	var st lenientStatus
	if err := decodeLenient(x, &st); err != nil {
		return nil, x, fmt.Errorf("get sandbox: %w", err)
	}
	return st.status(), x, nil
}

func checkTouch(ctx context.Context, env *Env) error {
	id := env.ID("touch")
	const ttl = 600
	_, exp0, _, err := createAndCheck(ctx, env, id, ttl, false)
	if err != nil {
		return err
	}
	if err := sleep(ctx, 1500*time.Millisecond); err != nil {
		return err
	}
	before := time.Now()
	resp, err := env.Client.TouchSandbox(ctx, id)
	x, err := env.do(ctx, "touch "+id, resp, err)
	if err != nil {
		return err
	}
	after := time.Now()
	x.judge()
	if err := expectStatus(x, http.StatusOK); err != nil {
		return fmt.Errorf("touch must answer 200 (the Python client treats anything else as failure): %w", err)
	}
	// Observe the new expiry: getSandbox when advertised, else the
	// optional TouchResult body.
	var newExp time.Time
	var src *Exchange
	if env.Has(api.ExtSandboxesGet) {
		st, gx, err := getStatus(ctx, env, id, false)
		if err != nil {
			return err
		}
		newExp, src = st.ExpiresAt, gx
	} else if strings.HasPrefix(x.Header.Get("Content-Type"), "application/json") && len(x.Body) > 0 {
		var tr lenientCreate
		if err := json.Unmarshal(x.Body, &tr); err != nil {
			return ownFinding(x, aspectBody, bodyExcerpt(x), "a TouchResult", fmt.Errorf("touch answered application/json that is not a TouchResult: %w\n%s", err, x))
		}
		if tr.ExpiresAt.IsZero() {
			return nil // nothing to observe (the form of the answer is judged above)
		}
		newExp, src = tr.ExpiresAt.Time, x
	} else {
		return nil // a v1 backend gives no way to observe the expiry
	}
	var errs []error
	if !newExp.After(exp0) {
		errs = append(errs, ownFinding(src, aspectNone, "expiresAt "+newExp.Format(time.RFC3339Nano), "later than "+exp0.Format(time.RFC3339Nano),
			fmt.Errorf("touch did not move expiresAt forward: %s, was %s\n%s", newExp.Format(time.RFC3339Nano), exp0.Format(time.RFC3339Nano), src)))
	}
	skew := env.cfg.ClockSkew
	if newExp.Before(before.Add(ttl*time.Second-skew)) || newExp.After(after.Add(ttl*time.Second+skew)) {
		errs = append(errs, ownFinding(src, aspectNone, "expiresAt "+newExp.UTC().Format(time.RFC3339), "about touch time + ttlSeconds",
			fmt.Errorf("after touch expiresAt is %s, want about touch time + ttlSeconds (%s)\n%s", newExp.Format(time.RFC3339), after.Add(ttl*time.Second).UTC().Format(time.RFC3339), src)))
	}
	return errors.Join(errs...)
}

func checkTouchUnknown(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	env.Track(id)
	resp, err := env.Client.TouchSandbox(ctx, id)
	x, err := env.do(ctx, "touch "+id, resp, err)
	if err != nil {
		return err
	}
	return errors.Join(expectUnknown(x), stillUnknown(ctx, env, id, "touch"))
}

// stillUnknown checks, where the backend lets one look without side
// effects (sandboxes.get), that a request for the unknown sandbox id did
// not create it.
func stillUnknown(ctx context.Context, env *Env, id, what string) error {
	if !env.Has(api.ExtSandboxesGet) {
		return nil
	}
	resp, err := env.Client.GetSandbox(ctx, id)
	x, err := env.do(ctx, "get "+id, resp, err)
	if err != nil {
		return err
	}
	if err := expectUnknown(x); err != nil {
		return fmt.Errorf("after a %s of the unknown sandbox %s, it exists (an implicit create): %w", what, id, err)
	}
	return nil
}

func checkDelete(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "delete")
	if err != nil {
		return err
	}
	resp, err := env.Client.DeleteSandbox(ctx, id)
	x, err := env.do(ctx, "delete "+id, resp, err)
	if err != nil {
		return err
	}
	x.judge()
	if err := expectStatus(x, http.StatusNoContent, http.StatusOK); err != nil {
		return err
	}
	var errs []error
	ex, err := env.Exec(ctx, id, noxapi.ExecRequest{Cmd: []string{"echo", "still here"}})
	if err != nil {
		return err
	}
	if err := expectUnknown(ex); err != nil {
		errs = append(errs, fmt.Errorf("exec after delete: %w", err))
	}
	resp, err = env.Client.DeleteSandbox(ctx, id)
	x2, err := env.do(ctx, "delete again "+id, resp, err)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := expectStatus(x2, http.StatusNotFound, http.StatusNoContent); err != nil {
		errs = append(errs, fmt.Errorf("second delete: %w", err))
	}
	return errors.Join(errs...)
}

func checkDeleteUnknown(ctx context.Context, env *Env) error {
	id := env.ID("never-created")
	resp, err := env.Client.DeleteSandbox(ctx, id)
	x, err := env.do(ctx, "delete "+id, resp, err)
	if err != nil {
		return err
	}
	x.judge()
	if x.Status == http.StatusNotFound {
		return expectError(x, http.StatusNotFound)
	}
	return expectStatus(x, http.StatusNotFound, http.StatusNoContent)
}

func checkIsolationFiles(ctx context.Context, env *Env) error {
	a, err := env.NewSandbox(ctx, "iso-a")
	if err != nil {
		return err
	}
	b, err := env.NewSandbox(ctx, "iso-b")
	if err != nil {
		return err
	}
	secret := "secret-" + env.ID("f")
	// /workspace must be writable; /tmp is used too when it is.
	if _, err := env.Sh(ctx, a, "echo hidden > /workspace/"+secret+" || exit 1; { mkdir -p /tmp/"+secret+" && echo hidden > /tmp/"+secret+"/x; } 2>/dev/null; true"); err != nil {
		return fmt.Errorf("write a file in sandbox A: %w", err)
	}
	var errs []error
	out, err := env.Sh(ctx, b, "ls -a /workspace; for p in /workspace/"+secret+" /tmp/"+secret+"; do if [ -e $p ]; then echo FOUND $p; fi; done")
	if err != nil {
		return fmt.Errorf("look for A's files in sandbox B: %w", err)
	}
	if strings.Contains(out, secret) {
		errs = append(errs, fmt.Errorf("sandbox B sees sandbox A's files %s (in /workspace or /tmp): B's listing:\n%s", secret, out))
	}
	// And A's files are still there (the check is not vacuous).
	if err := env.shOutput(ctx, a, "cat /workspace/"+secret, "hidden\n", "sandbox A lost its own file"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkTTLExpiry(ctx context.Context, env *Env) error {
	id := env.ID("ttl")
	const ttl = 3
	_, exp, _, createErr := createAndCheck(ctx, env, id, ttl, false)
	if exp.IsZero() {
		return createErr
	}
	deadline := exp.Add(env.cfg.ExpiryGrace)
	if env.Has(api.ExtSandboxesGet) {
		// Poll without refreshing the TTL until the sandbox is gone.
		if err := sleep(ctx, time.Until(exp)); err != nil {
			return err
		}
		for {
			resp, err := env.Client.GetSandbox(ctx, id)
			gx, err := env.do(ctx, "get "+id, resp, err)
			if err != nil {
				return err
			}
			if gx.Status == http.StatusNotFound {
				break
			}
			if time.Now().After(deadline) {
				return errors.Join(createErr, fmt.Errorf("sandbox still exists %s after its expiresAt (%s)\n%s", env.cfg.ExpiryGrace, exp.Format(time.RFC3339), gx))
			}
			if err := sleep(ctx, 250*time.Millisecond); err != nil {
				return err
			}
		}
	} else {
		// Every v1 call but delete refreshes the TTL: probe once, when
		// the grace has passed.
		if err := sleep(ctx, time.Until(deadline)); err != nil {
			return err
		}
	}
	ex, err := env.Exec(ctx, id, noxapi.ExecRequest{Cmd: []string{"echo", "alive"}})
	if err != nil {
		return err
	}
	if err := expectUnknown(ex); err != nil {
		return errors.Join(createErr, fmt.Errorf("exec after the TTL lapsed (expiresAt %s): %w", exp.Format(time.RFC3339), err))
	}
	return createErr
}

func ptr[T any](v T) *T { return &v }
