package speaker

import (
	"slices"
	"time"
)

// wakeMargin is how long before a block's instant the paced thread wakes,
// to wait the last stretch awake: a wake-up is late by the machine's
// wake-up latency, which varies by tens of µs (a real-time thread: ~20-60
// µs, p1-p50, on a virtual machine; ~10-20 µs on a Pi). The thread wakes
// ahead by a high percentile of its last wakeWindow wake-up latencies, so
// that nearly every block leaves within a µs of its instant while a machine
// that wakes its threads promptly spends little awake.
type wakeMargin struct {
	ahead time.Duration
	woke  [wakeWindow]time.Duration // recent wake-up latencies
	wakes int
}

const (
	// wakeWindow is how many recent wake-ups the margin is taken from:
	// 2.56 s of 10 ms blocks, enough for a 99th percentile.
	wakeWindow = 256
	// wakeEvery is how often, in wake-ups, the margin is taken anew.
	wakeEvery = wakeWindow / 4
	// wakeRank is the rank, in a window sorted ascending, of the latency
	// to wake ahead by: the 99th percentile.
	wakeRank = wakeWindow * 99 / 100
	aheadMin = 10 * time.Microsecond
	// aheadMax bounds the cost of waiting awake: 2 % of a core at 100
	// blocks a second, on a machine too loaded to wake threads on time.
	aheadMax = 200 * time.Microsecond
)

func newWakeMargin() *wakeMargin { return &wakeMargin{ahead: aheadMax} }

// wokeLate records a wake-up latency, and every wakeEvery wake-ups sets
// how far ahead to wake from the last wakeWindow.
func (w *wakeMargin) wokeLate(latency time.Duration) {
	w.woke[w.wakes%wakeWindow] = latency
	w.wakes++
	if w.wakes%wakeEvery != 0 {
		return
	}
	recent := w.woke // a copy, sorted
	slices.Sort(recent[:])
	w.ahead = min(aheadMax, max(aheadMin, recent[wakeRank]))
}
