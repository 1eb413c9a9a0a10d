package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tutti-audio/tutti/clock"
)

// refusalLogInterval is how often at most one kind of refusal (of a user's
// publishes, of connections, of a source's logins) is logged: a client can
// cause thousands a second.
const refusalLogInterval = time.Second

// refusalLog logs refused publishes, at most once per refusalLogInterval
// for each user and message, with the count of those it left out. Its
// entries are bounded by the users file (anonymous clients share "").
type refusalLog struct {
	clock  clock.Clock
	logger *slog.Logger

	mu      sync.Mutex
	entries map[refusalKey]*logPacer
}

type refusalKey struct{ user, msg string }

// logPacer paces the log lines of one kind of refusal.
type logPacer struct {
	logged time.Time // when a line was last logged; zero: never
	count  int       // refusals since then
}

// due records a refusal at now and says whether it may be logged, with the
// refusals counted since the last line, this one included.
func (p *logPacer) due(now time.Time) (count int, ok bool) {
	p.count++
	if !p.logged.IsZero() && now.Sub(p.logged) < refusalLogInterval {
		return 0, false
	}
	count, p.count, p.logged = p.count, 0, now
	return count, true
}

func newRefusalLog(clock clock.Clock, logger *slog.Logger) *refusalLog {
	return &refusalLog{clock: clock, logger: logger, entries: map[refusalKey]*logPacer{}}
}

// add logs msg with err for cl's user, unless one was logged for them less
// than refusalLogInterval ago.
func (l *refusalLog) add(cl *mqtt.Client, msg string, err error) {
	now := l.clock.Now()
	key := refusalKey{string(cl.Properties.Username), msg}
	l.mu.Lock()
	p, ok := l.entries[key]
	if !ok {
		p = new(logPacer)
		l.entries[key] = p
	}
	count, due := p.due(now)
	l.mu.Unlock()
	if !due {
		return
	}
	skipped := count - 1
	l.logger.Warn(msg, "user", key.user, "client", cl.ID, "error", err, "not_logged_before", skipped)
}
