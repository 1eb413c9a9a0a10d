// Package clocksync estimates the offset between a speaker's local clock and
// the shared clock of the time master from 4-timestamp probe exchanges.
package clocksync

import (
	"errors"
	"time"
)

// DefaultWindow is how many recent samples an Estimator keeps.
const DefaultWindow = 32

// Sample is the result of one probe exchange.
type Sample struct {
	Offset time.Duration // shared minus local clock
	RTT    time.Duration // network round trip, the master's processing time excluded
}

// NewSample computes a sample from the exchange's timestamps (Unix ns): t1
// local send, t2 master receive, t3 master send (shared clock), t4 local
// receive. A negative round trip means the timestamps are inconsistent.
func NewSample(t1, t2, t3, t4 int64) (Sample, error) {
	rtt := (t4 - t1) - (t3 - t2)
	if rtt < 0 || t3 < t2 || t4 < t1 {
		return Sample{}, errors.New("clocksync: inconsistent timestamps (negative round trip)")
	}
	return Sample{
		Offset: time.Duration(((t2 - t1) + (t3 - t4)) / 2),
		RTT:    time.Duration(rtt),
	}, nil
}

// Estimator keeps a sliding window of recent samples and trusts the one with
// the smallest round trip: its offset is least disturbed by queueing delay,
// and half its round trip bounds its error. The zero value is ready to use
// with DefaultWindow.
type Estimator struct {
	Window  int // samples kept; DefaultWindow when 0
	samples []Sample
	next    int // ring position of the next Add once the window is full
}

// Add records a sample, evicting the oldest once the window is full.
func (e *Estimator) Add(s Sample) {
	window := e.Window
	if window <= 0 {
		window = DefaultWindow
	}
	if len(e.samples) < window {
		e.samples = append(e.samples, s)
		return
	}
	e.samples[e.next%len(e.samples)] = s
	e.next = (e.next + 1) % len(e.samples)
}

// Len is the number of samples in the window.
func (e *Estimator) Len() int { return len(e.samples) }

// Best returns the minimum-RTT sample of the window (the earliest of equals).
func (e *Estimator) Best() (Sample, bool) {
	if len(e.samples) == 0 {
		return Sample{}, false
	}
	best := e.samples[0]
	for _, s := range e.samples[1:] {
		if s.RTT < best.RTT {
			best = s
		}
	}
	return best, true
}

// Offset is the current estimate of shared minus local clock and a bound on
// its error; ok is false until the first sample.
func (e *Estimator) Offset() (offset, errBound time.Duration, ok bool) {
	best, ok := e.Best()
	return best.Offset, best.RTT / 2, ok
}
