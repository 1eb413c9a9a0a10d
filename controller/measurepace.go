package controller

import (
	"sync/atomic"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// The background measuring of folder songs (songlength.go) decodes for
// minutes after a large library's scan, a core's worth: on a small machine
// that is the core the broker and the command replies would have had. So
// it yields: between two chunks of a song it waits while commands are
// coming in.

const (
	// commandQuiet is how long measuring stays paused after a command
	// arrives: handling one and publishing its reply (a browse page, a
	// search, an enqueue) takes a few milliseconds.
	commandQuiet = 20 * time.Millisecond
	// maxYield bounds the pauses of one song's measuring, so that a steady
	// stream of commands slows measuring down without stopping it, and an
	// upload waiting for the analysis slot waits at most this longer.
	maxYield = 2 * time.Second
)

// yielder tells the measuring loop when to let commands go first.
type yielder struct {
	clock clock.Clock
	base  time.Time    // the clock's reading at start: times are kept as offsets from it
	last  atomic.Int64 // when the last command arrived, since base, plus 1 (0: none yet)
}

func newYielder(c clock.Clock) *yielder { return &yielder{clock: c, base: c.Now()} }

// commandArrived notes that a command arrived now (paho's handler).
func (y *yielder) commandArrived() { y.last.Store(int64(clock.Since(y.clock, y.base)) + 1) }

// pacer is the pace of one song's measuring: each call waits until no
// command arrived for commandQuiet, for at most maxYield over all calls.
func (y *yielder) pacer() func() {
	var waited time.Duration
	return func() { waited += y.yield(maxYield - waited) }
}

// yield waits until no command arrived for commandQuiet, at most budget,
// and returns how long it waited.
func (y *yielder) yield(budget time.Duration) time.Duration {
	start := clock.Since(y.clock, y.base)
	for {
		now := clock.Since(y.clock, y.base)
		last := y.last.Load()
		if last == 0 {
			return 0
		}
		wait := min(time.Duration(last-1)+commandQuiet-now, start+budget-now)
		if wait <= 0 {
			return now - start
		}
		t := y.clock.NewTimer(wait)
		<-t.C()
	}
}
