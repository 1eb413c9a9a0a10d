package controller

import (
	"sync"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// leaseHold is the lease as the goroutines other than the session loop see
// it: whether we hold it. The session loop sets it from the lease; paho's
// handler extends it the moment one of our renewals comes back, and ends
// it the moment a newer term is delivered. So the song server and the
// clock responder stop, and go on, on time even while the session loop is
// busy (a burst of commands, a publish the broker does not acknowledge).
type leaseHold struct {
	clock  clock.Clock
	base   time.Time     // clock's reading at start: times are kept as offsets from it
	me     string        // our instance
	extend time.Duration // how long a renewal that came back holds the lease: lease.heldUntil's

	mu    sync.Mutex
	term  uint64        // the term we hold
	until time.Duration // since base; 0: not held
}

func newLeaseHold(me string, ttl time.Duration, local clock.Clock) *leaseHold {
	return &leaseHold{clock: local, base: local.Now(), me: me, extend: ttl - leaseTick(ttl)}
}

// set records that we hold term until until (zero: we do not hold the
// lease), as the session loop knows it; a renewal the handler saw come back
// since may hold it longer.
func (h *leaseHold) set(term uint64, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until.IsZero() {
		h.until = 0
		return
	}
	u := until.Sub(h.base)
	if term == h.term && h.until != 0 {
		u = max(u, h.until)
	}
	h.term, h.until = term, u
}

// heard takes a Lease as it arrives at time at. A retained one may be old:
// it ends the hold if it names a newer term, but never extends it.
func (h *leaseHold) heard(m protocol.Lease, retained bool, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.until == 0:
	case m.Term > h.term:
		h.until = 0 // deposed; the session loop steps down when it gets there
	case !retained && m.Term == h.term && m.Holder == h.me && m.Renewal:
		h.until = max(h.until, at.Sub(h.base)+h.extend)
	}
}

// heldTerm is the term we hold, or held last.
func (h *leaseHold) heldTerm() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.term
}

func (h *leaseHold) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.until != 0 && clock.Since(h.clock, h.base) < h.until
}
