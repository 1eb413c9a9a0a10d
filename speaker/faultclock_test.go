package speaker

import (
	"testing"
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

func TestPacedDeviceOscillator(t *testing.T) {
	d := pacedDevice{rate: 44100, ppm: 100}
	// 100 ppm fast: a second of frames plays in 100 µs less than a second.
	if got := d.elapsed(44100); got != time.Second-99990*time.Nanosecond {
		t.Errorf("one second of frames takes %v", got)
	}
}
