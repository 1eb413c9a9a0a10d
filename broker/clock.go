package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// The broker can be the time master: it answers speakers' clock probes
// itself, on the goroutine of the speaker's connection. Its clock then is
// the shared clock, and it stays the same when controllers come and go (a
// standby taking over must not shift the timeline speakers play by), and a
// probe's round trip is one hop shorter than through a controller.
//
// The shared clock is not the wall clock: a hub without a battery clock
// steps its wall clock when NTP syncs, and every retained anchor would move
// by the step. It is a clocksync.Steady clock, whose base is published
// retained (protocol.ClockBase, stored with the other retained messages),
// so the broker continues it when it starts again.

// Limits of the wall clock watch.
const (
	// wallCheckInterval is how often the master compares its wall clock
	// with the shared clock. It bounds how long a restart after a step
	// would still use the old base.
	wallCheckInterval = time.Second
	// wallStepTolerance is the smallest change of shared minus wall that
	// counts as a step and is published. Linux slews the monotonic clock
	// with the wall clock, so the difference only moves when the wall clock
	// steps; 1 ms stays above the jitter of reading the two clocks, and is
	// the most a restart after an unpublished step can shift the timeline.
	wallStepTolerance = time.Millisecond
)

// timeMaster is the broker's shared clock. Safe for concurrent use.
type timeMaster struct {
	wall   Clock
	shared clocksync.Steady
	logger *slog.Logger

	mu     sync.Mutex
	offset int64 // shared minus wall clock, of the base last published
}

// newTimeMaster starts the shared clock where the stored base (the payload
// of the retained protocol.ClockBaseTopic, nil if none) says it is now, or
// at the wall clock when there is none.
func newTimeMaster(wall Clock, stored []byte, logger *slog.Logger) *timeMaster {
	now := wall.Now().UnixNano()
	var offset int64
	if stored != nil {
		if base, err := protocol.Decode[protocol.ClockBase](stored); err != nil {
			logger.Warn("stored clock base unreadable: the shared clock starts at the wall clock", "err", err)
		} else {
			offset = base.SharedNs - base.WallNs
			logger.Info("continuing the shared clock of the last run", "ahead_of_wall", time.Duration(offset))
		}
	}
	return &timeMaster{wall: wall, shared: clocksync.NewSteady(now + offset), logger: logger, offset: offset}
}

// now is the shared clock's reading, Unix ns.
func (m *timeMaster) now() int64 { return m.shared.Now() }

// base returns the base to publish, and whether it differs from the last
// one published: the wall clock stepped (or nothing was published yet, when
// first is set).
func (m *timeMaster) base(first bool) (protocol.ClockBase, bool) {
	wall := m.wall.Now().UnixNano()
	shared := m.shared.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	step := shared - wall - m.offset
	if !first && step < int64(wallStepTolerance) && step > -int64(wallStepTolerance) {
		return protocol.ClockBase{}, false
	}
	if !first {
		m.logger.Warn("the wall clock stepped; the shared clock runs on unmoved", "step", -time.Duration(step))
	}
	m.offset = shared - wall
	return protocol.ClockBase{V: protocol.Version, SharedNs: shared, WallNs: wall}, true
}

// publishBase retains the base when it changed (always when first).
func (m *timeMaster) publishBase(server *mqtt.Server, first bool) {
	base, changed := m.base(first)
	if !changed {
		return
	}
	if err := server.Publish(protocol.ClockBaseTopic, protocol.Encode(base), true, 1); err != nil {
		m.logger.Warn("clock base not published", "err", err)
	}
}

// answerClock returns the inline handler of tutti/speaker/+/clock/req.
// T2 is stamped first thing and T3 right before the answer goes out.
func answerClock(server *mqtt.Server, master *timeMaster, logger *slog.Logger) mqtt.InlineSubFn {
	return func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		t2 := master.now()
		id, ok := protocol.SpeakerFromTopic(pk.TopicName)
		if !ok {
			return
		}
		req, err := protocol.Decode[protocol.ClockRequest](pk.Payload)
		if err != nil {
			logger.Debug("bad clock probe", "speaker", id, "err", err)
			return
		}
		resp := protocol.ClockResponse{V: protocol.Version, ID: req.ID, T1: req.T1, T2: t2}
		resp.T3 = master.now()
		if err := server.Publish(protocol.ClockResponseTopic(id), protocol.Encode(resp), false, 0); err != nil {
			logger.Debug("clock answer not sent", "speaker", id, "err", err)
		}
	}
}

// clockSubscriptionID identifies the broker's own subscription to probes.
const clockSubscriptionID = 1
