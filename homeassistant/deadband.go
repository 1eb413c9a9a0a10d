package homeassistant

import (
	"math"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// A speaker reports its clock offset and sync error with every status, every
// 2 s, and both wobble by microseconds each time. Home Assistant's recorder
// stores every change of a sensor's state, so the bridge shows a new value
// only when it moved by a deadband, and at most once per clockMinInterval.
const (
	// clockOffsetDeadbandMs: the offset drifts with the speaker's crystal
	// (20 ppm is 1 ms every 50 s); a change under 1 ms tells a user nothing.
	clockOffsetDeadbandMs = 1.0
	// syncErrorDeadbandMs: speakers stay in sync within about a ms; a change
	// of the error bound by half of that is worth seeing.
	syncErrorDeadbandMs = 0.5
	// clockMinInterval caps a speaker's two diagnostics at one recorded
	// change a minute each, however much the clock wanders.
	clockMinInterval = time.Minute
)

// reading is the value a diagnostic sensor shows: it follows the measured
// value when that moved by the deadband, no sooner than clockMinInterval
// after the last change. The first measurement shows at once.
type reading struct {
	value float64
	at    time.Time
	set   bool
}

func (r *reading) follow(now time.Time, measured, deadband float64) {
	if r.set && (math.Abs(measured-r.value) < deadband || now.Sub(r.at) < clockMinInterval) {
		return
	}
	*r = reading{value: measured, at: now, set: true}
}

// shown is the value to publish: nil (unknown in Home Assistant) until the
// first measurement.
func (r reading) shown() *float64 {
	if !r.set {
		return nil
	}
	return &r.value
}

// clockReadings are what the bridge shows of a speaker's clock.
type clockReadings struct{ offset, syncError reading }

// follow takes the measurements of a status; an offline speaker's status
// (its last will) measures nothing.
func (c *clockReadings) follow(now time.Time, s protocol.SpeakerStatus) {
	if !s.Online {
		return
	}
	c.offset.follow(now, ms(s.ClockOffsetNs), clockOffsetDeadbandMs)
	c.syncError.follow(now, ms(s.ClockErrorNs), syncErrorDeadbandMs)
}
