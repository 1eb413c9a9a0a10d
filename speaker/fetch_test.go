package speaker

import (
	"testing"
	"time"
)

// TestBackoffSleepsUntilTheNextRetry: the fetch loop sleeps until the
// earliest retry falls due, not a poll interval, and at most its safety
// tick; retries already due do not shorten the sleep to nothing.
func TestBackoffSleepsUntilTheNextRetry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b := backoff{}
	if got := b.sleep(now, fetchSafety); got != fetchSafety {
		t.Errorf("no failures: sleep %v, want %v", got, fetchSafety)
	}
	b["late"] = failure{count: 3, retry: now.Add(4 * time.Second)}
	b["soon"] = failure{count: 1, retry: now.Add(200 * time.Millisecond)}
	b["due"] = failure{count: 2, retry: now.Add(-time.Second)} // the next pass takes it
	if got := b.sleep(now, fetchSafety); got != 200*time.Millisecond {
		t.Errorf("sleep %v, want 200ms (the soonest retry)", got)
	}
	b.succeeded("soon")
	if got := b.sleep(now, fetchSafety); got != 4*time.Second {
		t.Errorf("sleep %v, want 4s", got)
	}
	if got := b.sleep(now, time.Second); got != time.Second {
		t.Errorf("sleep %v, want the limit, 1s", got)
	}
}
