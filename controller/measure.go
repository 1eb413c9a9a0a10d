package controller

import (
	"math"

	"github.com/gopxl/beep/v2"

	"github.com/tutti-audio/tutti/loudness"
	"github.com/tutti-audio/tutti/protocol"
)

// replayGainReference is the loudness ReplayGain 2.0 brings every song to:
// a song's track gain is this minus its integrated loudness.
const replayGainReference = -18 // LUFS

// songMeter measures the loudness of a song while analyze decodes it, for
// a song whose tags give no ReplayGain. A nil songMeter measures nothing.
type songMeter struct {
	meter *loudness.Meter // nil until start
	pace  func()          // if not nil, called before each chunk is measured: the background measuring yields there
}

// start prepares to measure audio of format fm, which checkFormat passed:
// mono or stereo at a rate the meter takes (were it not so, the song would
// stay unmeasured, as a silent one does).
func (s *songMeter) start(fm beep.Format) {
	if s != nil {
		s.meter, _ = loudness.New(int(fm.SampleRate), fm.NumChannels)
	}
}

// write measures the next decoded frames.
func (s *songMeter) write(frames [][2]float64) {
	if s == nil || s.meter == nil {
		return
	}
	if s.pace != nil {
		s.pace()
	}
	s.meter.Write(frames)
}

// replayGain is the song's measured track gain and peak; nil when the song
// is too short (under 400 ms) or too quiet to have a loudness. An album's
// gain needs all its songs, which come one at a time: an upload plays at
// its track gain in album mode; a music folder's song gets its album's
// gain once every song of the album is measured (albumgain.go).
func (s *songMeter) replayGain() *protocol.ReplayGain {
	if s == nil || s.meter == nil {
		return nil
	}
	r := s.meter.Result()
	if math.IsInf(r.Integrated, -1) {
		return nil
	}
	return &protocol.ReplayGain{Track: gainOf(r.Integrated, r.Peak), Measured: true}
}

// histogram is the song's gating blocks, from which its album's loudness
// is computed; empty when nothing was measured.
func (s *songMeter) histogram() loudness.Histogram {
	if s == nil || s.meter == nil {
		return loudness.Histogram{}
	}
	return s.meter.Histogram()
}

// gainOf is the ReplayGain that brings audio of integrated loudness lufs
// to the reference, within the bounds a record holds, with its peak.
func gainOf(lufs, peak float64) protocol.Gain {
	db := min(max(replayGainReference-lufs, -protocol.MaxGainDb), protocol.MaxGainDb)
	return protocol.Gain{Db: roundTo(db, 100), Peak: roundTo(min(peak, maxPeak), 1e6)}
}

// maxPeak is the largest peak a song record holds (protocol's bound):
// decoders of lossy formats overshoot full scale a little, never 16 times.
const maxPeak = 16

// roundTo rounds v to 1/perUnit (100: hundredths), so that records and
// playlists carry short numbers, not float noise.
func roundTo(v, perUnit float64) float64 {
	return math.Round(v*perUnit) / perUnit
}
