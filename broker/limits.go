package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// Size limits of what the broker takes, for everyone. mochi's topic tree
// walks a topic from its start once per level (topics.go isolateParticle),
// so a topic thousands of levels deep costs the square of that in CPU and
// memory when it is retained or matched against subscriptions, and again at
// every start when the store is loaded. The limits are checked before the
// tree sees a topic: publishes in limitsHook.OnPublish (the first hook),
// subscription filters in authHook.OnACLCheck, last wills at CONNECT
// (authHook.OnConnectAuthenticate), stored messages in prepareStore.

// checkMessage checks a publish or last will: its topic's size
// (protocol.CheckTopicSize), its payload's (protocol.MaxPayload, the
// documented limit; packets stay limited by Options.MaxPacketSize), and, if
// retained, that a topic below tutti/ is one the protocol defines as retained
// (protocol.Retained). An empty retained payload only clears a topic: it is
// always allowed.
func checkMessage(topic string, payload []byte, retain bool) error {
	if err := protocol.CheckTopicSize(topic); err != nil {
		return err
	}
	if len(payload) > protocol.MaxPayload {
		return fmt.Errorf("payload of %d bytes exceeds %d", len(payload), protocol.MaxPayload)
	}
	if retain && len(payload) > 0 && inTutti(topic) && !protocol.Retained(topic) {
		return fmt.Errorf("%s is not a retained topic of tutti's", topic)
	}
	return nil
}

// limitsHook drops every publish that checkMessage refuses, with
// CodeSuccessIgnore (acknowledged, neither retained nor delivered), and logs
// it at most once a second per user. It is the first hook, so no other
// sees such a publish.
type limitsHook struct {
	mqtt.HookBase
	refusals *refusalLog
}

func (h *limitsHook) ID() string { return "tutti-limits" }

func (h *limitsHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *limitsHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := checkMessage(pk.TopicName, pk.Payload, pk.FixedHeader.Retain); err != nil {
		h.refusals.add(cl, "mqtt publish refused: over a limit", err)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// logTopicLength is the most of a topic a log line quotes.
const logTopicLength = 200

// logTopic returns topic, cut to logTopicLength bytes for a log line.
func logTopic(topic string) string {
	if len(topic) <= logTopicLength {
		return topic
	}
	return topic[:logTopicLength] + "..."
}

// refusalLogInterval is how often at most one user's refusals of one kind
// are logged: a client can send thousands a second.
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
