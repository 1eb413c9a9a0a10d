package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tutti-audio/tutti/clock"
)

// Default publish limit per user, over all of its connections. A speaker
// (its own user) publishes 5-10 clock probes a second (20-40 through Wi-Fi
// jitter) plus acks and statuses, a person's clients far less: the limit
// only stops a runaway or hostile user from flooding the others, however
// many connections it opens.
const (
	DefaultPublishRate  = 200 // messages per second
	DefaultPublishBurst = 400 // messages
)

// dropLogInterval is how often at most a user's dropped publishes are
// logged.
const dropLogInterval = time.Second

// publishLimiter is a token bucket per user name: a user's connections
// together may publish burst messages at once and rate a second on average.
// What goes beyond is dropped, and logged at most once a second per user.
// Only users of the users file get here, so the buckets are bounded.
type publishLimiter struct {
	rate   float64 // tokens added per second
	burst  float64 // bucket size
	clock  clock.Clock
	logger *slog.Logger

	mu      sync.Mutex
	buckets map[string]*bucket // by user name
}

type bucket struct {
	tokens  float64
	filled  time.Time // when tokens was last topped up
	dropped int       // drops since the last log line
	logged  time.Time // when a drop was last logged; zero: never
}

func newPublishLimiter(rate float64, burst int, clock clock.Clock, logger *slog.Logger) *publishLimiter {
	return &publishLimiter{rate: rate, burst: float64(burst), clock: clock, logger: logger, buckets: map[string]*bucket{}}
}

// allow takes a token from the bucket of cl's user, or reports false if it
// is empty.
func (l *publishLimiter) allow(cl *mqtt.Client) bool {
	now := l.clock.Now()
	user := string(cl.Properties.Username)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[user]
	if !ok {
		b = &bucket{tokens: l.burst, filled: now}
		l.buckets[user] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.dropped++
	if b.logged.IsZero() || now.Sub(b.logged) >= dropLogInterval {
		l.logger.Warn("mqtt publishes dropped: user over its rate limit",
			"user", user, "client", cl.ID, "dropped", b.dropped, "rate", l.rate, "burst", l.burst)
		b.dropped, b.logged = 0, now
	}
	return false
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if elapsed := now.Sub(b.filled); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed.Seconds()*rate)
		b.filled = now
	}
}

// forget drops the bucket of cl's user when it is full again: a user that
// reconnects gets no more than the tokens it has left.
func (l *publishLimiter) forget(cl *mqtt.Client) {
	now := l.clock.Now()
	user := string(cl.Properties.Username)
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[user]; ok {
		if b.refill(now, l.rate, l.burst); b.tokens >= l.burst {
			delete(l.buckets, user)
		}
	}
}
