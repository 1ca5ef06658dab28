// Package watchqueue is the event queue of a files.watch watch, written
// once for every backend: it coalesces repeated writes of a path within
// Window (the first at once, the rest as one write at the end of the
// window), bounds what it holds (Max events, then one overflow event and
// drops until the reader has caught up) and implements driver.Watch over
// whatever source of changes a backend has (inotify, its own operations).
package watchqueue

import (
	"slices"
	"sync"
	"time"

	"github.com/noxrunner/nox/driver"
)

// Window is the window within which repeated write events of one path are
// coalesced, as the contract documents.
const Window = 50 * time.Millisecond

// Queue is a watch: its source calls Emit for each change and Finish when
// it ends; the server reads Events. Memory is bounded by the queue (max
// events, then an overflow event and drops until the reader catches up)
// plus the batch being handed to the reader. Queue implements
// driver.Watch.
type Queue struct {
	events   chan driver.FileEvent // closed by pump
	notify   chan struct{}
	finished chan struct{} // closed by finish: the source ended
	done     chan struct{} // closed by Close
	stopOnce sync.Once
	onClose  func() // stops the source and releases what the watch holds

	mu         sync.Mutex
	queue      []driver.FileEvent
	max        int
	overflowed bool
	window     map[string]bool // paths written in this window: more writes since the first
	timer      *time.Timer
	err        error
	ended      bool
}

var _ driver.Watch = (*Queue)(nil)

// New returns a running queue holding at most size events (at least 1).
// Close calls onClose once, which must stop the source (so that it calls
// Emit no more) and release what the watch holds.
func New(size int, onClose func()) *Queue {
	q := &Queue{
		events: make(chan driver.FileEvent), notify: make(chan struct{}, 1),
		finished: make(chan struct{}), done: make(chan struct{}),
		max: max(size, 1), window: map[string]bool{}, onClose: onClose,
	}
	go q.pump()
	return q
}

// Events delivers the changes; it is closed when the watch ends.
func (w *Queue) Events() <-chan driver.FileEvent { return w.events }

// Err is why the watch ended, once Events is closed (nil for Close).
func (w *Queue) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the watch: Events is closed, the source stopped and what
// the watch holds released.
func (w *Queue) Close() error {
	w.stopOnce.Do(func() {
		close(w.done)
		w.onClose()
		w.mu.Lock()
		if w.timer != nil {
			w.timer.Stop()
		}
		w.mu.Unlock()
	})
	return nil
}

// Emit queues ev, coalescing writes.
func (w *Queue) Emit(ev driver.FileEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	if ev.Type == driver.EventWrite {
		if _, ok := w.window[ev.Path]; ok {
			w.window[ev.Path] = true
			return
		}
		w.window[ev.Path] = false
		if w.timer == nil {
			w.timer = time.AfterFunc(Window, w.flushWindow)
		}
	} else if w.window[ev.Path] {
		w.pushLocked(driver.FileEvent{Type: driver.EventWrite, Path: ev.Path})
		w.window[ev.Path] = false
	}
	w.pushLocked(ev)
}

// flushWindow ends a coalescing window: one write for each path written
// again since its first write.
func (w *Queue) flushWindow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushWindowLocked()
	w.timer = nil
}

func (w *Queue) flushWindowLocked() {
	var dirty []string
	for p, d := range w.window {
		if d {
			dirty = append(dirty, p)
		}
	}
	slices.Sort(dirty)
	for _, p := range dirty {
		w.pushLocked(driver.FileEvent{Type: driver.EventWrite, Path: p})
	}
	clear(w.window)
}

// pushLocked appends ev to the queue, or an overflow event when the queue
// is full (then drops events until the reader has taken the queue).
func (w *Queue) pushLocked(ev driver.FileEvent) {
	switch {
	case w.overflowed:
		return
	case len(w.queue) >= w.max:
		w.overflowed = true
		ev = driver.FileEvent{Type: driver.EventOverflow}
	}
	w.queue = append(w.queue, ev)
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Finish records that the source ended, with err (nil: closed); Events
// is closed once the queued events are read.
func (w *Queue) Finish(err error) {
	w.mu.Lock()
	if !w.ended {
		w.flushWindowLocked()
		w.ended, w.err = true, err
		close(w.finished)
	}
	w.mu.Unlock()
}

// take returns and clears the queue, and whether the source has ended.
func (w *Queue) take() ([]driver.FileEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue, w.overflowed = nil, false
	return q, w.ended
}

// pump hands the queued events to the reader of Events, and closes it
// when the source ended and the queue is empty, or on Close.
func (w *Queue) pump() {
	defer close(w.events)
	for {
		select {
		case <-w.notify:
		case <-w.finished:
		case <-w.done:
			return
		}
		for {
			q, ended := w.take()
			for _, ev := range q {
				select {
				case w.events <- ev:
				case <-w.done:
					return
				}
			}
			if !ended {
				break
			}
			if len(q) == 0 {
				return
			}
		}
	}
}
