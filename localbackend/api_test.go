package localbackend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func TestHealthzAndInfo(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.Version = "1.2.3" })
	resp, body := e.do("GET", "/healthz", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "OK") {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	ir, err := e.client.GetInfoWithResponse(t.Context())
	if err != nil || ir.JSON200 == nil {
		t.Fatalf("info: %v %s", err, ir.Body)
	}
	info := ir.JSON200
	if info.APIVersion != "v1" || info.Backend.Name != "nox-local" || info.Backend.Version != "1.2.3" {
		t.Errorf("info = %+v", info)
	}
	for _, x := range []string{"info", "sandboxes.get", "sandboxes.list", "exec.stream", "exec.flags"} {
		if !strings.Contains(strings.Join(info.Extensions, ","), x) {
			t.Errorf("extension %s missing: %v", x, info.Extensions)
		}
	}
	if strings.Contains(strings.Join(info.Extensions, ","), "auth.bearer") {
		t.Error("auth.bearer advertised without a token")
	}
	if info.Isolation == nil || info.Isolation.Tier != "fake" || info.Limits == nil || *info.Limits.MaxOutputBytes != 1<<20 {
		t.Errorf("isolation/limits = %+v %+v", info.Isolation, info.Limits)
	}
	if len(info.Images) != 1 || info.Images[0] != "default" {
		t.Errorf("images = %v", info.Images)
	}
	// A sane client request id is echoed, a hostile one replaced.
	req, _ := http.NewRequest("GET", e.url+"/healthz", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if got := r2.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("request id %q not echoed", got)
	}
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if got := r3.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Errorf("hostile request id echoed: %q", got)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxTTL = time.Hour })
	cases := []struct {
		name, id string
		body     any
		want     string
	}{
		{"ttl zero", "a", map[string]any{"ttlSeconds": 0}, "ttlSeconds"},
		{"ttl over max", "a", map[string]any{"ttlSeconds": 7200}, "ttlSeconds: must be between 1 and 3600"},
		{"ttl string", "a", `{"ttlSeconds":"x"}`, "ttlSeconds"},
		{"malformed json", "a", `{"ttlSeconds":`, "body"},
		{"unknown image", "a", map[string]any{"image": "python:3"}, `image: unknown image "python:3"; available: default`},
		{"empty image", "a", map[string]any{"image": ""}, "image"},
		{"bad cpu", "a", map[string]any{"cpuLimit": "lots"}, "cpuLimit: must be a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi"},
		{"cpu exponent", "a", map[string]any{"cpuLimit": "1e99"}, "cpuLimit"},
		{"cpu over max", "a", map[string]any{"cpuLimit": "64"}, "cpuLimit: \"64\" exceeds the maximum 4"},
		{"memory over max", "a", map[string]any{"memoryLimit": "1Ti"}, "memoryLimit"},
		{"memory zero", "a", map[string]any{"memoryLimit": "0"}, "memoryLimit: must be greater than zero"},
		// Below what the kernel accepts (a CPU quota under 1ms per 100ms)
		// or what the sandbox's own processes need: refused, not a
		// sandbox whose every exec is a 500.
		{"cpu below min", "a", map[string]any{"cpuLimit": "1m"}, `cpuLimit: "1m" is below the minimum 10m`},
		{"cpu just below min", "a", map[string]any{"cpuLimit": "9m"}, `cpuLimit: "9m" is below the minimum 10m`},
		{"memory below min", "a", map[string]any{"memoryLimit": "1"}, `memoryLimit: "1" is below the minimum 16Mi`},
		{"memory just below min", "a", map[string]any{"memoryLimit": "16777215"}, `memoryLimit: "16777215" is below the minimum 16Mi`},
		{"storage bad", "a", map[string]any{"ephemeralStorageLimit": "2GB"}, "ephemeralStorageLimit"},
		{"bad session id", "-a", map[string]any{"ttlSeconds": 60}, "sessionId: must be 1 to 128 characters"},
		{"long session id", strings.Repeat("a", 129), map[string]any{"ttlSeconds": 60}, "sessionId"},
		{"dotdot session id", "..", map[string]any{"ttlSeconds": 60}, "sessionId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do("PUT", "/v1/sandboxes/"+c.id, c.body)
			expectError(t, resp, body, 400, c.want)
		})
	}
	// The minima themselves are accepted, and advertised.
	e.create("min", map[string]any{"cpuLimit": "10m", "memoryLimit": "16Mi"})
	ir, err := e.client.GetInfoWithResponse(t.Context())
	if err != nil || ir.JSON200 == nil || ir.JSON200.Limits == nil {
		t.Fatalf("info: %v %s", err, ir.Body)
	}
	if l := ir.JSON200.Limits; l.MinCPU == nil || *l.MinCPU != "10m" || l.MinMemory == nil || *l.MinMemory != "16Mi" {
		t.Errorf("info limits %s: want minCpu 10m, minMemory 16Mi", ir.Body)
	}
}

func TestMinimumLimitsConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		minCPU, minMem string
		want           string // "" valid
	}{
		{"defaults", "", "", ""},
		{"raised", "100m", "64Mi", ""},
		{"cpu below the kernel's quota", "5m", "", "field MinCPU"},
		{"memory too small", "", "512Ki", "field MinMemory"},
		{"above default", "2", "", "below its minimum"},
	} {
		c := Config{MinCPU: tc.minCPU, MinMemory: tc.minMem}
		c.applyDefaults()
		_, err := c.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := t.Context()
	ttl := int32(300)
	cpu, mem := "500m", "256Mi"
	cr, err := e.client.CreateSandboxWithResponse(ctx, "life", noxapi.CreateSandboxRequest{TTLSeconds: &ttl, CPULimit: &cpu, MemoryLimit: &mem})
	if err != nil || cr.JSON200 == nil {
		t.Fatalf("create: %v %s", err, cr.Body)
	}
	if cr.JSON200.PodName != "sandbox-life" || time.Until(cr.JSON200.ExpiresAt) < 290*time.Second {
		t.Errorf("create = %+v", cr.JSON200)
	}
	// Ensure again: same podName.
	cr2, err := e.client.CreateSandboxWithResponse(ctx, "life", noxapi.CreateSandboxRequest{TTLSeconds: &ttl})
	if err != nil || cr2.JSON200 == nil || cr2.JSON200.PodName != cr.JSON200.PodName {
		t.Fatalf("ensure: %v %s", err, cr2.Body)
	}
	gr, err := e.client.GetSandboxWithResponse(ctx, "life")
	if err != nil || gr.JSON200 == nil {
		t.Fatalf("get: %v %s", err, gr.Body)
	}
	st := gr.JSON200
	if st.State != "ready" || st.TTLSeconds != 300 || *st.Limits.CPU != "500m" || *st.Limits.Memory != "256Mi" || *st.Limits.EphemeralStorage != "2Gi" || len(st.Limits.Unenforced) == 0 || *st.Image != "default" {
		t.Errorf("status = %+v limits %+v", st, st.Limits)
	}
	// Touch answers 200 with a JSON TouchResult.
	resp, body := e.do("POST", "/v1/sandboxes/life/touch", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("touch: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var tr noxapi.TouchResult
	if err := json.Unmarshal(body, &tr); err != nil || tr.ExpiresAt == nil || tr.Message == nil {
		t.Fatalf("touch body %s: %v", body, err)
	}
	r := e.exec("life", map[string]any{"cmd": []string{"echo", "hi"}})
	if r.ExitCode != 0 || r.Stdout != "hi\n" {
		t.Errorf("exec = %+v", r)
	}
	lr, err := e.client.ListSandboxesWithResponse(ctx, nil)
	if err != nil || lr.JSON200 == nil || len(lr.JSON200.Items) != 1 || lr.JSON200.Items[0].SessionID != "life" {
		t.Fatalf("list: %v %s", err, lr.Body)
	}
	resp, body = e.do("DELETE", "/v1/sandboxes/life", nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	for _, p := range []struct{ method, path string }{
		{"DELETE", "/v1/sandboxes/life"}, {"GET", "/v1/sandboxes/life"}, {"POST", "/v1/sandboxes/life/touch"},
		{"GET", "/v1/sandboxes/life/files/download"},
	} {
		resp, body := e.do(p.method, p.path, nil)
		expectError(t, resp, body, 404, `sandbox "life"`)
	}
	resp, body = e.do("POST", "/v1/sandboxes/life/exec", map[string]any{"cmd": []string{"true"}})
	expectError(t, resp, body, 404, `sandbox "life"`)
	resp, body = e.do("POST", "/v1/sandboxes/life/files/upload", tarGz(t, nil))
	expectError(t, resp, body, 404, `sandbox "life"`)
	for _, p := range []string{"/v1/sandboxes/-x", "/v1/sandboxes/-x/touch"} {
		m := "GET"
		if strings.HasSuffix(p, "touch") {
			m = "POST"
		}
		resp, body := e.do(m, p, nil)
		expectError(t, resp, body, 400, "sessionId")
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for i := range 7 {
		e.create(fmt.Sprintf("s%02d", 6-i), nil)
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		path := "/v1/sandboxes?pageSize=3"
		if token != "" {
			path += "&pageToken=" + token
		}
		resp, body := e.do("GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		var l noxapi.SandboxList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			got = append(got, it.SessionID)
		}
		if l.NextPageToken == nil {
			break
		}
		token = *l.NextPageToken
		if pages > 5 {
			t.Fatal("too many pages")
		}
	}
	if strings.Join(got, ",") != "s00,s01,s02,s03,s04,s05,s06" {
		t.Errorf("list order = %v", got)
	}
	resp, body := e.do("GET", "/v1/sandboxes?pageToken=not*base64", nil)
	expectError(t, resp, body, 400, "pageToken: malformed")
	resp, body = e.do("GET", "/v1/sandboxes?pageSize=0", nil)
	expectError(t, resp, body, 400, "pageSize")
	resp, body = e.do("GET", "/v1/sandboxes?pageSize=x", nil)
	expectError(t, resp, body, 400, "pageSize")
}

func TestConcurrentEnsure(t *testing.T) {
	t.Parallel()
	rt := &fakeRuntime{startDelay: 300 * time.Millisecond}
	e := start(t, testConfig(t), rt)
	e.t = t
	var wg sync.WaitGroup
	wg.Go(func() {
		// While the environment is being built the sandbox is pending.
		waitFor(t, func() bool { st, err := e.b.store.get("same"); return err == nil && st.state == "pending" })
		resp, body := e.do("GET", "/v1/sandboxes/same", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"state":"pending"`) {
			t.Errorf("get while starting: %d %s", resp.StatusCode, body)
		}
	})
	pods := make([]string, 10)
	for i := range pods {
		wg.Go(func() {
			resp, body := e.do("PUT", "/v1/sandboxes/same", map[string]any{"ttlSeconds": 60})
			if resp.StatusCode != 200 {
				t.Errorf("create: %d %s", resp.StatusCode, body)
				return
			}
			var r noxapi.CreateSandboxResult
			_ = json.Unmarshal(body, &r)
			pods[i] = r.PodName
		})
	}
	wg.Wait()
	for _, p := range pods {
		if p != "sandbox-same" {
			t.Errorf("podName %q", p)
		}
	}
	if n := rt.starts.Load(); n != 1 {
		t.Errorf("runtime started %d environments, want 1", n)
	}
}

func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	start(t, c, &fakeRuntime{})
	c.applyDefaults()
	lim, _ := c.validate()
	if b, err := newBackend(c, lim, func() (runtime, error) { return &fakeRuntime{}, nil }); err == nil {
		b.Close()
		t.Fatal("second backend on one data dir succeeded")
	} else if !strings.Contains(err.Error(), "in use") || !errors.Is(err, ErrDataDirLocked) {
		t.Errorf("err = %v", err)
	}
}

func TestConfiguredDefaults(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) {
		c.DefaultTTL = 2 * time.Minute
		c.DefaultExecTimeout = time.Second
		c.Images = map[string]string{"alt": t.TempDir(), "host": ""}
		c.DefaultImageName = "host"
	})
	e.create("defaults", map[string]any{})
	st, err := e.b.store.get("defaults")
	if err != nil || st.meta.TTLSeconds != 120 || st.meta.Image != "host" {
		t.Fatalf("create without fields: %+v %v", st.meta, err)
	}
	r := e.exec("defaults", map[string]any{"cmd": []string{"sleep", "5"}})
	if r.ExitCode != 124 || r.DurationMs > 4000 {
		t.Errorf("default timeout not applied: %+v", r)
	}
	resp, body := e.do("PUT", "/v1/sandboxes/img", map[string]any{"image": "nope"})
	expectError(t, resp, body, 400, "available: alt, host")
	if _, err := New(Config{DataDir: t.TempDir(), Images: map[string]string{"x": "relative/dir"}}); err == nil || !strings.Contains(err.Error(), "Images") {
		t.Errorf("New with a bad image dir: %v", err)
	}
	if _, err := New(Config{DataDir: t.TempDir(), Isolation: "strong"}); err == nil || !strings.Contains(err.Error(), "Isolation") {
		t.Errorf("New with a bad tier: %v", err)
	}
	if _, err := New(Config{DataDir: t.TempDir(), UIDRegistry: "uid-ranges"}); err == nil || !strings.Contains(err.Error(), "field UIDRegistry") {
		t.Errorf("New with a relative uid registry: %v", err)
	}
}

// TestCreateAnswersTheExpiryGetReports: however long the environment takes
// to build, the expiresAt a create answers is the one a GET reports right
// after (the end of the create counts as activity before the answer is
// made, not after).
func TestCreateAnswersTheExpiryGetReports(t *testing.T) {
	t.Parallel()
	e := start(t, testConfig(t), &fakeRuntime{startDelay: 1500 * time.Millisecond})
	e.t = t
	resp, body := e.do("PUT", "/v1/sandboxes/slow", map[string]any{"ttlSeconds": 60})
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created noxapi.CreateSandboxResult
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do("GET", "/v1/sandboxes/slow", nil)
	var st noxapi.SandboxStatus
	if err := json.Unmarshal(body, &st); resp.StatusCode != 200 || err != nil {
		t.Fatalf("get: %d %s %v", resp.StatusCode, body, err)
	}
	if d := st.ExpiresAt.Sub(created.ExpiresAt); d < -time.Millisecond || d > time.Second {
		t.Errorf("get's expiresAt %v is %v after create's %v", st.ExpiresAt, d, created.ExpiresAt)
	}
}
