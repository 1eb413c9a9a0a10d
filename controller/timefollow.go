package controller

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// The shared clock is the time master's: the broker's (ClockFromBroker) or
// the lease holder's. Controllers run on machines whose clocks differ by
// milliseconds, or by seconds on a Pi without a real-time clock, so a
// controller that is not the time master follows the master's clock the way
// speakers do: it probes it on clock topics of its own and fits the answers
// with a clocksync.Estimator. When it takes over the lease and so becomes
// the time master, it freezes the last model (offset and drift) and keeps
// answering and scheduling with it: speakers see no jump in the clock, and
// the retained anchors, stamped in the old master's time, keep their meaning.
//
// The local clock here is the controller's steady clock (clocksync.Steady),
// never its wall clock, so a step of the wall clock moves neither the model
// nor, while we are the master, the shared clock. As the master we publish
// the shared clock's base (protocol.ClockBase) retained, and again when the
// wall clock moves against it; a controller that becomes the master having
// followed nobody (all controllers restarted) continues the shared clock
// from that base rather than starting it at its own wall clock.

// Pace and quality of the controller's own clock probes.
const (
	followFastInterval = 200 * time.Millisecond // for followFastFor after connecting or stepping down
	followFastFor      = 5 * time.Second
	followInterval     = 500 * time.Millisecond
	// followSamples and followErrorBound are what the estimate needs before
	// it replaces the model in use, as for speakers; after followPatience
	// of answers that never get that good (a network whose best round trip
	// is over 4 ms), the best estimate there is beats the local clock.
	followSamples    = 4
	followErrorBound = 2 * time.Millisecond
	followPatience   = 3 * time.Second
	// followStaleProbes is how many probes back an answer may refer to.
	followStaleProbes = 100
	// baseTolerance is how far the shared clock may move against the wall
	// clock before the master publishes a new base: the most a master
	// continuing from the base can be off besides the difference of the
	// two masters' wall clocks. A frozen model's drift moves it too (100
	// ppm: a new base every 10 s).
	baseTolerance = time.Millisecond
	// wallStepWarn is the smallest move of the wall clock against the
	// shared clock that is logged as a step rather than a drift.
	wallStepWarn = 100 * time.Millisecond
)

// followConfig is how a standby follows the time master's clock: no burst
// (a controller schedules nothing until it takes over), and once the
// estimate was good enough it stays in use, so its trust never closes.
var followConfig = clocksync.FollowerConfig{
	FastInterval: followFastInterval, FastFor: followFastFor, Interval: followInterval,
	Samples: followSamples, ErrorBound: followErrorBound, Patience: followPatience,
	Uncertain: math.MaxInt64, StaleProbes: followStaleProbes,
}

// timeFollower is a controller's view of the shared clock: a model that maps
// the local clock to the time master's. Safe for concurrent use.
type timeFollower struct {
	id  string // level of our clock topics: "controller-" + our random instance, so no speaker has it
	log *slog.Logger

	mu       sync.Mutex
	model    clocksync.Model     // the zero model is the local clock itself
	synced   bool                // model comes from the master's answers
	frozen   bool                // we are the time master: model holds, no probes
	follower *clocksync.Follower // probes and answers, while we follow
	base     *protocol.ClockBase // the last one seen retained, or published by us
	watch    clocksync.WallWatch // of the bases we publish while we are the master
}

func newTimeFollower(instance string, log *slog.Logger, now clocksync.LocalNs) *timeFollower {
	return &timeFollower{id: "controller-" + instance, log: log, follower: clocksync.NewFollower(followConfig, now)}
}

// shared is the shared-clock instant of the local instant local.
func (f *timeFollower) shared(local clocksync.LocalNs) clocksync.SharedNs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.model.SharedAt(local)
}

// isSynced reports whether the model in use comes from the master's answers.
func (f *timeFollower) isSynced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

// probe returns the next probe to send, stamped with the local instant t1;
// false while we are the time master.
func (f *timeFollower) probe(t1 clocksync.LocalNs) (protocol.ClockRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return protocol.ClockRequest{}, false
	}
	return protocol.ClockRequest{V: protocol.Version, ID: f.follower.Probe(), T1: int64(t1)}, true
}

// answered takes the master's answer to one of our probes, received at the
// local instant t4.
func (f *timeFollower) answered(payload []byte, t4 clocksync.LocalNs) error {
	resp, err := protocol.Decode[protocol.ClockResponse](payload)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil // sent before we became the master; we follow nobody now
	}
	est, err := f.follower.Answer(resp.ID, clocksync.LocalNs(resp.T1), clocksync.SharedNs(resp.T2), clocksync.SharedNs(resp.T3), t4)
	if err != nil || !est.Trust.Opened {
		return err
	}
	if !f.synced {
		log := f.log.Info
		if est.Bound > followErrorBound {
			log = f.log.Warn
		}
		log("following the time master's clock", "offset", time.Duration(est.Model.At(int64(t4))), "err_bound", est.Bound,
			"jump", time.Duration(est.Model.SharedAt(t4)-f.model.SharedAt(t4)))
	}
	f.model, f.synced = est.Model, true
	return nil
}

// freeze makes the model in use our clock for good: we are the time master
// now and continue the timeline the old one kept. wall and local are
// readings of our wall and steady clocks taken together.
func (f *timeFollower) freeze(wall int64, local clocksync.LocalNs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return
	}
	f.frozen = true
	f.watch = clocksync.WallWatch{Tolerance: baseTolerance}
	_, _, answered := f.follower.Model()
	switch {
	case f.synced:
		f.log.Info("time master now: continuing the followed clock", "offset", time.Duration(f.model.Offset), "drift_ppm", f.model.Drift*1e6)
	case f.base != nil:
		// Nobody answered us, but a master published where the shared
		// clock stands against its wall clock: ours reads about the same.
		shared := wall + f.base.SharedNs - f.base.WallNs
		f.model = clocksync.Model{RefLocal: int64(local), Offset: shared - int64(local)}
		f.log.Info("time master now: continuing the shared clock from the published base", "ahead_of_wall", time.Duration(f.base.SharedNs-f.base.WallNs))
	case answered:
		// Answers came, but never good enough to use: whoever keeps
		// speakers' clocks will see them jump.
		f.log.Warn("time master now without a usable estimate of the last master's clock: the shared clock may jump")
	default:
		f.log.Info("time master now: no master answered before, the local clock becomes the shared clock")
	}
}

// noteBase takes a clock base seen on protocol.ClockBaseTopic. It says
// whether we are the master and it is not ours: a stale one, or one a
// client wrote, which we replace with ours.
func (f *timeFollower) noteBase(payload []byte) (foreign bool, err error) {
	if len(payload) == 0 {
		return false, nil
	}
	base, err := protocol.Decode[protocol.ClockBase](payload)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		if f.base != nil && *f.base == base {
			return false, nil
		}
		f.watch = clocksync.WallWatch{Tolerance: baseTolerance} // so that ours goes out again
		return true, nil
	}
	f.base = &base
	return false, nil
}

// newBase returns the base to publish while we are the master, from
// readings of the wall and the steady clock taken together, and how far
// the wall clock moved against the shared clock since the last one; false
// when the last one still holds.
func (f *timeFollower) newBase(wall int64, local clocksync.LocalNs) (protocol.ClockBase, time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen {
		return protocol.ClockBase{}, 0, false
	}
	shared := int64(f.model.SharedAt(local))
	step, changed := f.watch.Moved(shared, wall)
	if !changed {
		return protocol.ClockBase{}, 0, false
	}
	base := protocol.ClockBase{V: protocol.Version, SharedNs: shared, WallNs: wall}
	f.base = &base
	return base, step, true
}

// follow starts following the master again after we stepped down; the
// frozen model stays in use until the new master's answers are good.
func (f *timeFollower) follow(now clocksync.LocalNs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen {
		return
	}
	f.frozen, f.synced = false, false
	f.follower.Reset(now) // the answers were of another master
	f.log.Info("following the new time master's clock; the frozen one stays in use until its answers are good")
}

// connected asks for fast probes: the estimate after a reconnect is built
// from scratch on the speakers' side too.
func (f *timeFollower) connected(now clocksync.LocalNs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.follower.Reconnected(now)
}

// interval is the time until the next probe.
func (f *timeFollower) interval(now clocksync.LocalNs) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.follower.Next(now)
}

// probeLoop sends our clock probes to the time master while we follow it.
func (c *Controller) probeLoop(ctx context.Context) {
	timer := c.local.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		}
		if c.client.IsConnectionOpen() {
			if req, ok := c.sharedClock.probe(c.localNow()); ok {
				c.client.Publish(protocol.ClockRequestTopic(c.sharedClock.id), 0, false, protocol.Encode(req))
			}
			c.publishClockBase()
		}
		timer.Reset(c.sharedClock.interval(c.localNow()))
	}
}

// publishClockBase publishes the shared clock's base, retained, while we
// are the time master and the last one no longer holds.
func (c *Controller) publishClockBase() {
	local, wall, ok := clocksync.ReadTogether(c.steady.Now, func() int64 { return c.wall.Now().UnixNano() }, baseTolerance/2)
	if !ok {
		return // preempted while reading: the next probe tick compares
	}
	base, step, ok := c.sharedClock.newBase(wall, clocksync.LocalNs(local))
	if !ok {
		return
	}
	if step <= -wallStepWarn || step >= wallStepWarn {
		c.log.Warn("the wall clock stepped; the shared clock runs on unmoved", "step", step)
	}
	c.publish(protocol.ClockBaseTopic, true, protocol.Encode(base))
}

// onClockBase takes the clock base retained by the time master.
func (c *Controller) onClockBase(_ mqtt.Client, msg mqtt.Message) {
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	foreign, err := c.sharedClock.noteBase(msg.Payload())
	switch {
	case err != nil:
		c.log.Warn("clock base ignored", "err", err)
	case foreign:
		c.log.Warn("a clock base we did not publish; publishing ours again")
	}
}

// onClockAnswer takes the time master's answer to our probe.
func (c *Controller) onClockAnswer(_ mqtt.Client, msg mqtt.Message) {
	t4 := c.localNow()
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	if err := c.sharedClock.answered(msg.Payload(), t4); err != nil {
		c.log.Debug("clock answer ignored", "err", err)
	}
}
