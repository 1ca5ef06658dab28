package localbackend

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// raceLifecycle runs creates, execs (plain and streamed), touches and deletes of a
// few session ids from several goroutines for d, and fails on any create
// answered 404 or anything answered 500. An exec whose sandbox is deleted
// under it must end as a normal result (exit code 137 with a note).
func raceLifecycle(t *testing.T, e *testEnv, d time.Duration) {
	t.Helper()
	ids := []string{"race-a", "race-b"}
	var mu sync.Mutex
	counts := map[string]int{}
	var bad []string
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for time.Now().Before(deadline) {
				id := ids[r.IntN(len(ids))]
				var op string
				var status int
				var body []byte
				switch n := r.IntN(10); {
				case n < 4:
					op = "create"
					resp, b := e.do("PUT", "/v1/sandboxes/"+id, map[string]any{"ttlSeconds": 600})
					status, body = resp.StatusCode, b
				case n < 6:
					op = "exec"
					resp, b := e.do("POST", "/v1/sandboxes/"+id+"/exec", map[string]any{"cmd": []string{"sh", "-c", "echo hi; sleep 0.$((RANDOM % 3))"}})
					status, body = resp.StatusCode, b
					if status == 200 && !strings.Contains(string(b), `"exitCode":0`) && !strings.Contains(string(b), "sandbox was deleted") {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("exec ended oddly: %s", b))
						mu.Unlock()
					}
				case n < 7:
					op = "stream"
					resp, b := e.do("POST", "/v1/sandboxes/"+id+"/exec/stream", map[string]any{"cmd": []string{"sh", "-c", "echo hi; sleep 0.2"}})
					status, body = resp.StatusCode, b
					if status == 200 && strings.Contains(string(b), "event: error") {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("stream ended with an error event: %s", b))
						mu.Unlock()
					}
				case n < 8:
					op = "touch"
					resp, b := e.do("POST", "/v1/sandboxes/"+id+"/touch", nil)
					status, body = resp.StatusCode, b
				default:
					op = "delete"
					resp, b := e.do("DELETE", "/v1/sandboxes/"+id, nil)
					status, body = resp.StatusCode, b
				}
				mu.Lock()
				counts[fmt.Sprintf("%s %d", op, status)]++
				if status >= 500 && status != 503 || op == "create" && status == 404 {
					bad = append(bad, fmt.Sprintf("%s %s: %d %s", op, id, status, body))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	sort.Strings(keys)
	t.Logf("answers: %s", strings.Join(keys, ", "))
	if len(bad) > 0 {
		t.Errorf("%d bad answers; the first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}

func TestLifecycleRace(t *testing.T) {
	t.Parallel()
	raceLifecycle(t, setup(t, nil), 3*time.Second)
}

func TestRealDeleteDuringExec(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	deleteDuringExec(t, e)
}

func TestRealLifecycleRace(t *testing.T) {
	e := realEnv(t, nil)
	e.t = t
	raceLifecycle(t, e, 4*time.Second)
}
