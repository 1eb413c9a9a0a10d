package speaker

import (
	"context"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// This file publishes the speaker's status.

// statusInterval is how often the status is published when nothing in it
// changed: the controller and the apps read the position and clock figures
// from it. A change is published at once: whoever changes a field the
// status compares (the engine, the cache, an assignment, a command, a
// connect) signals statusWake, so the loop sleeps between changes instead
// of polling for them.
const statusInterval = 2 * time.Second

// statusMessage is the speaker's current status.
func (s *Speaker) statusMessage() protocol.SpeakerStatus {
	pb := s.eng.status()
	s.mu.Lock()
	model, errBound, synced := s.follower.Model()
	rttMin, rttP99 := s.follower.RoundTrips()
	peerURL, session, volume, calibration := s.peerURL, s.session, s.ownVolume, s.calibration
	s.mu.Unlock()
	st := protocol.SpeakerStatus{
		V: protocol.Version, ID: s.name, Online: true, Instance: s.instance, Session: session,
		State: pb.State, Song: pb.Song, PositionNs: pb.PositionNs, Volume: volume,
		// The controller schedules a lead time ahead of it: a block is
		// rendered this long before it is heard.
		LatencyNs: int64(max(0, s.output.Latency()+calibration)),
		Output:    s.output.Name(), Error: pb.Error, PeerURL: peerURL, CalibrationNs: int64(calibration),
		CacheNoRoom: s.cache.noRoomReason(),
	}
	if synced {
		st.ClockOffsetNs = model.At(s.clock.Now().UnixNano())
		st.ClockErrorNs = int64(errBound)
		st.ClockDriftPPM = -model.Drift * 1e6 // the model's drift is d(shared-local)/d(local)
		st.ClockRTTNs, st.RTTP99Ns = int64(rttMin), int64(rttP99)
	}
	return st
}

// statusLoop publishes the status when statusWake says something changed,
// and statusInterval after the last publish.
func (s *Speaker) statusLoop(ctx context.Context, client mqtt.Client) {
	timer := s.clock.NewTimer(statusInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-s.statusWake:
		}
		// Disconnected: the connect handler signals statusWake.
		if client.IsConnectionOpen() {
			tok := client.Publish(protocol.SpeakerStatusTopic(s.name), 1, true, protocol.Encode(s.statusMessage()))
			tok.WaitTimeout(5 * time.Second)
		}
		timer.Reset(statusInterval)
	}
}
