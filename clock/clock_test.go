package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// received is what ch holds now, if anything.
func received(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestManualTimersFireInOrderAtTheirInstants(t *testing.T) {
	m := NewManual(start)
	late := m.NewTimer(3 * time.Second)
	early := m.NewTimer(time.Second)
	m.Advance(999 * time.Millisecond)
	if _, ok := received(early.C()); ok {
		t.Fatal("a 1 s timer fired after 999 ms")
	}
	m.Advance(5 * time.Second)
	if at, ok := received(early.C()); !ok || !at.Equal(start.Add(time.Second)) {
		t.Errorf("early timer: %v %v, want %v", at, ok, start.Add(time.Second))
	}
	if at, ok := received(late.C()); !ok || !at.Equal(start.Add(3*time.Second)) {
		t.Errorf("late timer: %v %v", at, ok)
	}
	if late.Stop() {
		t.Error("Stop of a fired timer says it was active")
	}
	if !m.Now().Equal(start.Add(5999 * time.Millisecond)) {
		t.Errorf("now %v", m.Now())
	}
}

func TestManualStopAndResetDropTheUnreadValue(t *testing.T) {
	m := NewManual(start)
	tm := m.NewTimer(time.Second)
	m.Advance(time.Second)
	if tm.Reset(time.Second) {
		t.Error("Reset of a fired timer says it was active")
	}
	if _, ok := received(tm.C()); ok {
		t.Fatal("the value of the first expiry is still there after Reset")
	}
	m.Advance(time.Second)
	if at, ok := received(tm.C()); !ok || !at.Equal(start.Add(2*time.Second)) {
		t.Errorf("after Reset: %v %v", at, ok)
	}
	tm.Reset(time.Second)
	if !tm.Stop() {
		t.Error("Stop of a pending timer says it was not active")
	}
	m.Advance(time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Error("a stopped timer fired")
	}
	now := m.NewTimer(0)
	if _, ok := received(now.C()); !ok {
		t.Error("a timer of 0 did not fire at once")
	}
}

func TestManualTickerKeepsItsPeriodAndDropsMissedTicks(t *testing.T) {
	m := NewManual(start)
	tk := m.NewTicker(100 * time.Millisecond)
	var got []time.Duration
	for range 3 {
		m.Advance(100 * time.Millisecond)
		at, ok := received(tk.C())
		if !ok {
			t.Fatal("no tick")
		}
		got = append(got, at.Sub(start))
	}
	if got[0] != 100*time.Millisecond || got[2] != 300*time.Millisecond {
		t.Errorf("ticks at %v", got)
	}
	m.Advance(time.Second) // ten ticks due, one kept (as time.Ticker does)
	if at, ok := received(tk.C()); !ok || at.Sub(start) != 400*time.Millisecond {
		t.Errorf("after a second unread: %v %v", at.Sub(start), ok)
	}
	if _, ok := received(tk.C()); ok {
		t.Error("more than one tick kept")
	}
	tk.Reset(time.Second)
	m.Advance(999 * time.Millisecond)
	if _, ok := received(tk.C()); ok {
		t.Error("ticked before the new period")
	}
	m.Advance(time.Millisecond)
	if _, ok := received(tk.C()); !ok {
		t.Error("no tick at the new period")
	}
	tk.Stop()
	m.Advance(time.Hour)
	if _, ok := received(tk.C()); ok {
		t.Error("a stopped ticker ticked")
	}
}

func TestManualBackFiresNothing(t *testing.T) {
	m := NewManual(start)
	tm := m.NewTimer(time.Second)
	m.Advance(-time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Fatal("fired on a step back")
	}
	m.Advance(time.Hour + time.Second)
	if _, ok := received(tm.C()); !ok {
		t.Fatal("did not fire at its instant after the step back and forth")
	}
}

// TestRealRunsOnTheBubblesTime: code holding a nil Clock runs on synctest's
// fake time.
func TestRealRunsOnTheBubblesTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := Or(nil)
		t0 := c.Now()
		tm := c.NewTimer(time.Hour)
		tk := c.NewTicker(time.Minute)
		defer tk.Stop()
		at := <-tm.C()
		if d := at.Sub(t0); d != time.Hour {
			t.Errorf("timer after %v", d)
		}
		if d := Since(c, t0); d != time.Hour {
			t.Errorf("Since %v", d)
		}
		if _, ok := received(tk.C()); !ok {
			t.Error("no tick kept while the timer ran")
		}
	})
}
