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
	wakeWindow = 64
	// wakeRank is the rank, in a window sorted ascending, of the latency
	// to wake ahead by: the 90th percentile.
	wakeRank = wakeWindow * 9 / 10
	aheadMin = 10 * time.Microsecond
	// aheadMax bounds the cost of waiting awake: 2 % of a core at 100
	// blocks a second, on a machine too loaded to wake threads on time.
	aheadMax = 200 * time.Microsecond
)

func newWakeMargin() *wakeMargin { return &wakeMargin{ahead: aheadMax} }

// wokeLate records a wake-up latency, and every wakeWindow wake-ups sets
// how far ahead to wake from them.
func (w *wakeMargin) wokeLate(latency time.Duration) {
	w.woke[w.wakes%wakeWindow] = latency
	w.wakes++
	if w.wakes%wakeWindow != 0 {
		return
	}
	recent := w.woke // a copy, sorted
	slices.Sort(recent[:])
	w.ahead = min(aheadMax, max(aheadMin, recent[wakeRank]))
}
