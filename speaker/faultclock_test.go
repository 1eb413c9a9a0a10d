package speaker

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestFaultClock(t *testing.T) {
	c := NewFaultClock(-90*time.Second, 100)
	hourLater := c.epoch.Add(time.Hour)
	want := hourLater.Add(-90*time.Second + 360*time.Millisecond) // 100 ppm of an hour
	if got := c.at(hourLater); !got.Equal(want) {
		t.Errorf("an hour on: %v, want %v", got, want)
	}
	if d := time.Until(c.Now()); d > -89*time.Second || d < -91*time.Second {
		t.Errorf("offset now %v, want about -90s", d)
	}
}

// TestFaultClockTimers: a clock 100 ppm fast runs its timers and tickers
// 100 ppm short of real time, Reset included.
func TestFaultClockTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewFaultClock(time.Minute, 100)
		fast := time.Duration(math.Round(float64(time.Second) / (1 + 100e-6)))
		start := time.Now()
		timer := c.NewTimer(time.Second)
		<-timer.C()
		if d := time.Since(start); d != fast {
			t.Errorf("a second's timer fired after %v of real time, want %v", d, fast)
		}
		timer.Reset(time.Second)
		<-timer.C()
		if d := time.Since(start); d != 2*fast {
			t.Errorf("reset: fired %v after the start, want %v", d, 2*fast)
		}
		ticker := c.NewTicker(time.Second)
		defer ticker.Stop()
		start = time.Now()
		<-ticker.C()
		<-ticker.C()
		if d := time.Since(start); d != 2*fast {
			t.Errorf("two ticks after %v, want %v", d, 2*fast)
		}
	})
}

func TestPacedDeviceOscillator(t *testing.T) {
	d := pacedDevice{rate: 44100, ppm: 100}
	// 100 ppm fast: a second of frames plays in 100 µs less than a second.
	if got := d.elapsed(44100); got != time.Second-99990*time.Nanosecond {
		t.Errorf("one second of frames takes %v", got)
	}
}
