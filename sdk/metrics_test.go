package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUsageAndMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t)
	sb := c.Sandbox("u1")
	_, err := sb.Create(ctx, CreateOptions{})
	assertNoErr(t, err)
	res, err := sb.Exec(ctx, ExecRequest{Cmd: []string{"sh", "-c", "head -c 3000 /dev/zero > /workspace/f"}})
	assertNoErr(t, err)
	assertEq(t, "exit code", res.ExitCode, 0)
	st, err := sb.Get(ctx)
	assertNoErr(t, err)
	// The test backend measures storage only.
	if st.Usage == nil || *st.Usage != (Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: 3000}) {
		t.Fatalf("usage = %+v, want storage 3000 only", st.Usage)
	}
	js, err := json.Marshal(st)
	assertNoErr(t, err)
	if !strings.Contains(string(js), `"usage":{"storageBytes":3000}`) {
		t.Errorf("JSON %s lacks the usage", js)
	}
	var back SandboxStatus
	assertNoErr(t, json.Unmarshal(js, &back))
	if back.Usage == nil || *back.Usage != *st.Usage {
		t.Errorf("usage after a JSON round trip = %+v, want %+v", back.Usage, st.Usage)
	}

	m, err := c.Metrics(ctx)
	assertNoErr(t, err)
	if !strings.Contains(m, `nox_execs_total{result="ok"} 1`) || !strings.Contains(m, `nox_sandbox_storage_bytes{session="u1"} 3000`) {
		t.Errorf("metrics lack the exec or the storage:\n%s", m)
	}
}

func TestMetricsUnsupported(t *testing.T) {
	t.Parallel()
	c := plainV1Client(t)
	if _, err := c.Metrics(context.Background()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Metrics on a v1 backend: %v, want ErrUnsupported", err)
	}
}

// plainV1Client is a client of a backend without GET /v1/info.
func plainV1Client(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no such endpoint")
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	assertNoErr(t, err)
	return c
}
