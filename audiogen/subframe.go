package audiogen

import (
	"math"
	"slices"
)

// A speaker that steers its speed plays between a song's frames, and a
// Timecode's left channel, one step per frame, rounds that away: the output
// tells the frame to ±half a frame (±11 µs at 44.1 kHz). A subframe
// timecode's left channel ramps subframeSteps steps per frame instead, so
// that the output's samples tell where between two frames it plays.
const (
	subframeSteps = 64
	subframeSpan  = 65536 / subframeSteps // frames per ramp of the left channel
	// SubframeTimecodeFrames is the longest subframe timecode song: the
	// right channel counts ramps up to 32767 (12.7 minutes at 44.1 kHz).
	SubframeTimecodeFrames = 32767 * subframeSpan
)

// SubframeTimecode is the sample of frame i (below SubframeTimecodeFrames)
// of a subframe timecode song: the left channel ramps from -32768 by
// subframeSteps per frame over subframeSpan frames, the right channel counts
// the ramps from 1, so no frame is silence.
func SubframeTimecode(i int64) Frame {
	return Frame{L: int16(i%subframeSpan*subframeSteps - 32768), R: int16(i/subframeSpan + 1)}
}

// subframeProbe is how many leading frames ReadSubframeTimecode looks at: a
// player interpolating over a few points garbles the samples next to the
// ramp's wrap, and the frames that agree outvote them.
const subframeProbe = 16

// subframeAgree is how far, in frames, the positions the probed frames tell
// may spread and still agree: far above the ramp's rounding (1/128 frame)
// and a steered speed's drift over the probe, far below a garbled sample.
const subframeAgree = 0.25

// ReadSubframeTimecode returns the song position, in frames with their
// fraction, at which frames[0] was played, from the first frames of a
// subframe timecode song played at about the song's speed. ok is false
// unless most of the probed frames agree (silence, a fade, another signal).
func ReadSubframeTimecode(frames []Frame) (pos float64, ok bool) {
	var buf [subframeProbe]float64
	at := buf[:0]
	for j, f := range frames[:min(len(frames), subframeProbe)] {
		if f.R <= 0 {
			continue
		}
		at = append(at, float64(int64(f.R)-1)*subframeSpan+float64(int(f.L)+32768)/subframeSteps-float64(j))
	}
	if len(at) == 0 {
		return 0, false
	}
	slices.Sort(at)
	median := at[len(at)/2]
	var sum float64
	agree := 0
	for _, p := range at {
		if math.Abs(p-median) <= subframeAgree {
			sum += p
			agree++
		}
	}
	if 2*agree <= min(len(frames), subframeProbe) {
		return 0, false
	}
	return sum / float64(agree), true
}
