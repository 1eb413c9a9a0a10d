// Package testwait waits, in tests, for a condition that another goroutine
// or process brings about: it polls the condition until it holds or a
// deadline passes.
package testwait

import (
	"testing"
	"time"
)

// Polling starts at firstPoll, so a condition that holds a moment later is
// seen at once, and backs off to maxPoll: seen within 10 ms, which tests
// that time what they wait for allow for, and asked at most 100 times a
// second, cheap even for a condition that starts a process.
const (
	firstPoll = time.Millisecond
	maxPoll   = 10 * time.Millisecond
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
