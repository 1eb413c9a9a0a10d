package controller

import (
	"sync"
	"time"
)

// This file is the queue between paho's handlers and the loops.

// inbound is one MQTT message for a loop.
type inbound struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time // when it arrived
}

// maxQueued bounds the requests waiting for a loop; beyond it the
// controller is overloaded and refuses requests (overload.go) rather than
// lose its memory. At thousands of commands a second, 10,000 is a few
// seconds of work: a burst from every remote at once fits.
const maxQueued = 10000

// inbox is a FIFO from paho's handler goroutine, which must never block, to
// a loop.
type inbox struct {
	mu    sync.Mutex
	items []inbound
	limit int
	ready chan struct{} // holds a token while items is not empty
}

func newInbox(limit int) *inbox {
	return &inbox{limit: limit, ready: make(chan struct{}, 1)}
}

// push appends m; false when the inbox is full.
func (q *inbox) push(m inbound) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.limit {
		return false
	}
	q.items = append(q.items, m)
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest message; call it after receiving from ready.
func (q *inbox) pop() (inbound, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return inbound{}, false
	}
	m := q.items[0]
	q.items[0] = inbound{}
	q.items = q.items[1:]
	if len(q.items) > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return m, true
}
