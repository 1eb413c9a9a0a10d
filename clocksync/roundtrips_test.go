package clocksync

import (
	"testing"
	"time"
)

func TestRoundTrips(t *testing.T) {
	var r RoundTrips
	if r.Percentile(0) != 0 || r.Percentile(99) != 0 {
		t.Fatal("empty: want zeros")
	}
	for i := range 10 {
		r.Add(time.Duration(10-i) * time.Millisecond) // 10 ms down to 1 ms
	}
	for p, want := range map[int]time.Duration{0: time.Millisecond, 50: 5 * time.Millisecond, 90: 9 * time.Millisecond, 99: 10 * time.Millisecond, 100: 10 * time.Millisecond} {
		if got := r.Percentile(p); got != want {
			t.Errorf("p%d of 1..10 ms: %v, want %v", p, got, want)
		}
	}
	// Once full, each round trip replaces the oldest: the 10 ms ones leave
	// first.
	for range roundTripWindow {
		r.Add(3 * time.Millisecond)
	}
	if r.Len() != roundTripWindow || r.Percentile(0) != 3*time.Millisecond || r.Percentile(100) != 3*time.Millisecond {
		t.Errorf("full of 3 ms: len %d, min %v, max %v", r.Len(), r.Percentile(0), r.Percentile(100))
	}
	r.Add(7 * time.Millisecond)
	if r.Percentile(100) != 7*time.Millisecond || r.Len() != roundTripWindow {
		t.Errorf("after one 7 ms: max %v len %d", r.Percentile(100), r.Len())
	}
	r.Reset()
	if r.Len() != 0 || r.Percentile(100) != 0 {
		t.Error("Reset kept round trips")
	}
}
