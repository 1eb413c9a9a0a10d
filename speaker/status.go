package speaker

import (
	"context"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// This file publishes the speaker's status.

const (
	statusInterval = 2 * time.Second
	statusCheck    = 100 * time.Millisecond // how soon a state change is published
)

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

// statusLoop publishes the status on every change of state, song or error,
// and every statusInterval.
func (s *Speaker) statusLoop(ctx context.Context, client mqtt.Client) {
	ticker := s.clock.NewTicker(statusCheck)
	defer ticker.Stop()
	var last protocol.SpeakerStatus
	var lastAt time.Time
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-s.statusWake:
			forced = true
		}
		if !client.IsConnectionOpen() {
			continue
		}
		st := s.statusMessage()
		changed := st.State != last.State || st.Song != last.Song || st.Error != last.Error ||
			st.Session != last.Session || st.Volume != last.Volume || st.CalibrationNs != last.CalibrationNs ||
			st.CacheNoRoom != last.CacheNoRoom
		if !forced && !changed && clock.Since(s.clock, lastAt) < statusInterval {
			continue
		}
		tok := client.Publish(protocol.SpeakerStatusTopic(s.name), 1, true, protocol.Encode(st))
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			last, lastAt = st, s.clock.Now()
		}
	}
}
