package localbackend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
)

// startWatch starts a watch of p in f's sandbox, closed at cleanup.
func (f *filesEnv) startWatch(t *testing.T, p string, recursive bool) driver.Watch {
	t.Helper()
	w, err := f.b.Driver().(driver.Watcher).Watch(context.Background(), f.id, driver.WatchRequest{Path: p, Recursive: recursive})
	if err != nil {
		t.Fatalf("watch %s: %v", p, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// collect gathers w's events until cond holds for them (fatal after 5s).
func collect(t *testing.T, w driver.Watch, cond func([]driver.FileEvent) bool) []driver.FileEvent {
	t.Helper()
	var evs []driver.FileEvent
	timeout := time.After(5 * time.Second)
	for !cond(evs) {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended (%v) after %v", w.Err(), evs)
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("timed out; events so far: %v", evs)
		}
	}
	return evs
}

// has returns a condition: an event of type typ for p was seen.
func has(typ driver.FileEventType, p string) func([]driver.FileEvent) bool {
	return func(evs []driver.FileEvent) bool {
		return slices.ContainsFunc(evs, func(e driver.FileEvent) bool { return e.Type == typ && e.Path == p })
	}
}

// TestWatchReportsExecCreateQuickly: a file created by a command is
// reported after the command's end (the latency is logged; the 200 ms
// target is measured by the conformance run, not asserted in a timed
// unit test that shares the machine with the rest of the suite).
func TestWatchReportsExecCreateQuickly(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	w := f.startWatch(t, "/workspace", false)
	f.exec(f.id, map[string]any{"cmd": []string{"sh", "-c", "echo hi > made.txt"}, "workdir": "/workspace"})
	t0 := time.Now()
	collect(t, w, has(driver.EventCreate, "/workspace/made.txt"))
	t.Logf("create reported %v after the exec ended", time.Since(t0))
}

func TestWatchEvents(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	f.put(t, "old", "x")
	w := f.startWatch(t, "/workspace", true)
	ctx := context.Background()
	// A tree made at once: every level reported although its watch came
	// after the entries below it were made.
	if err := os.MkdirAll(filepath.Join(f.ws, "a/b/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.put(t, "a/b/c/f", "x")
	collect(t, w, has(driver.EventCreate, "/workspace/a/b/c/f"))
	// Files API writes: a new file is a create, a replace a write; the
	// temporary files never show.
	if _, _, err := f.write("/workspace/a/new", "1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.write("/workspace/a/new", "2"); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, w, has(driver.EventWrite, "/workspace/a/new"))
	if !has(driver.EventCreate, "/workspace/a/new")(evs) {
		t.Errorf("no create for a new file: %v", evs)
	}
	// A rename inside the tree, then events below the moved directory
	// name its new path.
	if _, err := f.d.Move(ctx, f.id, driver.MoveRequest{Src: "/workspace/a/b", Dst: "/workspace/a/moved"}); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, collect(t, w, func(evs []driver.FileEvent) bool {
		return slices.ContainsFunc(evs, func(e driver.FileEvent) bool {
			return e.Type == driver.EventRename && e.Path == "/workspace/a/moved" && e.OldPath == "/workspace/a/b" && e.IsDir
		})
	})...)
	f.put(t, "a/moved/c/g", "x")
	evs = append(evs, collect(t, w, has(driver.EventCreate, "/workspace/a/moved/c/g"))...)
	if err := os.Chmod(filepath.Join(f.ws, "old"), 0o600); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, collect(t, w, has(driver.EventChmod, "/workspace/old"))...)
	if err := f.d.Remove(ctx, f.id, "/workspace/old", false); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, collect(t, w, has(driver.EventRemove, "/workspace/old"))...)
	for _, e := range evs {
		if strings.Contains(e.Path, ".nox-") {
			t.Errorf("a temporary file was reported: %+v", e)
		}
	}
}

// TestWatchCoalescesWrites: many small writes to one file give a few
// write events, the last write still reported.
func TestWatchCoalescesWrites(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	f.put(t, "log", "")
	w := f.startWatch(t, "/workspace", false)
	fh, err := os.OpenFile(filepath.Join(f.ws, "log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for range 2000 {
		if _, err := fh.WriteString("line\n"); err != nil {
			t.Fatal(err)
		}
	}
	fh.Close()
	// A few windows of 50 ms, more when a loaded machine slowed the writes.
	allowed := 10 + int(time.Since(began)/(50*time.Millisecond))
	writes := 0
	timeout := time.After(300 * time.Millisecond)
loop:
	for {
		select {
		case ev := <-w.Events():
			if ev.Type == driver.EventWrite {
				writes++
			}
		case <-timeout:
			break loop
		}
	}
	if writes == 0 || writes > allowed {
		t.Fatalf("%d write events for 2000 writes, want a few (at most %d)", writes, allowed)
	}
}

// TestWatchOverflow: a client that does not read loses events beyond
// MaxWatchQueue and gets one overflow event in their place.
func TestWatchOverflow(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, func(c *Config) { c.MaxWatchQueue = 8 }, nil)
	w := f.startWatch(t, "/workspace", false)
	for i := range 50 {
		f.put(t, "f"+string(rune('a'+i%26))+string(rune('a'+i/26)), "")
	}
	time.Sleep(100 * time.Millisecond) // the reader queues what it can
	evs := collect(t, w, func(evs []driver.FileEvent) bool {
		return slices.ContainsFunc(evs, func(e driver.FileEvent) bool { return e.Type == driver.EventOverflow })
	})
	// How many events got in before the overflow depends on how far the
	// reader was when the queue filled (the queue's own tests pin that
	// down); here: events were dropped, not all 50 creates delivered.
	if n := len(evs) - 1; n >= 50 {
		t.Fatalf("%d events before the overflow: none dropped", n)
	}
}

// TestWatchLimits: MaxWatchesPerSandbox (ErrBusy beyond, a slot freed by
// Close) and MaxWatchDirs (an error naming the limit).
func TestWatchLimits(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, func(c *Config) { c.MaxWatchesPerSandbox = 2; c.MaxWatchDirs = 3 }, nil)
	watcher := f.b.Driver().(driver.Watcher)
	ctx := context.Background()
	w1 := f.startWatch(t, "/workspace", false)
	f.startWatch(t, "/workspace", false)
	if _, err := watcher.Watch(ctx, f.id, driver.WatchRequest{Path: "/workspace"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("third watch: %v, want ErrBusy", err)
	}
	w1.Close()
	w3 := f.startWatch(t, "/workspace", true)
	for _, d := range []string{"d1", "d2", "d3"} {
		if err := os.Mkdir(filepath.Join(f.ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-w3.Events():
		case <-timeout:
			t.Fatal("the watch did not end past MaxWatchDirs")
		}
	}
	if err := w3.Err(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "maxWatchDirs") {
		t.Fatalf("Err %v, want the maxWatchDirs limit", err)
	}
	// A tree over the limit from the start: the watch ends at once with
	// the same error.
	w3.Close()
	w4 := f.startWatch(t, "/workspace", true)
	for range w4.Events() {
	}
	if err := w4.Err(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "maxWatchDirs") {
		t.Fatalf("Err of a watch of a tree over the limit: %v", err)
	}
	if info := f.b.Driver().Info(); info.Limits.MaxWatchesPerSandbox != 2 || info.Limits.MaxWatchDirs != 3 || info.Limits.MaxWatchQueue != 4096 || info.Limits.MaxListPageSize != 1000 {
		t.Fatalf("limits %+v", info.Limits)
	}
}

// TestWatchEnds: removing the watched directory, or deleting the
// sandbox, ends a watch with an error.
func TestWatchEnds(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, nil, nil)
	if err := os.Mkdir(filepath.Join(f.ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ws := f.startWatch(t, "/workspace/sub", true)
	wroot := f.startWatch(t, "/workspace", true)
	if err := f.d.Remove(context.Background(), f.id, "/workspace/sub", true); err != nil {
		t.Fatal(err)
	}
	for ev := range ws.Events() {
		_ = ev
	}
	if err := ws.Err(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Err after removing the directory: %v", err)
	}
	if err := f.b.Driver().Delete(context.Background(), f.id); err != nil {
		t.Fatal(err)
	}
	for ev := range wroot.Events() {
		_ = ev
	}
	if err := wroot.Err(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Err after deleting the sandbox: %v", err)
	}
}

// threads returns the process's OS threads.
func threads(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			n := 0
			for _, c := range strings.TrimSpace(rest) {
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	return 0
}

// TestWatchParksNoThread: idle watches wait in the netpoller, not each in
// a blocked read(2) holding an OS thread.
func TestWatchParksNoThread(t *testing.T) {
	f := newFilesEnv(t, func(c *Config) { c.MaxWatchesPerSandbox = 32 }, nil)
	f.startWatch(t, "/workspace", false) // warm up
	time.Sleep(50 * time.Millisecond)
	before := threads(t)
	for range 30 {
		f.startWatch(t, "/workspace", true)
	}
	time.Sleep(100 * time.Millisecond)
	if after := threads(t); after-before > 4 {
		t.Fatalf("30 idle watches took %d more threads (%d to %d)", after-before, before, after)
	}
}

// TestWatchHostBudgets: the server's watches together stay within its
// share of the host's inotify instances and watches, across sandboxes,
// and give it back when closed.
func TestWatchHostBudgets(t *testing.T) {
	t.Parallel()
	f := newFilesEnv(t, func(c *Config) { c.HostWatchesBudget = 2; c.HostWatchDirsBudget = 3 }, nil)
	f.create("other", nil)
	watcher := f.b.Driver().(driver.Watcher)
	ctx := context.Background()
	w1 := f.startWatch(t, "/workspace", false)
	w2, err := watcher.Watch(ctx, "other", driver.WatchRequest{Path: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Watch(ctx, "other", driver.WatchRequest{Path: "/workspace"}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "HostWatchesBudget") {
		t.Fatalf("a watch past HostWatchesBudget: %v", err)
	}
	w2.Close()
	w1.Close()
	for _, d := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(f.ws, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := watcher.Watch(ctx, f.id, driver.WatchRequest{Path: "/workspace", Recursive: true}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "HostWatchDirsBudget") {
		t.Fatalf("a watch of 4 directories past HostWatchDirsBudget 3: %v", err)
	}
	if n := f.b.store.watchDirs.Load(); n != 0 {
		t.Fatalf("%d directories still charged after the watches ended", n)
	}
	if !slices.ContainsFunc(f.b.Info().Notes, func(n string) bool { return strings.Contains(n, "HostWatchesBudget") }) {
		t.Fatalf("no note on the budgets in %v", f.b.Info().Notes)
	}
}
