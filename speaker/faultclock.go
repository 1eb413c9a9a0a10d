package speaker

import (
	"math"
	"time"
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
