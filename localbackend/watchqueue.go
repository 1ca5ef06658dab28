package localbackend

import (
	"sync"
	"time"

	"github.com/noxrunner/nox/driver"
)

// coalesceWindow is how long a write (or chmod) event waits for more of
// its kind on the same path before it is delivered: a file written in
// many small pieces gives one event per window, the last write included.
const coalesceWindow = 50 * time.Millisecond

// queuedEvent is an event waiting in a watch's queue.
type queuedEvent struct {
	ev        driver.FileEvent
	due       time.Time // not delivered before
	delivered bool
}

// eventQueue is the bounded queue of one watch, between the inotify
// reader and the consumer. Events of one path keep their order; a write
// or chmod joins the same event of its path still waiting in its window.
// Beyond max events, new ones are dropped and one overflow event is
// queued in their place.
type eventQueue struct {
	mu         sync.Mutex
	q          []*queuedEvent
	last       map[string]*queuedEvent // the latest waiting event of each path
	max        int
	overflowed bool // an overflow event waits: drop until it is delivered
	notify     chan struct{}
	now        func() time.Time
}

func newEventQueue(max int) *eventQueue {
	return &eventQueue{last: map[string]*queuedEvent{}, max: max, notify: make(chan struct{}, 1), now: time.Now}
}

// push queues ev (coalesced as described) and returns the queued event
// it became, or nil when it was dropped or joined another.
func (q *eventQueue) push(ev driver.FileEvent) *queuedEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	coalesce := ev.Type == driver.EventWrite || ev.Type == driver.EventChmod
	if coalesce {
		if l := q.last[ev.Path]; l != nil && !l.delivered && l.ev.Type == ev.Type && now.Before(l.due) {
			return nil
		}
	}
	if ev.Type == driver.EventOverflow || len(q.q) >= q.max {
		if q.overflowed {
			return nil
		}
		q.overflowed = true
		ev = driver.FileEvent{Type: driver.EventOverflow}
		coalesce = false
	}
	e := &queuedEvent{ev: ev, due: now}
	if coalesce {
		e.due = now.Add(coalesceWindow)
	}
	q.q = append(q.q, e)
	if ev.Path != "" {
		q.last[ev.Path] = e
	}
	q.wake()
	return e
}

// update changes a waiting event (a remove that turned out to be a
// rename) under the queue's lock; it reports false once delivered.
func (q *eventQueue) update(e *queuedEvent, f func(*driver.FileEvent)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.delivered {
		return false
	}
	if q.last[e.ev.Path] == e {
		delete(q.last, e.ev.Path)
	}
	f(&e.ev)
	q.last[e.ev.Path] = e
	q.wake()
	return true
}

func (q *eventQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop returns the first event when it is due (ok), else how long until
// it is (0: the queue is empty). With flush, due times are ignored.
func (q *eventQueue) pop(flush bool) (ev driver.FileEvent, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 {
		return ev, 0, false
	}
	e := q.q[0]
	if d := e.due.Sub(q.now()); d > 0 && !flush {
		return ev, d, false
	}
	q.q[0] = nil
	q.q = q.q[1:]
	if len(q.q) == 0 {
		q.q = nil // let the backing array go
	}
	e.delivered = true
	if q.last[e.ev.Path] == e {
		delete(q.last, e.ev.Path)
	}
	if e.ev.Type == driver.EventOverflow {
		q.overflowed = false
	}
	return e.ev, 0, true
}
