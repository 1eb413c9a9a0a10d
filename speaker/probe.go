package speaker

import (
	"context"
	"fmt"
	"slices"
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
	// better (a network whose best round trip is over 4 ms). See clockGate.
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
	// After the burst, probes come faster for a while: the clock model
	// needs some seconds of samples before it trusts a drift.
	probeFastInterval = 100 * time.Millisecond
	probeFastFor      = 10 * time.Second
	// clockJumpLog is how far the clock estimate must move at once to be
	// logged (at debug level).
	clockJumpLog = 500 * time.Microsecond
)

func (s *Speaker) onClockResponse(b []byte) error {
	t4 := s.clock.Now().UnixNano()
	resp, err := protocol.Decode[protocol.ClockResponse](b)
	if err != nil {
		return err
	}
	if last := s.probeID.Load(); resp.ID == 0 || resp.ID > last || last-resp.ID > 100 {
		return fmt.Errorf("clock response to unknown probe %d", resp.ID)
	}
	sample, err := clocksync.NewSample(resp.T1, resp.T2, resp.T3, t4)
	if err != nil {
		return err
	}
	s.eng.heard(t4)
	s.mu.Lock()
	s.estimator.Add(sample)
	s.rtts.add(sample.RTT)
	model, errBound, _ := s.estimator.Model()
	n := s.estimator.Len()
	moved := time.Duration(model.At(t4) - s.lastModel.At(t4))
	s.lastModel = model
	// Under mu: the engine gets the estimates in order (handlers run
	// concurrently).
	playing := s.eng.setClock(clockEstimate{model: model, bound: errBound, samples: n, at: t4})
	s.mu.Unlock()
	if moved.Abs() > clockJumpLog && n > 1 {
		s.log.Debug("clock estimate moved", "by", moved, "samples", n, "rtt", sample.RTT, "err_bound", errBound, "playing", playing)
	}
	return nil
}

// probeLoop sends clock probes: a burst after each connect, then a steady pace.
func (s *Speaker) probeLoop(ctx context.Context, client mqtt.Client) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.probeWake:
			timer.Stop()
		}
		if client.IsConnectionOpen() {
			req := protocol.ClockRequest{V: protocol.Version, ID: s.probeID.Add(1), T1: s.clock.Now().UnixNano()}
			client.Publish(protocol.ClockRequestTopic(s.name), 0, false, protocol.Encode(req))
		}
		next := probeInterval
		switch {
		case s.burstLeft.Add(-1) >= 0:
			next = probeBurstInterval
		case time.Now().UnixNano() < s.fastUntil.Load():
			next = probeFastInterval
		}
		timer.Reset(next)
	}
}

// sharedNow is the shared clock now, once the clock is synchronised.
func (s *Speaker) sharedNow() (int64, bool) {
	s.mu.Lock()
	model, _, synced := s.estimator.Model()
	s.mu.Unlock()
	return model.Shared(s.clock.Now().UnixNano()), synced
}

// rttWindow keeps the round trips of the recent clock probes: their minimum
// and 99th percentile go into the status, and the controller sizes the lead
// time of commands by the latter.
type rttWindow struct {
	rtts []time.Duration
	next int
}

const rttWindowSize = 128

func (w *rttWindow) add(rtt time.Duration) {
	if len(w.rtts) < rttWindowSize {
		w.rtts = append(w.rtts, rtt)
		return
	}
	w.rtts[w.next] = rtt
	w.next = (w.next + 1) % rttWindowSize
}

func (w *rttWindow) stats() (lowest, p99 time.Duration) {
	if len(w.rtts) == 0 {
		return 0, 0
	}
	sorted := slices.Clone(w.rtts)
	slices.Sort(sorted)
	return sorted[0], sorted[(len(sorted)*99+99)/100-1]
}
