package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testRegistry is a registry in a temporary directory that keeps clear of
// the given /etc/subuid lines and of nothing else.
func testRegistry(t *testing.T, subuid string) *uidRegistry {
	t.Helper()
	dir := t.TempDir()
	sub := filepath.Join(dir, "subuid")
	if err := os.WriteFile(sub, []byte(subuid), 0o644); err != nil {
		t.Fatal(err)
	}
	return &uidRegistry{path: filepath.Join(dir, "reg", "uid-ranges"), subIDFiles: []string{sub}}
}

func mkdirs(t *testing.T, n int) []string {
	t.Helper()
	base := t.TempDir()
	var out []string
	for i := range n {
		d := filepath.Join(base, fmt.Sprintf("data%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestUIDRegistryDisjointAndStable(t *testing.T) {
	t.Parallel()
	g := testRegistry(t, "")
	dirs := mkdirs(t, 3)
	var got []uidRange
	for _, d := range dirs {
		r, err := g.register(d)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	for i := range got {
		if got[i].Count != uidRangeSize || got[i].First < uidSearchStart {
			t.Errorf("range %d: %+v", i, got[i])
		}
		for j := range i {
			if got[i].overlaps(got[j]) {
				t.Errorf("ranges of %s and %s overlap: %+v %+v", dirs[i], dirs[j], got[i], got[j])
			}
		}
	}
	// A restart: the same directory, even through a symlink, gets its range
	// back from the file.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dirs[1], link); err != nil {
		t.Fatal(err)
	}
	again := &uidRegistry{path: g.path, subIDFiles: g.subIDFiles}
	if r, err := again.register(link); err != nil || r != got[1] {
		t.Errorf("re-register: %+v %v, want %+v", r, err, got[1])
	}
	// A moved directory keeps its range.
	moved := dirs[2] + "-moved"
	if err := os.Rename(dirs[2], moved); err != nil {
		t.Fatal(err)
	}
	if r, err := g.register(moved); err != nil || r != got[2] {
		t.Errorf("moved: %+v %v, want %+v", r, err, got[2])
	}
	// A vanished directory's range goes to the next newcomer; a released
	// one too.
	if err := os.Remove(dirs[0]); err != nil {
		t.Fatal(err)
	}
	if r, err := g.register(mkdirs(t, 1)[0]); err != nil || r != got[0] {
		t.Errorf("after removal: %+v %v, want the freed %+v", r, err, got[0])
	}
	if err := g.release(dirs[1]); err != nil {
		t.Fatal(err)
	}
	if r, err := g.register(mkdirs(t, 1)[0]); err != nil || r != got[1] {
		t.Errorf("after release: %+v %v, want the freed %+v", r, err, got[1])
	}
}

// TestUIDRegistryAvoidsHostIDs: ranges in /etc/subuid (and ids of users)
// are never handed out.
func TestUIDRegistryAvoidsHostIDs(t *testing.T) {
	t.Parallel()
	g := testRegistry(t, fmt.Sprintf("alice:%d:%d\nbob:%d:10\n", uidSearchStart, uidRangeSize, uidSearchStart+uidRangeSize+5))
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte(fmt.Sprintf("carol:x:%d:100::/home/carol:/bin/sh\n", uidSearchStart+2*uidRangeSize+7)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.idFiles = []string{passwd}
	r, err := g.register(mkdirs(t, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := uidSearchStart + 3*uidRangeSize; r.First != want {
		t.Errorf("first = %d, want %d (past the subuid ranges and carol)", r.First, want)
	}
}

// TestUIDRegistryConcurrent: registrations racing for the file (each with
// its own open file, as separate servers would) all get disjoint ranges,
// and the file lists each once.
func TestUIDRegistryConcurrent(t *testing.T) {
	t.Parallel()
	g := testRegistry(t, "")
	dirs := mkdirs(t, 16)
	got := make([]uidRange, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := (&uidRegistry{path: g.path, subIDFiles: g.subIDFiles}).register(d)
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		}()
	}
	wg.Wait()
	for i := range got {
		for j := range i {
			if got[i].overlaps(got[j]) {
				t.Errorf("overlap: %+v %+v", got[i], got[j])
			}
		}
	}
	b, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n") - 1; n != len(dirs) {
		t.Errorf("%d entries, want %d:\n%s", n, len(dirs), b)
	}
}

func TestUIDRegistryMalformed(t *testing.T) {
	t.Parallel()
	g := testRegistry(t, "")
	if err := os.MkdirAll(filepath.Dir(g.path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.path, []byte("1048576:65536:x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := g.register(mkdirs(t, 1)[0]); err == nil || !strings.Contains(err.Error(), "line 1 is malformed") {
		t.Fatalf("err = %v", err)
	}
}

// TestManagersGetDisjointUIDs: two servers (Managers) with different data
// directories on one registry run their sandboxes as disjoint uids; a
// restarted one gets its range back.
func TestManagersGetDisjointUIDs(t *testing.T) {
	t.Parallel()
	if !isRoot() {
		t.Skip("sandboxes run as the server's uid when it is not root")
	}
	reg := filepath.Join(t.TempDir(), "uid-ranges")
	state := mkdirs(t, 2)
	newM := func(dir string) *Manager {
		m, err := New(Options{Tier: TierAuto, StateDir: dir, UIDRegistry: reg})
		if err != nil {
			t.Skip(err)
		}
		return m
	}
	m1, m2 := newM(state[0]), newM(state[1])
	defer m2.Close()
	if m1.uidRange.overlaps(m2.uidRange) {
		t.Fatalf("overlapping ranges: %+v %+v", m1.uidRange, m2.uidRange)
	}
	// The same key in both: different host uids, each in its range.
	k := key("same")
	s1, _ := start(t, m1, k, Limits{})
	s2, _ := start(t, m2, k, Limits{})
	u1, _ := s1.HostOwner()
	u2, _ := s2.HostOwner()
	if u1 == u2 || !m1.uidRange.contains(u1) || !m2.uidRange.contains(u2) {
		t.Errorf("uids %d (%+v) and %d (%+v)", u1, m1.uidRange, u2, m2.uidRange)
	}
	r1 := m1.uidRange
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	m1 = newM(state[0])
	defer m1.Close()
	if m1.uidRange != r1 {
		t.Errorf("after restart: %+v, want %+v", m1.uidRange, r1)
	}
	if !strings.Contains(strings.Join(m1.Report().Notes, "\n"), fmt.Sprintf("host uids %d-%d", r1.First, r1.First+r1.Count-1)) {
		t.Errorf("report notes: %q", m1.Report().Notes)
	}
}
