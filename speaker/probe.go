package speaker

import (
	"context"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// This file syncs the speaker's clock: probes to the time master and
// their answers.

// Pacing of the clock probes and what the speaker asks of its clock.
const (
	probeBurst = 10 // clock probes right after connecting
	// syncSamples is how many probe answers the speaker waits for before it
	// plays: the very first ones, sent while the connection warms up, tend
	// to have long round trips and so off estimates.
	syncSamples = 4
	// syncErrorBound is the clock error the speaker wants before it plays
	// (and after it muted for clockUncertain); it settles for up to
	// clockUncertain only after syncPatience of probing brought nothing
	// better (a network whose best round trip is over 4 ms).
	syncErrorBound = 2 * time.Millisecond
	syncPatience   = 1500 * time.Millisecond
	// clockUncertain is the error bound beyond which a playing speaker
	// mutes, and which it never plays with. A working network keeps the
	// bound under syncErrorBound, so only a fault crosses it, and the gap
	// keeps a bound near either from flapping; two speakers each within
	// 5 ms of the shared clock are within 10 ms of each other, about where
	// the delay between two rooms starts to sound like an echo.
	clockUncertain     = 5 * time.Millisecond
	probeBurstInterval = 20 * time.Millisecond
	// probeInterval keeps probing brisk: on a jittery network few probes
	// come near the minimum round trip, and the clock fit needs many (Wi-Fi
	// skew p99 0.7-1.2 ms at 500 ms, 0.35-0.55 ms at 200 ms).
	probeInterval = 200 * time.Millisecond
	// While the round trips spread by probeJittery or more (until they
	// spread by less than half), probes come probeJitterSpeedup times as
	// often: every 12.5 ms in the fast phase, 25 ms after it. Through
	// Wi-Fi jitter the clock error falls with the answers fitted: through
	// one-way delays recorded in the sync benchmark's Wi-Fi, the 3-speaker
	// skew p99 from the clock estimates alone over 35-95 s was 116 µs
	// probing 8 times as often, 149 µs at 4 times (clocksync's
	// TestFollowerRecordedWiFi).
	// A wired link or loopback spreads by well under a millisecond and
	// keeps the steady pace, so many speakers on it cost the broker no
	// more; nor does a congested link, whose median round trip reaches
	// probeCongested (a jittery Wi-Fi's stays at 5-10 ms).
	probeJitterSpeedup = 8
	probeJittery       = 2 * time.Millisecond
	probeCongested     = 50 * time.Millisecond
	// After the burst, probes come faster for a while: the clock model
	// needs some seconds of samples before it trusts a drift.
	probeFastInterval = 100 * time.Millisecond
	probeFastFor      = 10 * time.Second
	// probeStale is how many probes back an answer may refer to: a few
	// seconds of probes at the burst rate.
	probeStale = 100
	// clockJumpLog is how far the clock estimate must move at once to be
	// logged (at debug level).
	clockJumpLog = 500 * time.Microsecond
)

// followConfig is how a speaker follows the time master's clock.
var followConfig = clocksync.FollowerConfig{
	Burst: probeBurst, BurstInterval: probeBurstInterval, FastInterval: probeFastInterval,
	FastFor: probeFastFor, Interval: probeInterval,
	JitterSpeedup: probeJitterSpeedup, Jittery: probeJittery, Congested: probeCongested,
	Samples: syncSamples, ErrorBound: syncErrorBound, Patience: syncPatience, Uncertain: clockUncertain,
	StaleProbes: probeStale,
}

// localNow is the local clock now.
func (s *Speaker) localNow() clocksync.LocalNs { return clocksync.LocalNs(s.clock.Now().UnixNano()) }

func (s *Speaker) onClockResponse(b []byte) error {
	t4 := s.localNow()
	resp, err := protocol.Decode[protocol.ClockResponse](b)
	if err != nil {
		return err
	}
	// Under mu: the follower and then the engine get the answers in order
	// (handlers run concurrently). Lock order: mu, then the engine's.
	s.mu.Lock()
	est, err := s.follower.Answer(resp.ID, clocksync.LocalNs(resp.T1), clocksync.SharedNs(resp.T2), clocksync.SharedNs(resp.T3), t4)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.eng.heard(t4)
	moved := time.Duration(est.Model.At(int64(t4)) - s.lastModel.At(int64(t4)))
	s.lastModel = est.Model
	paceChanged := est.Jittery != s.jittery
	s.jittery = est.Jittery
	rttMin, rttP99 := s.follower.RoundTrips()
	playing := s.eng.setClock(est)
	s.mu.Unlock()
	if paceChanged {
		s.log.Info("clock probe pace changed", "jittery", est.Jittery, "rtt_min", rttMin, "rtt_p99", rttP99)
	}
	if moved.Abs() > clockJumpLog && est.Samples > 1 {
		s.log.Debug("clock estimate moved", "by", moved, "samples", est.Samples, "rtt", est.RTT, "err_bound", est.Bound, "playing", playing)
	}
	return nil
}

// probeLoop sends clock probes at the follower's pace: a burst after each
// connect, then faster for a while, then steadily.
func (s *Speaker) probeLoop(ctx context.Context, client mqtt.Client) {
	timer := s.clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-s.probeWake:
			timer.Stop()
		}
		connected := client.IsConnectionOpen()
		s.mu.Lock()
		var id uint64
		if connected {
			id = s.follower.Probe()
		}
		now := s.localNow()
		next := s.follower.Next(now)
		s.mu.Unlock()
		if connected {
			req := protocol.ClockRequest{V: protocol.Version, ID: id, T1: int64(now)}
			client.Publish(protocol.ClockRequestTopic(s.name), 0, false, protocol.Encode(req))
		}
		timer.Reset(next)
	}
}

// sharedNow is the shared clock now, once the clock is synchronised.
func (s *Speaker) sharedNow() (int64, bool) {
	s.mu.Lock()
	model, _, synced := s.follower.Model()
	s.mu.Unlock()
	return int64(model.SharedAt(s.localNow())), synced
}
