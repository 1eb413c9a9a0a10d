// Package clock is the local clock every role reads the time and sets its
// timers by. Real is the machine's clock; a nil Clock means Real (Or).
// Tests run real time inside a testing/synctest bubble, or move a Manual
// clock by hand; the speaker's FaultClock runs off and at a wrong rate.
//
// The local clock is what a machine measures intervals with. The shared
// clock, the timeline speakers play by, is another thing: clocksync maps
// local instants (clocksync.LocalNs) to shared ones (clocksync.SharedNs).
package clock

import "time"

// Clock tells the local time and makes timers and tickers that run on it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
	NewTicker(d time.Duration) Ticker
}

// Timer is a time.Timer of a Clock: it sends on C once, d after it was
// made or reset. As with time.Timer since Go 1.23, no stale value is
// received after Stop or Reset returns.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker of a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Or is c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Since is the time elapsed on c since t.
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// Real is the machine's clock (inside a synctest bubble, the bubble's).
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time   { return t.t.C }
func (t realTicker) Stop()                 { t.t.Stop() }
func (t realTicker) Reset(d time.Duration) { t.t.Reset(d) }
