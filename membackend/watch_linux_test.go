package membackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
)

// nextEvent returns the next event of w, failing after 5 s.
func nextEvent(t *testing.T, w driver.Watch) (driver.FileEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		return ev, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return driver.FileEvent{}, false
}

// expectEvents reads events until it has seen want in order (other events
// in between are allowed) and returns how long the first took.
func expectEvents(t *testing.T, w driver.Watch, want ...driver.FileEvent) {
	t.Helper()
	for _, wev := range want {
		for {
			ev, ok := nextEvent(t, w)
			if !ok {
				t.Fatalf("watch ended (%v) before %+v", w.Err(), wev)
			}
			if strings.HasPrefix(ev.Path[strings.LastIndex(ev.Path, "/")+1:], tempPrefix) || strings.Contains(ev.OldPath, tempPrefix) {
				t.Fatalf("temporary file in event %+v", ev)
			}
			if ev == wev {
				break
			}
		}
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx := context.Background()
	w, err := b.Watch(ctx, "s", driver.WatchRequest{Path: "/workspace", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A command's file is reported quickly.
	start := time.Now()
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "echo x > /workspace/cmd.txt"}}, nil)
	expectEvents(t, w, driver.FileEvent{Type: driver.EventCreate, Path: "/workspace/cmd.txt"})
	t.Logf("create reported after %v", time.Since(start))
	// Writes through the API are a create, then a write; never the
	// temporary file.
	write(t, b, driver.WriteFileRequest{Path: "/workspace/api.txt", Mode: 0o644}, "1")
	expectEvents(t, w, driver.FileEvent{Type: driver.EventCreate, Path: "/workspace/api.txt"})
	write(t, b, driver.WriteFileRequest{Path: "/workspace/api.txt", Mode: 0o644}, "2")
	expectEvents(t, w, driver.FileEvent{Type: driver.EventWrite, Path: "/workspace/api.txt"})
	// New directories are watched, their early entries reported.
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "mkdir -p /workspace/d/e && echo y > /workspace/d/e/f"}}, nil)
	expectEvents(t, w,
		driver.FileEvent{Type: driver.EventCreate, Path: "/workspace/d", IsDir: true},
		driver.FileEvent{Type: driver.EventCreate, Path: "/workspace/d/e/f"})
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "echo z >> /workspace/d/e/f"}}, nil)
	expectEvents(t, w, driver.FileEvent{Type: driver.EventWrite, Path: "/workspace/d/e/f"})
	if _, err := b.Move(ctx, "s", driver.MoveRequest{Src: "/workspace/d", Dst: "/workspace/g"}); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, w, driver.FileEvent{Type: driver.EventRename, Path: "/workspace/g", OldPath: "/workspace/d", IsDir: true})
	// The moved directory's watch follows it.
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "rm /workspace/g/e/f"}}, nil)
	expectEvents(t, w, driver.FileEvent{Type: driver.EventRemove, Path: "/workspace/g/e/f"})
}

// Many small writes give a few events, not one per write.
func TestWatchCoalescesWrites(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	w, err := b.Watch(context.Background(), "s", driver.WatchRequest{Path: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "for i in $(seq 500); do echo $i; done > /workspace/f; echo done > /workspace/end"}}, nil)
	writes := 0
	for {
		ev, ok := nextEvent(t, w)
		if !ok {
			t.Fatal(w.Err())
		}
		if ev.Type == driver.EventWrite && ev.Path == "/workspace/f" {
			writes++
		}
		if ev.Path == "/workspace/end" && ev.Type == driver.EventCreate {
			break
		}
	}
	if writes < 1 || writes > 20 {
		t.Errorf("%d write events for 500 writes", writes)
	}
}

// The queue is bounded: a reader that does not keep up gets an overflow
// event instead of unbounded memory.
func TestWatchOverflow(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{Limits: driver.Limits{MaxWatchQueue: 4}})
	w, err := b.Watch(context.Background(), "s", driver.WatchRequest{Path: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	run(t, b, "s", driver.ExecRequest{Argv: []string{"sh", "-c", "touch /workspace/f1 /workspace/f2 /workspace/f3 /workspace/f4 /workspace/f5 /workspace/f6 /workspace/f7 /workspace/f8 /workspace/f9 /workspace/f10"}}, nil)
	time.Sleep(200 * time.Millisecond) // let the source queue everything before reading
	for {
		ev, ok := nextEvent(t, w)
		if !ok {
			t.Fatal(w.Err())
		}
		if ev.Type == driver.EventOverflow {
			return
		}
	}
}

// Removing the watched directory ends the watch with an error; the
// sandbox's limit of watches answers ErrBusy, and a closed watch frees
// its slot.
func TestWatchEnds(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{Limits: driver.Limits{MaxWatchesPerSandbox: 1}})
	ctx := context.Background()
	if _, err := b.MakeDir(ctx, "s", driver.MakeDirRequest{Path: "/workspace/d", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	w, err := b.Watch(ctx, "s", driver.WatchRequest{Path: "/workspace/d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Watch(ctx, "s", driver.WatchRequest{Path: "/workspace"}); !errors.Is(err, driver.ErrBusy) {
		t.Errorf("second watch: %v, want ErrBusy", err)
	}
	if err := b.Remove(ctx, "s", "/workspace/d", true); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := nextEvent(t, w); !ok {
			break
		}
	}
	if err := w.Err(); !errors.Is(err, driver.ErrNotFound) || !strings.Contains(err.Error(), "/workspace/d") {
		t.Errorf("Err = %v", err)
	}
	w.Close()
	w2, err := b.Watch(ctx, "s", driver.WatchRequest{Path: "/workspace"})
	if err != nil {
		t.Fatalf("watch after Close: %v", err)
	}
	w2.Close()
	for _, c := range []struct {
		p    string
		want error
	}{{"/workspace/missing", driver.ErrNotFound}, {"/etc", driver.ErrInvalidArgument}} {
		if _, err := b.Watch(ctx, "s", driver.WatchRequest{Path: c.p}); !errors.Is(err, c.want) {
			t.Errorf("Watch(%q) = %v, want %v", c.p, err, c.want)
		}
	}
}

// Cancelling the watch's context ends it and closes Events.
func TestWatchContext(t *testing.T) {
	t.Parallel()
	b := newSandbox(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	w, err := b.Watch(ctx, "s", driver.WatchRequest{Path: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, ok := nextEvent(t, w); ok {
		t.Error("event after cancel")
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err after cancel = %v", err)
	}
}
