package membackend

import (
	"slices"
	"sync"
	"time"

	"github.com/noxrunner/nox/driver"
)

// coalesceWindow is the window within which repeated write events of one
// path are coalesced: the first is sent at once, the others become one
// write at the end of the window.
const coalesceWindow = 50 * time.Millisecond

// memWatch is the portable half of a watch: the coalescing of writes and
// the bounded queue between the source of events (inotify) and the
// reader of Events. Memory is bounded by the queue (max events, then an
// overflow event and drops until the reader catches up) plus the batch
// being handed to the reader.
type memWatch struct {
	events   chan driver.FileEvent // closed by pump
	notify   chan struct{}
	finished chan struct{} // closed by finish: the source ended
	done     chan struct{} // closed by Close
	stopOnce sync.Once
	stop     func() // stops the source and waits for it; set before start
	release  func() // returns the sandbox's watch slot

	mu         sync.Mutex
	queue      []driver.FileEvent
	max        int
	overflowed bool
	window     map[string]bool // paths written in this window: more writes since the first
	timer      *time.Timer
	err        error
	ended      bool
}

func newMemWatch(max int) *memWatch {
	return &memWatch{
		events: make(chan driver.FileEvent), notify: make(chan struct{}, 1),
		finished: make(chan struct{}), done: make(chan struct{}),
		max: max, window: map[string]bool{},
	}
}

// Events delivers the changes; it is closed when the watch ends.
func (w *memWatch) Events() <-chan driver.FileEvent { return w.events }

// Err is why the watch ended, once Events is closed (nil for Close).
func (w *memWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the watch and releases its inotify instance and slot.
func (w *memWatch) Close() error {
	w.stopOnce.Do(func() {
		close(w.done)
		w.stop()
		w.mu.Lock()
		if w.timer != nil {
			w.timer.Stop()
		}
		w.mu.Unlock()
		w.release()
	})
	return nil
}

// emit queues ev, coalescing writes.
func (w *memWatch) emit(ev driver.FileEvent) {
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
			w.timer = time.AfterFunc(coalesceWindow, w.flushWindow)
		}
	} else if w.window[ev.Path] {
		w.pushLocked(driver.FileEvent{Type: driver.EventWrite, Path: ev.Path})
		w.window[ev.Path] = false
	}
	w.pushLocked(ev)
}

// flushWindow ends a coalescing window: one write for each path written
// again since its first write.
func (w *memWatch) flushWindow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushWindowLocked()
	w.timer = nil
}

func (w *memWatch) flushWindowLocked() {
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
func (w *memWatch) pushLocked(ev driver.FileEvent) {
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

// finish records that the source ended, with err (nil: closed).
func (w *memWatch) finish(err error) {
	w.mu.Lock()
	if !w.ended {
		w.flushWindowLocked()
		w.ended, w.err = true, err
		close(w.finished)
	}
	w.mu.Unlock()
}

// take returns and clears the queue, and whether the source has ended.
func (w *memWatch) take() ([]driver.FileEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue, w.overflowed = nil, false
	return q, w.ended
}

// pump hands the queued events to the reader of Events, and closes it
// when the source ended and the queue is empty, or on Close.
func (w *memWatch) pump() {
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
