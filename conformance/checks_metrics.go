package conformance

// Checks of the extensions sandboxes.usage (the usage field of a
// sandbox's status) and metrics (GET /metrics).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// usageFileSize is the size of the file sandbox/usage writes.
const usageFileSize = 1 << 20

// usageWait is how long sandbox/usage waits for a backend that measures
// storage periodically to see the file.
const usageWait = 15 * time.Second

func metricsChecks() []Check {
	return []Check{
		{ID: "metrics/scrape", Level: LevelExtension, Capability: api.ExtMetrics, Parallel: true,
			Requirement: Must, Operations: []string{"getMetrics"}, Anchor: anchorMetrics,
			Spec: "GET /metrics: 200 in the Prometheus text format with at least one sample; 401 JSON Error without the token when auth.bearer is advertised",
			Run:  checkMetricsScrape},
		{ID: "sandbox/usage", Level: LevelExtension, Capability: api.ExtSandboxesUsage, Parallel: true,
			Requirement: Must, Operations: []string{"getSandbox", "listSandboxes"}, Extensions: []string{api.ExtSandboxesUsage}, Anchor: anchorUsage,
			Spec: fmt.Sprintf("SandboxStatus.usage (sandboxes.usage): present in the status of a sandbox that ran a command and wrote a file, its fields non-negative, storageBytes (when reported) at least the file's size within %s", usageWait),
			Run:  checkSandboxUsage},
	}
}

func checkMetricsScrape(ctx context.Context, env *Env) error {
	x, err := env.Raw(ctx, http.MethodGet, "/metrics", "", nil, true)
	if err != nil {
		return err
	}
	x.judge()
	var errs []error
	if err := expectStatus(x, http.StatusOK); err != nil {
		errs = append(errs, err)
	} else {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(string(x.Body)))
		samples := 0
		for _, f := range fams {
			samples += len(f.Metric)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("the body is not in the Prometheus text format: %v\n%s", err, x))
		case samples == 0:
			errs = append(errs, fmt.Errorf("no sample in the metrics\n%s", x))
		}
	}
	if env.Has(api.ExtAuthBearer) && env.Token != "" {
		nx, err := env.Raw(ctx, http.MethodGet, "/metrics", "", nil, false)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := expectError(nx, http.StatusUnauthorized); err != nil {
			errs = append(errs, fmt.Errorf("without a token (auth.bearer): %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkSandboxUsage(ctx context.Context, env *Env) error {
	byGet, byList := env.Has(api.ExtSandboxesGet), env.Has(api.ExtSandboxesList)
	if !byGet && !byList {
		return SkipUnclaimed("neither sandboxes.get nor sandboxes.list is advertised: no status to read")
	}
	id, err := env.NewSandbox(ctx, "usage")
	if err != nil {
		return err
	}
	if _, err := env.Sh(ctx, id, fmt.Sprintf("head -c %d /dev/zero > /workspace/usage.bin; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", usageFileSize)); err != nil {
		return err
	}
	deadline := time.Now().Add(usageWait)
	for {
		u, x, err := readUsage(ctx, env, id, byGet)
		if err != nil {
			return err
		}
		if u == nil {
			return fmt.Errorf("no usage in the sandbox's status although sandboxes.usage is advertised\n%s", x)
		}
		var errs []error
		for name, v := range map[string]float64{"cpuSeconds": deref(u.CPUSeconds, 0), "memoryBytes": float64(deref(u.MemoryBytes, 0)),
			"pids": float64(deref(u.Pids, 0)), "storageBytes": float64(deref(u.StorageBytes, 0))} {
			if v < 0 {
				errs = append(errs, fmt.Errorf("usage.%s is negative\n%s", name, x))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if u.StorageBytes == nil || *u.StorageBytes >= usageFileSize {
			if u.StorageBytes == nil {
				env.Notef("the backend does not report storageBytes")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("usage.storageBytes %d after %s, want at least %d (a file of that size was written)\n%s", *u.StorageBytes, usageWait, usageFileSize, x)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrSuite, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readUsage reads sandbox id's usage by GET (byGet) or from the list.
func readUsage(ctx context.Context, env *Env, id string, byGet bool) (*noxapi.SandboxUsage, *Exchange, error) {
	if byGet {
		x, err := env.send(ctx, "get "+id, func() (*http.Response, error) { return env.Client.GetSandbox(ctx, id) })
		if err != nil {
			return nil, x, err
		}
		// Only usage is this check's subject: the rest of the status (its
		// timestamps, say) is sandbox/get's, so it is not decoded here.
		var st usageOnly
		if err := expectJSON(x, http.StatusOK, &st); err != nil {
			return nil, x, err
		}
		return st.Usage, x, nil
	}
	after := ""
	for {
		p := &noxapi.ListSandboxesParams{}
		if after != "" {
			p.PageToken = &after
		}
		x, err := env.send(ctx, "list", func() (*http.Response, error) { return env.Client.ListSandboxes(ctx, p) })
		if err != nil {
			return nil, x, err
		}
		var l struct {
			Items []struct {
				SessionID string `json:"sessionId"`
				usageOnly
			} `json:"items"`
			NextPageToken *string `json:"nextPageToken"`
		}
		if err := expectJSON(x, http.StatusOK, &l); err != nil {
			return nil, x, err
		}
		for _, st := range l.Items {
			if st.SessionID == id {
				return st.Usage, x, nil
			}
		}
		if l.NextPageToken == nil || *l.NextPageToken == "" {
			return nil, x, fmt.Errorf("sandbox %s is not in the list\n%s", id, x)
		}
		after = *l.NextPageToken
	}
}

// usageOnly is the usage of a sandbox's status, read without the rest.
type usageOnly struct {
	Usage *noxapi.SandboxUsage `json:"usage"`
}

// deref is *p, or def for nil.
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
