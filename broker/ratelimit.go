package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Default publish limit per client. A speaker publishes about ten clock
// probes a second plus acks and statuses, a person's client far less: the
// limit only stops a runaway or hostile client from flooding the others.
const (
	DefaultPublishRate  = 200 // messages per second
	DefaultPublishBurst = 400 // messages
)

// dropLogInterval is how often at most a client's dropped publishes are
// logged.
const dropLogInterval = time.Second

// publishLimiter is a token bucket per connected client: a client may
// publish burst messages at once and rate a second on average. What goes
// beyond is dropped, and logged at most once a second per client.
type publishLimiter struct {
	rate   float64 // tokens added per second
	burst  float64 // bucket size
	clock  Clock
	logger *slog.Logger

	mu      sync.Mutex
	buckets map[*mqtt.Client]*bucket
}

type bucket struct {
	tokens  float64
	filled  time.Time // when tokens was last topped up
	dropped int       // drops since the last log line
	logged  time.Time // when a drop was last logged; zero: never
}

func newPublishLimiter(rate float64, burst int, clock Clock, logger *slog.Logger) *publishLimiter {
	return &publishLimiter{rate: rate, burst: float64(burst), clock: clock, logger: logger, buckets: map[*mqtt.Client]*bucket{}}
}

// allow takes a token from cl's bucket, or reports false if it is empty.
func (l *publishLimiter) allow(cl *mqtt.Client) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[cl]
	if !ok {
		b = &bucket{tokens: l.burst, filled: now}
		l.buckets[cl] = b
	}
	if elapsed := now.Sub(b.filled); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.filled = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.dropped++
	if b.logged.IsZero() || now.Sub(b.logged) >= dropLogInterval {
		l.logger.Warn("mqtt publishes dropped: client over its rate limit",
			"client", cl.ID, "user", string(cl.Properties.Username), "dropped", b.dropped, "rate", l.rate, "burst", l.burst)
		b.dropped, b.logged = 0, now
	}
	return false
}

// forget drops cl's bucket when it disconnects.
func (l *publishLimiter) forget(cl *mqtt.Client) {
	l.mu.Lock()
	delete(l.buckets, cl)
	l.mu.Unlock()
}
