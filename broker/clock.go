package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
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
	wall   clock.Clock
	shared clocksync.Steady
	logger *slog.Logger

	mu    sync.Mutex
	watch clocksync.WallWatch
}

// newTimeMaster returns a time master reading the wall clock wall (nil =
// real time); start starts its clock.
func newTimeMaster(wall clock.Clock, logger *slog.Logger) *timeMaster {
	return &timeMaster{wall: clock.Or(wall), logger: logger, watch: clocksync.WallWatch{Tolerance: wallStepTolerance}}
}

// start starts the shared clock where the stored base (the payload of the
// retained protocol.ClockBaseTopic, nil if none) says it is now, or at the
// wall clock when there is none. It is called once, before any probe is
// answered.
func (m *timeMaster) start(stored []byte) {
	now := m.wall.Now().UnixNano()
	var offset int64
	if stored != nil {
		if base, err := protocol.Decode[protocol.ClockBase](stored); err != nil {
			m.logger.Warn("stored clock base unreadable: the shared clock starts at the wall clock", "err", err)
		} else {
			offset = base.SharedNs - base.WallNs
			m.logger.Info("continuing the shared clock of the last run", "ahead_of_wall", time.Duration(offset))
		}
	}
	m.shared = clocksync.NewSteady(now+offset, nil) // advanced by the monotonic clock, which a wall step does not move
}

// now is the shared clock's reading, Unix ns.
func (m *timeMaster) now() int64 { return m.shared.Now() }

// base returns the base to publish, and whether there is a new one: none
// was published yet, or the wall clock stepped since.
func (m *timeMaster) base() (protocol.ClockBase, bool) {
	shared, wall, ok := clocksync.ReadTogether(m.shared.Now, func() int64 { return m.wall.Now().UnixNano() }, wallStepTolerance/2)
	if !ok {
		return protocol.ClockBase{}, false // preempted while reading: the next check compares
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	step, changed := m.watch.Moved(shared, wall)
	if !changed {
		return protocol.ClockBase{}, false
	}
	if step != 0 {
		m.logger.Warn("the wall clock stepped; the shared clock runs on unmoved", "step", step)
	}
	return protocol.ClockBase{V: protocol.Version, SharedNs: shared, WallNs: wall}, true
}

// publishBase retains the base when there is a new one.
func (m *timeMaster) publishBase(server *mqtt.Server) {
	base, changed := m.base()
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

// clockBaseGuard keeps the base the broker retains its own: it drops every
// client's publish on protocol.ClockBaseTopic (with CodeSuccessIgnore, as
// authHook does), so nobody can set where the shared clock continues after
// the broker's restart. Added only with Options.AnswerClock; otherwise the
// lease holder publishes the base.
type clockBaseGuard struct {
	mqtt.HookBase
	logger *slog.Logger
}

func (h *clockBaseGuard) ID() string { return "tutti-clock-base" }

func (h *clockBaseGuard) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnConnect }

func (h *clockBaseGuard) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == protocol.ClockBaseTopic && !cl.Net.Inline {
		h.logger.Warn("publish dropped: the broker keeps the clock base itself", "client", cl.ID)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// OnConnect refuses a client whose last will is on the clock base topic:
// mochi publishes wills past OnPublish.
func (h *clockBaseGuard) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.WillFlag && pk.Connect.WillTopic == protocol.ClockBaseTopic {
		h.logger.Warn("connection refused: a last will on the clock base, which the broker keeps itself", "client", cl.ID)
		return packets.ErrNotAuthorized
	}
	return nil
}

// clockSubscriptionID identifies the broker's own subscription to probes.
const clockSubscriptionID = 1
