package speaker

import (
	"math"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// FaultClock is a local clock that is wrong the way real ones are: off by
// Offset (a Pi without a real-time clock may boot minutes off) and running
// PPM parts per million fast (positive) or slow, like a cheap crystal. Tests
// and benchmarks give it to speakers to prove they stay in sync anyway.
type FaultClock struct {
	offset time.Duration
	ppm    float64
	epoch  time.Time // real instant from which the rate error accumulates
}

// NewFaultClock returns a clock that reads real time plus offset now, and
// gains ppm microseconds per second from now on.
func NewFaultClock(offset time.Duration, ppm float64) *FaultClock {
	return &FaultClock{offset: offset, ppm: ppm, epoch: time.Now()}
}

func (c *FaultClock) Now() time.Time { return c.at(time.Now()) }

// at is the reading of the clock at real instant real.
func (c *FaultClock) at(real time.Time) time.Time {
	gained := time.Duration(math.Round(float64(real.Sub(c.epoch)) * c.ppm / 1e6))
	return real.Add(c.offset + gained)
}

// NewTimer fires after d on this clock: d/(1+ppm/1e6) of real time. Its
// channel carries the real instant, which tutti's loops do not read.
func (c *FaultClock) NewTimer(d time.Duration) clock.Timer {
	return faultTimer{clock.Real{}.NewTimer(c.realDuration(d)), c}
}

// NewTicker ticks every d on this clock; see NewTimer.
func (c *FaultClock) NewTicker(d time.Duration) clock.Ticker {
	return faultTicker{clock.Real{}.NewTicker(c.realDuration(d)), c}
}

// realDuration is how much real time passes while this clock runs d.
func (c *FaultClock) realDuration(d time.Duration) time.Duration {
	return time.Duration(math.Round(float64(d) / (1 + c.ppm/1e6)))
}

type faultTimer struct {
	clock.Timer
	c *FaultClock
}

func (t faultTimer) Reset(d time.Duration) bool { return t.Timer.Reset(t.c.realDuration(d)) }

type faultTicker struct {
	clock.Ticker
	c *FaultClock
}

func (t faultTicker) Reset(d time.Duration) { t.Ticker.Reset(t.c.realDuration(d)) }
