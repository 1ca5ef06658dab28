package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// osThreads is the number of OS threads of this process.
func osThreads(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: in /proc/self/status")
	return 0
}

// TestThreadsDoNotGrowPerSandbox: a running sandbox must not hold an OS
// thread of the server (a goroutine parked in a blocking syscall does, and
// Go never gives idle threads back): N live sandboxes, one command each,
// then Stop, must leave the thread count far below N more.
func TestThreadsDoNotGrowPerSandbox(t *testing.T) {
	const n = 40
	m := newManager(t, TierAuto)
	// Warm up: the first sandbox starts the spawner thread and the
	// runtime's helpers.
	s0, _ := start(t, m, key("thr-warm"), Limits{})
	sh(t, s0, "true")
	_ = s0.Stop()
	time.Sleep(100 * time.Millisecond)
	before := osThreads(t)
	boxes := make([]*Sandbox, n)
	for i := range boxes {
		boxes[i], _ = start(t, m, key(fmt.Sprintf("thr%d", i)), Limits{})
	}
	var wg sync.WaitGroup
	for _, s := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := runErr(s, "", 20*time.Second, "true"); err != nil || r.ExitCode != 0 {
				t.Errorf("exec: %v %v", r, err)
			}
		}()
	}
	wg.Wait()
	live := osThreads(t)
	for _, s := range boxes {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}
	after := osThreads(t)
	t.Logf("OS threads: %d before, %d with %d live sandboxes, %d after Stop", before, live, n, after)
	if grown := after - before; grown > n/4 {
		t.Errorf("OS threads grew by %d for %d sandboxes (%d -> %d): a thread per sandbox", grown, n, before, after)
	}
}
