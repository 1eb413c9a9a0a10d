// Package loudness measures how loud audio sounds, as EBU R128 and ITU-R
// BS.1770-4 define it: integrated loudness in LUFS (K-weighted mean square
// over 400 ms blocks overlapping by 75 %, gated at -70 LUFS and 10 LU below
// the mean) and the sample peak. A Meter takes the audio as it is decoded
// and holds a fixed amount of memory whatever the length.
package loudness

import (
	"fmt"
	"math"
)

// Gates of BS.1770-4.
const (
	absoluteGate = -70.0 // LUFS: blocks quieter than this are silence
	relativeGate = -10.0 // LU below the mean of the blocks the absolute gate passes
)

// Blocks are blockSteps steps long; a step is a tenth of a second, so that
// blocks of 400 ms start every 100 ms (75 % overlap). At a rate that is no
// multiple of 10 (11025 Hz) a step is rate/10 frames, rounded down, as in
// ffmpeg's meter.
const (
	blockSteps     = 4
	stepsPerSecond = 10
)

// The histogram of block loudness, which replaces a list of every block (a
// 6-hour file has 216,000): bins of 1/binsPerLU LU from the absolute gate
// up to histogramTop. Each bin keeps the exact sum of its blocks' energies,
// so only the gating of blocks within one bin of the relative threshold is
// approximate (by at most 0.01 LU).
const (
	binsPerLU    = 100
	histogramTop = 10.0 // LUFS: above full-scale noise K-weighted (~+6); louder blocks fall in the top bin
	histogramLen = int((histogramTop-absoluteGate)*binsPerLU) + 1
)

// blockOffset is BS.1770's -0.691 dB, which takes the K-weighting's gain
// at 1 kHz back out: a block of energy 1 (the weighted sum over channels of
// their mean squares; left, right and a mono channel weigh 1) is -0.691 LUFS.
const blockOffset = -0.691

// Result is what a Meter measured.
type Result struct {
	// Integrated is the integrated loudness in LUFS; -Inf when no block
	// passes the gates (silence, or less than 400 ms of audio).
	Integrated float64
	// Peak is the largest absolute sample value, 1 = full scale.
	Peak float64
}

// Meter measures the loudness of the audio written to it.
type Meter struct {
	channels int
	filters  [2]kWeighting
	step     int                 // frames per step (a tenth of a second)
	inStep   int                 // frames of the current step so far
	stepSum  float64             // weighted sum of squares of the current step
	steps    [blockSteps]float64 // the last steps' sums, a ring
	stepsIn  int                 // steps completed so far
	peak     float64
	count    [histogramLen]int64
	energy   [histogramLen]float64
}

// New returns a Meter for audio at sampleRate frames per second with
// channels channels (1 or 2): with 1, only the left channel of what is
// written is measured.
func New(sampleRate, channels int) (*Meter, error) {
	if sampleRate < stepsPerSecond {
		return nil, fmt.Errorf("loudness: sample rate %d Hz too low", sampleRate)
	}
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("loudness: %d channels: only mono and stereo are measured", channels)
	}
	m := &Meter{channels: channels, step: sampleRate / stepsPerSecond}
	for c := range m.filters {
		m.filters[c] = newKWeighting(float64(sampleRate))
	}
	return m, nil
}

// Write measures frames, which follow those written before.
func (m *Meter) Write(frames [][2]float64) {
	for len(frames) > 0 {
		n := min(len(frames), m.step-m.inStep)
		if m.channels == 1 {
			m.stepSum += m.filters[0].runMono(frames[:n], &m.peak)
		} else {
			m.stepSum += runStereo(&m.filters, frames[:n], &m.peak)
		}
		m.inStep += n
		frames = frames[n:]
		if m.inStep == m.step {
			m.endStep()
		}
	}
}

// endStep closes a step and, once there are enough, the block ending with it.
func (m *Meter) endStep() {
	m.steps[m.stepsIn%blockSteps] = m.stepSum
	m.stepsIn++
	m.stepSum, m.inStep = 0, 0
	if m.stepsIn < blockSteps {
		return
	}
	var sum float64
	for _, s := range m.steps {
		sum += s
	}
	z := sum / float64(blockSteps*m.step)
	l := blockOffset + 10*math.Log10(z)
	if !(l > absoluteGate) { // silence (-Inf) and NaN too
		return
	}
	bin := min(int((l-absoluteGate)*binsPerLU), histogramLen-1)
	m.count[bin]++
	m.energy[bin] += z
}

// Result is the loudness of everything written so far. A last step shorter
// than 100 ms is left out, as a block must be whole.
func (m *Meter) Result() Result {
	r := Result{Integrated: math.Inf(-1), Peak: m.peak}
	var n int64
	var sum float64
	for i := range m.count {
		n += m.count[i]
		sum += m.energy[i]
	}
	if n == 0 {
		return r
	}
	threshold := blockOffset + 10*math.Log10(sum/float64(n)) + relativeGate
	// Blocks in the bin holding the threshold are gated by the bin's
	// middle: the bin is 0.01 LU wide.
	first := max(0, int(math.Round((threshold-absoluteGate)*binsPerLU)))
	n, sum = 0, 0
	for i := first; i < histogramLen; i++ {
		n += m.count[i]
		sum += m.energy[i]
	}
	if n == 0 {
		return r
	}
	r.Integrated = blockOffset + 10*math.Log10(sum/float64(n))
	return r
}
