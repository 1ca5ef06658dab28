package sandbox

import "testing"

func TestUsage(t *testing.T) {
	m := newManager(t, TierAuto)
	requireCgroups(t, m)
	s, _ := start(t, m, "usage", Limits{MemoryBytes: 256 << 20, Pids: 64})
	// Burn some CPU time.
	r := sh(t, s, `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done`)
	if r.ExitCode != 0 {
		t.Fatalf("busy loop: %v", r)
	}
	u := s.Usage()
	t.Logf("usage: %+v", u)
	if u.CPUSeconds <= 0 {
		t.Errorf("CPUSeconds = %v, want > 0", u.CPUSeconds)
	}
	if u.MemoryBytes <= 0 {
		t.Errorf("MemoryBytes = %v, want > 0", u.MemoryBytes)
	}
	if u.Pids < 1 { // the init at least
		t.Errorf("Pids = %v, want >= 1", u.Pids)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u != (Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1}) {
		t.Errorf("usage of a stopped sandbox = %+v, want none", u)
	}
}
