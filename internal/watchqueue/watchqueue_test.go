package watchqueue

import (
	"errors"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
)

func write(p string) driver.FileEvent { return driver.FileEvent{Type: driver.EventWrite, Path: p} }

// collect reads q's events until Events closes.
func collect(t *testing.T, q *Queue) []driver.FileEvent {
	t.Helper()
	var got []driver.FileEvent
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-q.Events():
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("Events not closed; got %v", got)
		}
	}
}

func TestCoalescesWrites(t *testing.T) {
	t.Parallel()
	q := New(100, func() {})
	defer q.Close()
	for range 50 {
		q.Emit(write("/w/a"))
	}
	q.Emit(write("/w/b"))
	q.Emit(driver.FileEvent{Type: driver.EventRemove, Path: "/w/a"}) // the pending write of a goes first
	time.Sleep(2 * Window)
	q.Emit(write("/w/a")) // a new window
	q.Finish(errors.New("gone"))
	want := []driver.FileEvent{write("/w/a"), write("/w/b"), write("/w/a"), {Type: driver.EventRemove, Path: "/w/a"}, write("/w/a")}
	got := collect(t, q)
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if q.Err() == nil || q.Err().Error() != "gone" {
		t.Errorf("Err = %v", q.Err())
	}
}

func TestOverflow(t *testing.T) {
	t.Parallel()
	q := New(3, func() {})
	defer q.Close()
	for i := range 10 {
		q.Emit(driver.FileEvent{Type: driver.EventCreate, Path: "/w/" + string(rune('a'+i))})
	}
	q.Finish(nil)
	got := collect(t, q)
	// The pump may have taken the first event before the queue filled.
	if n := len(got); n < 4 || n > 5 || got[n-1].Type != driver.EventOverflow {
		t.Fatalf("events %v: want at most 4 creates then one overflow", got)
	}
	if q.Err() != nil {
		t.Errorf("Err = %v", q.Err())
	}
}

func TestCloseStopsSource(t *testing.T) {
	t.Parallel()
	stopped := 0
	q := New(10, func() { stopped++ })
	q.Emit(driver.FileEvent{Type: driver.EventCreate, Path: "/w/a"})
	q.Close()
	q.Close()
	for range q.Events() {
	}
	if stopped != 1 {
		t.Errorf("onClose ran %d times", stopped)
	}
}
