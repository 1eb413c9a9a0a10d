package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilSeesAConditionThatComesTrue(t *testing.T) {
	var done atomic.Bool
	timer := time.AfterFunc(20*time.Millisecond, func() { done.Store(true) })
	defer timer.Stop()
	if !Until(10*time.Second, done.Load) {
		t.Fatal("the condition came true and Until did not see it")
	}
}

func TestUntilGivesUpAtTheDeadline(t *testing.T) {
	asked := 0
	start := time.Now()
	if Until(100*time.Millisecond, func() bool { asked++; return false }) {
		t.Fatal("Until says a false condition held")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", waited)
	}
	// 1, 2, 4, 8 ms, then 10 ms apart: at most 13 asks in 100 ms (and one
	// more after the deadline).
	if asked < 2 || asked > 14 {
		t.Errorf("asked %d times in 100 ms", asked)
	}
}

func TestUntilAsksOnceWhenTheConditionHolds(t *testing.T) {
	asked := 0
	if !Until(0, func() bool { asked++; return true }) || asked != 1 {
		t.Errorf("asked %d times a condition that held", asked)
	}
}
