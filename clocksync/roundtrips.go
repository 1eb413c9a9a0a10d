package clocksync

import (
	"slices"
	"time"
)

// roundTripWindow is how many recent round trips a RoundTrips keeps: at the
// steady pace (a probe every 200 ms) about 25 s of them, enough for a 99th
// percentile that is not just the maximum.
const roundTripWindow = 128

// RoundTrips keeps the round trips of the recent probes and tells how they
// spread. The zero value is empty.
type RoundTrips struct {
	ring   [roundTripWindow]time.Duration
	n      int // filled
	next   int // where the next one goes
	sorted [roundTripWindow]time.Duration
	fresh  bool // sorted[:n] holds ring[:n] in order
}

// Add records one round trip, replacing the oldest once full.
func (r *RoundTrips) Add(rtt time.Duration) {
	r.ring[r.next] = rtt
	r.next = (r.next + 1) % roundTripWindow
	r.n = min(r.n+1, roundTripWindow)
	r.fresh = false
}

// Len is how many round trips it holds.
func (r *RoundTrips) Len() int { return r.n }

// Percentile is the p-th percentile (nearest rank, 0 <= p <= 100) of the
// round trips it holds: 0 is the lowest, 100 the highest. 0 when empty.
func (r *RoundTrips) Percentile(p int) time.Duration {
	if r.n == 0 {
		return 0
	}
	if !r.fresh {
		copy(r.sorted[:r.n], r.ring[:r.n])
		slices.Sort(r.sorted[:r.n])
		r.fresh = true
	}
	return r.sorted[max(0, (r.n*p+99)/100-1)]
}

// Reset forgets them.
func (r *RoundTrips) Reset() { r.n, r.next, r.fresh = 0, 0, false }
