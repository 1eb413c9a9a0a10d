package controller

import (
	"context"
	"fmt"
	"log/slog"
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
)

// timeFollower is a controller's view of the shared clock: a model that maps
// the local clock to the time master's. Safe for concurrent use.
type timeFollower struct {
	id  string // level of our clock topics: "controller-" + our random instance, so no speaker has it
	log *slog.Logger

	mu          sync.Mutex
	model       clocksync.Model // the zero model is the local clock itself
	synced      bool            // model comes from the master's answers
	frozen      bool            // we are the time master: model holds, no probes
	estimator   clocksync.Estimator
	firstAnswer int64     // local instant of the first answer since following began
	probeID     uint64    // of the last probe sent
	fastUntil   time.Time // monotonic: probes come faster until then
}

func newTimeFollower(instance string, log *slog.Logger, now time.Time) *timeFollower {
	return &timeFollower{id: "controller-" + instance, log: log, fastUntil: now.Add(followFastFor)}
}

// shared is the shared-clock instant of the local instant local (Unix ns).
func (f *timeFollower) shared(local int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.model.Shared(local)
}

// isSynced reports whether the model in use comes from the master's answers.
func (f *timeFollower) isSynced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

// probe returns the next probe to send, stamped with the local instant t1;
// false while we are the time master.
func (f *timeFollower) probe(t1 int64) (protocol.ClockRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return protocol.ClockRequest{}, false
	}
	f.probeID++
	return protocol.ClockRequest{V: protocol.Version, ID: f.probeID, T1: t1}, true
}

// answered takes the master's answer to one of our probes, received at the
// local instant t4.
func (f *timeFollower) answered(payload []byte, t4 int64) error {
	resp, err := protocol.Decode[protocol.ClockResponse](payload)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil // sent before we became the master; we follow nobody now
	}
	if resp.ID == 0 || resp.ID > f.probeID || f.probeID-resp.ID > followStaleProbes {
		return fmt.Errorf("clock answer to unknown probe %d", resp.ID)
	}
	sample, err := clocksync.NewSample(resp.T1, resp.T2, resp.T3, t4)
	if err != nil {
		return err
	}
	f.estimator.Add(sample)
	if f.firstAnswer == 0 {
		f.firstAnswer = t4
	}
	model, errBound, _ := f.estimator.Model()
	good := errBound <= followErrorBound
	if f.estimator.Len() < followSamples || !good && time.Duration(t4-f.firstAnswer) < followPatience {
		return nil
	}
	if !f.synced {
		log := f.log.Info
		if !good {
			log = f.log.Warn
		}
		log("following the time master's clock", "offset", time.Duration(model.At(t4)), "err_bound", errBound,
			"jump", time.Duration(model.Shared(t4)-f.model.Shared(t4)))
	}
	f.model, f.synced = model, true
	return nil
}

// freeze makes the model in use our clock for good: we are the time master
// now and continue the timeline the old one kept.
func (f *timeFollower) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return
	}
	f.frozen = true
	switch {
	case f.synced:
		f.log.Info("time master now: continuing the followed clock", "offset", time.Duration(f.model.Offset), "drift_ppm", f.model.Drift*1e6)
	case f.firstAnswer != 0:
		// Answers came, but never good enough to use: whoever keeps
		// speakers' clocks will see them jump.
		f.log.Warn("time master now without a usable estimate of the last master's clock: the shared clock may jump")
	default:
		f.log.Info("time master now: no master answered before, the local clock becomes the shared clock")
	}
}

// follow starts following the master again after we stepped down; the
// frozen model stays in use until the new master's answers are good.
func (f *timeFollower) follow(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen {
		return
	}
	f.frozen, f.synced, f.firstAnswer = false, false, 0
	f.estimator = clocksync.Estimator{} // the samples were of another master
	f.fastUntil = now.Add(followFastFor)
	f.log.Info("following the new time master's clock; the frozen one stays in use until its answers are good")
}

// connected asks for fast probes: the estimate after a reconnect is built
// from scratch on the speakers' side too.
func (f *timeFollower) connected(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fastUntil = now.Add(followFastFor)
}

// interval is the time until the next probe.
func (f *timeFollower) interval(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Before(f.fastUntil) {
		return followFastInterval
	}
	return followInterval
}

// probeLoop sends our clock probes to the time master while we follow it.
func (c *Controller) probeLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if c.client.IsConnectionOpen() {
			if req, ok := c.sharedClock.probe(c.steady.Now()); ok {
				c.client.Publish(protocol.ClockRequestTopic(c.sharedClock.id), 0, false, protocol.Encode(req))
			}
		}
		timer.Reset(c.sharedClock.interval(time.Now()))
	}
}

// onClockAnswer takes the time master's answer to our probe.
func (c *Controller) onClockAnswer(_ mqtt.Client, msg mqtt.Message) {
	t4 := c.steady.Now()
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	if err := c.sharedClock.answered(msg.Payload(), t4); err != nil {
		c.log.Debug("clock answer ignored", "err", err)
	}
}
