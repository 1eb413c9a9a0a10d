package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// refusalLogInterval is how often at most one kind of refusal (of a user's
// publishes, of connections, of a source's logins) is logged: a client can
// cause thousands a second.
const refusalLogInterval = time.Second

// refusalLog logs refused publishes, at most once per refusalLogInterval
// for each user and message, with the count of those it left out. Its
// entries are bounded by the users file (anonymous clients share "").
type refusalLog struct {
	clock  Clock
	logger *slog.Logger

	mu      sync.Mutex
	entries map[refusalKey]*refusals
}

type refusalKey struct{ user, msg string }

type refusals struct {
	logged  time.Time // when one was last logged
	skipped int       // refusals not logged since
}

func newRefusalLog(clock Clock, logger *slog.Logger) *refusalLog {
	return &refusalLog{clock: clock, logger: logger, entries: map[refusalKey]*refusals{}}
}

// add logs msg with err for cl's user, unless one was logged for them less
// than refusalLogInterval ago.
func (l *refusalLog) add(cl *mqtt.Client, msg string, err error) {
	now := l.clock.Now()
	key := refusalKey{string(cl.Properties.Username), msg}
	l.mu.Lock()
	r, ok := l.entries[key]
	if !ok {
		r = new(refusals)
		l.entries[key] = r
	}
	if ok && now.Sub(r.logged) < refusalLogInterval {
		r.skipped++
		l.mu.Unlock()
		return
	}
	skipped := r.skipped
	r.logged, r.skipped = now, 0
	l.mu.Unlock()
	l.logger.Warn(msg, "user", key.user, "client", cl.ID, "error", err, "not_logged_before", skipped)
}
