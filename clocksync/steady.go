package clocksync

import (
	"time"
)

// Steady is a clock in Unix nanoseconds that steps of the wall clock do not
// move: a base read from the wall clock once, advanced from then on by the
// monotonic clock. A Pi without a battery clock boots with a stale wall
// clock and steps it when NTP syncs; a time master stamping the wall clock
// would shift every anchor on the shared clock by that step. NTP's slewing
// changes the rate of Linux's monotonic clock as it does the wall clock's,
// so a Steady clock keeps the disciplined rate, only not the steps.
//
// It advances with the local clock it is given (clock.Real's readings
// carry the monotonic clock, which nothing steps); tests inject the wall
// clock that seeds the base, and run the local one in a synctest bubble.
type Steady struct {
	base  int64      // the clock's reading at start, Unix ns
	local localClock // what advances it; nil = real time
	start time.Time  // local now at start
}

// localClock is the part of a clock.Clock a Steady clock reads.
type localClock interface{ Now() time.Time }

// NewSteady returns a clock that reads base now and advances with local
// (nil = real time).
func NewSteady(base int64, local localClock) Steady {
	s := Steady{base: base, local: local}
	s.start = s.localNow()
	return s
}

// Now is the clock's reading, Unix ns.
func (s Steady) Now() int64 { return s.base + int64(s.localNow().Sub(s.start)) }

func (s Steady) localNow() time.Time {
	if s.local == nil {
		return time.Now()
	}
	return s.local.Now()
}

// ReadTogether reads the wall clock between two readings of the steady
// clock, and returns the steady clock's reading at the wall reading's
// instant (their midpoint) with it. ok is false when the two steady
// readings lie more than maxSpread apart: the process was preempted in
// between, and the pair would show a step that is not there.
func ReadTogether(steady, wall func() int64, maxSpread time.Duration) (steadyNs, wallNs int64, ok bool) {
	before := steady()
	wallNs = wall()
	after := steady()
	return before + (after-before)/2, wallNs, after-before <= int64(maxSpread)
}

// WallWatch tells a time master when to publish a new base
// (protocol.ClockBase), the pair of readings that lets a master starting
// later continue the shared clock from its wall clock: when the shared
// clock has moved against the wall clock since the last base by Tolerance
// or more (the wall clock stepped, or the master runs at the rate of a
// master it followed before).
type WallWatch struct {
	Tolerance time.Duration
	offset    int64 // shared minus wall clock, of the last base
	started   bool
}

// Moved takes readings of the shared and the wall clock taken together. It
// says whether they make a new base, and by how much the wall clock moved
// against the shared clock since the last one (0 for the first).
func (w *WallWatch) Moved(shared, wall int64) (step time.Duration, newBase bool) {
	offset := shared - wall
	if w.started {
		step = time.Duration(w.offset - offset)
		if step > -w.Tolerance && step < w.Tolerance {
			return step, false
		}
	}
	w.offset, w.started = offset, true
	return step, true
}
