// Package testwait waits, in tests, for a condition that another goroutine
// or process brings about: it polls the condition until it holds or a
// deadline passes.
package testwait

import (
	"testing"
	"time"
)

// Polling starts at firstPoll, so a condition that holds a moment later is
// seen at once, and backs off to maxPoll, so a condition that takes seconds
// (and may start a process each time it is asked) is asked at most 20 times
// a second.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// Until polls cond until it holds, and says whether it did before timeout
// passed.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for poll := firstPoll; !cond(); poll = min(2*poll, maxPoll) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
	return true
}

// For polls cond until it holds, and fails the test, naming what it waited
// for, if timeout passes first.
func For(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
