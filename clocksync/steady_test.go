package clocksync

import (
	"testing"
	"time"

	"testing/synctest"
)

func TestSteadyStartsAtItsBase(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	s := NewSteady(base, nil)
	first := s.Now()
	if first < base || first > base+int64(time.Second) {
		t.Fatalf("a steady clock based at %d reads %d", base, first)
	}
	if second := s.Now(); second < first {
		t.Fatalf("a steady clock went back from %d to %d", first, second)
	}
}

// TestSteadyAdvancesWithItsLocalClock: the base is read once; from then on
// only the local clock moves it, by exactly as much as it moves.
func TestSteadyAdvancesWithItsLocalClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		s := NewSteady(base, nil)
		if got := s.Now(); got != base {
			t.Fatalf("reads %d at start, want %d", got, base)
		}
		time.Sleep(1500 * time.Millisecond)
		if got := s.Now(); got != base+int64(1500*time.Millisecond) {
			t.Fatalf("reads %v after 1.5 s", time.Duration(got-base))
		}
	})
}

// TestWallWatch: the first readings make a base; the wall clock moving
// less than the tolerance against the shared clock makes none; a step
// makes one, with the step's size and sign (positive: the wall clock
// jumped ahead).
func TestWallWatch(t *testing.T) {
	w := WallWatch{Tolerance: time.Millisecond}
	const shared, wall = int64(5e18), int64(4e18)
	for _, c := range []struct {
		name         string
		shared, wall int64
		step         time.Duration
		newBase      bool
	}{
		{"first", shared, wall, 0, true},
		{"unmoved", shared + 1e9, wall + 1e9, 0, false},
		{"within tolerance", shared + 2e9, wall + 2e9 + 999_999, 999_999, false},
		{"stepped ahead", shared + 3e9, wall + 3e9 + int64(5*time.Minute), 5 * time.Minute, true},
		{"after the step", shared + 4e9, wall + 4e9 + int64(5*time.Minute), 0, false},
		{"stepped back", shared + 5e9, wall + 5e9 - int64(3*time.Minute), -8 * time.Minute, true},
	} {
		step, newBase := w.Moved(c.shared, c.wall)
		if step != c.step || newBase != c.newBase {
			t.Errorf("%s: step %v, new base %v; want %v, %v", c.name, step, newBase, c.step, c.newBase)
		}
	}
}

// TestReadTogether: the steady reading returned is the midpoint of the two
// around the wall reading; readings too far apart are refused.
func TestReadTogether(t *testing.T) {
	readings := []int64{1000, 1600}
	steady := func() int64 { r := readings[0]; readings = readings[1:]; return r }
	wall := func() int64 { return 77 }
	if s, w, ok := ReadTogether(steady, wall, time.Microsecond); !ok || s != 1300 || w != 77 {
		t.Errorf("readings 600 ns apart: %d, %d, %v; want 1300, 77, true", s, w, ok)
	}
	readings = []int64{1000, 1000 + int64(2*time.Microsecond)}
	if _, _, ok := ReadTogether(steady, wall, time.Microsecond); ok {
		t.Error("readings 2 µs apart accepted with a limit of 1 µs")
	}
}
