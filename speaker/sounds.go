package speaker

import (
	"errors"
	"math"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// Sounds the speaker makes itself, mixed over the music: the identify tone
// (to find which box a speaker is) and the announcement chime (all the
// session's speakers together, the music ducked under it). Both are made
// once, at the output's rate, when the engine is made.

// The announcement chime: a two-tone "ding-dong" (E5 then C5), each tone a
// bell-like decay.
const (
	chimeHighHz   = 659.25
	chimeLowHz    = 523.25
	chimeToneLen  = 500 * time.Millisecond
	chimeDecay    = 180 * time.Millisecond // time constant of each tone's decay
	chimeAttack   = 3 * time.Millisecond
	chimeRelease  = 15 * time.Millisecond // the tail of each tone fades to zero, or it clicks
	chimeLevel    = 0.5                   // peak, before the session's and own volume
	chimeOvertone = 0.3                   // level of the second harmonic, relative: a bell, not a sine
)

// chimeLen is the chime's length: both tones.
const chimeLen = 2 * chimeToneLen

// Ducking: while a chime sounds, the music plays at duckGain (-12 dB),
// ramped over duckRamp on both sides so that it does not click. The ramp
// down ends as the chime starts.
const (
	duckGain = 0.25
	duckRamp = 20 * time.Millisecond
)

// maxPendingChimes bounds the announcements an engine holds: each one is
// short, so more than a few at once is a flood.
const maxPendingChimes = 8

// The identify tone: three 1 kHz beeps, at a fixed moderate level (not
// the volume: a speaker turned down must still be found).
const (
	identifyHz    = 1000
	identifyBeep  = 120 * time.Millisecond
	identifyGap   = 120 * time.Millisecond
	identifyBeeps = 3
	identifyRamp  = 5 * time.Millisecond
	identifyLevel = 0.3
)

// makeChime renders the chime at rate, mono.
func makeChime(rate int) []float64 {
	toneFrames := int(nsToFramesRound(int64(chimeToneLen), rate))
	out := make([]float64, 2*toneFrames)
	for k, hz := range []float64{chimeHighHz, chimeLowHz} {
		tone := out[k*toneFrames : (k+1)*toneFrames]
		for i := range tone {
			t := float64(i) / float64(rate)
			env := math.Exp(-t/chimeDecay.Seconds()) *
				min(1, t/chimeAttack.Seconds()) *
				min(1, float64(toneFrames-1-i)/float64(rate)/chimeRelease.Seconds())
			wave := (math.Sin(2*math.Pi*hz*t) + chimeOvertone*math.Sin(4*math.Pi*hz*t)) / (1 + chimeOvertone)
			tone[i] = chimeLevel * env * wave
		}
	}
	return out
}

// makeIdentifyTone renders the identify tone at rate, mono.
func makeIdentifyTone(rate int) []float64 {
	beep := int(nsToFramesRound(int64(identifyBeep), rate))
	gap := int(nsToFramesRound(int64(identifyGap), rate))
	ramp := float64(nsToFramesRound(int64(identifyRamp), rate))
	out := make([]float64, identifyBeeps*beep+(identifyBeeps-1)*gap)
	for b := range identifyBeeps {
		start := b * (beep + gap)
		for i := range beep {
			env := min(1, float64(i)/ramp, float64(beep-1-i)/ramp)
			out[start+i] = identifyLevel * env * math.Sin(2*math.Pi*identifyHz*float64(i)/float64(rate))
		}
	}
	return out
}

// identify has the identify tone play from the next block Fill renders, on
// top of whatever plays (a second request restarts it). It needs no clock:
// it is one speaker's own sound.
func (e *engine) identify() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.identifyLeft = e.identifyTone
}

// mixIdentify mixes the rest of the identify tone into buf.
func (e *engine) mixIdentify(buf [][2]float64) {
	n := min(len(buf), len(e.identifyLeft))
	for i, x := range e.identifyLeft[:n] {
		buf[i][0] += x
		buf[i][1] += x
	}
	e.identifyLeft = e.identifyLeft[n:]
}

var errTooManyChimes = errors.New("too many announcements pending")

// announce schedules the chime to start at shared instant atNs.
func (e *engine) announce(atNs int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.chimes) >= maxPendingChimes {
		return errTooManyChimes
	}
	e.chimes = append(e.chimes, atNs)
	return nil
}

// duck lowers the music in buf, whose frame 0 is heard at shared instant
// base, under the chimes; the gain is a function of the shared instant
// only, so every speaker ducks alike.
func (e *engine) duck(buf [][2]float64, base int64) {
	endNs := base + framesToNsRound(int64(len(buf)), e.rate)
	ramp := int64(duckRamp)
	touched := false
	for _, at := range e.chimes {
		touched = touched || at-ramp < endNs && base < at+int64(chimeLen)+ramp
	}
	if !touched {
		return
	}
	for i := range buf {
		g := e.duckGainAt(base + framesToNsRound(int64(i), e.rate))
		buf[i][0] *= g
		buf[i][1] *= g
	}
}

// duckGainAt is the music's gain at shared instant s: duckGain while a
// chime sounds, ramping linearly over duckRamp before and after.
func (e *engine) duckGainAt(s int64) float64 {
	gain := 1.0
	ramp := float64(duckRamp)
	for _, at := range e.chimes {
		end := at + int64(chimeLen)
		depth := 1.0 // how far ducked, 0-1
		switch {
		case s < at:
			depth = 1 - float64(at-s)/ramp
		case s > end:
			depth = 1 - float64(s-end)/ramp
		}
		if depth > 0 {
			gain = min(gain, 1-(1-duckGain)*depth)
		}
	}
	return gain
}

// mixChimes mixes the scheduled chimes into buf, whose frame 0 is heard at
// shared instant base, at the session's volume (the own volume follows, on
// the whole block), and forgets those that have ended, ducking included. Chime frame j is
// heard at at + j/rate: every speaker plays it at the same shared instants,
// whatever its blocks, and one that starts late plays the rest in sync.
func (e *engine) mixChimes(buf [][2]float64, base int64) {
	if len(e.chimes) == 0 {
		return
	}
	gain := volumeGain(e.sessionVolume(base))
	endNs := base + framesToNsRound(int64(len(buf)), e.rate)
	keep := e.chimes[:0]
	for _, at := range e.chimes {
		first, j := 0, int64(0) // first frame of buf that sounds, and its chime frame
		if base < at {
			first = firstFrameAtOrAfter(base, at, e.rate, len(buf))
		} else {
			j = protocol.NsToFrames(base-at, e.rate)
		}
		for i := first; i < len(buf) && j < int64(len(e.chime)); i, j = i+1, j+1 {
			x := e.chime[j] * gain
			buf[i][0] += x
			buf[i][1] += x
		}
		if endNs < at+int64(chimeLen+duckRamp) { // until the music is back up
			keep = append(keep, at)
		}
	}
	e.chimes = keep
}

// sessionVolume is the session's volume at shared instant s: that of the
// anchor in effect (or the first one to come); full volume when the
// speaker knows no state of its session.
func (e *engine) sessionVolume(s int64) int {
	anchors := e.sess.timeline.anchors
	if len(anchors) == 0 {
		return 100
	}
	return anchors[max(0, e.sess.timeline.at(s))].volume
}
