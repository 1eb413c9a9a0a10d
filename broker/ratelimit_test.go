package broker

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

func TestPublishLimiter(t *testing.T) {
	clock := newFakeClock()
	log := new(syncBuffer)
	l := newPublishLimiter(10, 5, clock, slog.New(slog.NewTextHandler(log, nil)))
	client := func(id, user string) *mqtt.Client {
		cl := &mqtt.Client{ID: id}
		cl.Properties.Username = []byte(user)
		return cl
	}
	a, a2, b := client("a", "alice"), client("a2", "alice"), client("b", "bob")
	allowed := func(cl *mqtt.Client, n int) int {
		ok := 0
		for range n {
			if l.allow(cl) {
				ok++
			}
		}
		return ok
	}
	if got := allowed(a, 8); got != 5 {
		t.Errorf("burst: %d of 8 allowed, want 5", got)
	}
	if got := allowed(a2, 5); got != 0 {
		t.Errorf("another connection of the same user: %d of 5 allowed, want none (one bucket per user)", got)
	}
	if got := allowed(b, 5); got != 5 {
		t.Errorf("another user: %d of 5 allowed, want its own burst of 5", got)
	}
	clock.Advance(300 * time.Millisecond) // 3 tokens
	if got := allowed(a, 5); got != 3 {
		t.Errorf("after 300 ms: %d of 5 allowed, want 3", got)
	}
	clock.Advance(time.Hour) // the bucket holds no more than the burst
	if got := allowed(a, 8); got != 5 {
		t.Errorf("after an hour: %d of 8 allowed, want 5", got)
	}
	// The first drops and those 300 ms later share a line; the drops an
	// hour later get their own.
	if n := strings.Count(log.String(), "rate limit"); n != 2 {
		t.Errorf("%d log lines, want 2 (once a second at most):\n%s", n, log.String())
	}
	clock.Advance(time.Second)
	allowed(a, 20)
	if n := strings.Count(log.String(), "rate limit"); n != 3 {
		t.Errorf("%d log lines, want 3:\n%s", n, log.String())
	}
	// A user that reconnects gets no more than the tokens it had left; a
	// full bucket is forgotten.
	l.forget(a)
	if got := allowed(a, 8); got != 0 {
		t.Errorf("reconnected at once: %d of 8 allowed, want 0", got)
	}
	clock.Advance(time.Second)
	l.forget(a)
	if _, kept := l.buckets["alice"]; kept {
		t.Error("a full bucket was kept after its user disconnected")
	}
	if got := allowed(a, 8); got != 5 {
		t.Errorf("after a second: %d of 8 allowed, want 5", got)
	}
}

func TestPublishRateLimit(t *testing.T) {
	clock := newFakeClock()
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob, ctl), Clock: clock, PublishRate: 10, PublishBurst: 5})
	observer := mustConnect(t, b, admin, "observer")
	seen := subscribe(t, observer, "limit/#")
	member := mustConnect(t, b, bob, "bob")
	// A second connection of the same user shares its limit.
	member2 := mustConnect(t, b, bob, "bob-2")
	controller := mustConnect(t, b, ctl, "controller")

	for i := range 8 {
		from := member
		if i%2 == 1 {
			from = member2
		}
		publish(t, from, "limit/bob", false, fmt.Sprint(i)) // acknowledged, even when dropped
	}
	for i := range 8 {
		publish(t, controller, "limit/ctl", false, fmt.Sprint(i)) // controllers have no limit
	}
	clock.Advance(time.Second)
	publish(t, member, "limit/bob", false, "marker")
	var fromBob, fromCtl []string
	for len(fromBob) == 0 || fromBob[len(fromBob)-1] != "marker" {
		m := receive(t, seen)
		if m.topic == "limit/bob" {
			fromBob = append(fromBob, m.payload)
		} else {
			fromCtl = append(fromCtl, m.payload)
		}
	}
	if got := strings.Join(fromBob, " "); got != "0 1 2 3 4 marker" {
		t.Errorf("bob's publishes delivered: %s", got)
	}
	for len(fromCtl) < 8 {
		fromCtl = append(fromCtl, receive(t, seen).payload)
	}
	if !member.IsConnectionOpen() {
		t.Error("a client over its limit was disconnected")
	}
	if !strings.Contains(log.String(), "rate limit") || !strings.Contains(log.String(), "client=bob") {
		t.Errorf("drops not logged:\n%s", log.String())
	}
}

func TestPublishRateLimitOff(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob), PublishRate: -1})
	seen := subscribe(t, mustConnect(t, b, admin, "observer"), "limit/#")
	c := mustConnect(t, b, bob, "bob")
	n := 2 * DefaultPublishBurst
	for i := range n {
		c.Publish("limit/x", 0, false, fmt.Sprint(i))
	}
	publish(t, c, "limit/x", false, "marker")
	count := 0
	for receive(t, seen).payload != "marker" {
		count++
	}
	if count != n {
		t.Errorf("%d of %d delivered", count, n)
	}
}
