package speaker

import "math"

// How fast the timeline moves against the output. A player placing to the
// fraction of a frame moves at that rate between slides, so that its
// slides take up only the clock estimate's steps: chasing a drift of 100 ppm
// by slides alone, each 50 ms long, lags a quarter of a frame behind it
// (TestPlacementError).
const (
	// rateWindow is how many corrections (blocks) the rate is measured
	// over: 0.64 s of 10 ms blocks, over which an output's timing jitter
	// of 10 µs makes 20 ppm of error, a pitch change of 0.03 cents.
	rateWindow = 64
	// rateMinSamples is how many corrections the first measure waits for.
	rateMinSamples = rateWindow / 4
	// maxSpeed bounds the rate (frames per frame off one): ten times what
	// a crystal may be off. A measure beyond it (the timeline jumped: a
	// pause, a calibration) starts the measure afresh.
	maxSpeed = 1e-3
)

// rateTrack measures the timeline's rate against the output: the slope of
// where the timeline stood at each of the last rateWindow corrections,
// against how many output frames had been streamed.
type rateTrack struct {
	at   [rateWindow]rateSample
	n    int // samples held
	next int // where the next goes: the oldest once all are held
}

type rateSample struct {
	out      int64   // output frames streamed
	timeline float64 // the timeline's position then, in frames of the source
}

// speed takes where the timeline stands after out output frames and
// returns how many frames of the source more than one it moves per output
// frame, or was when it cannot yet tell.
func (r *rateTrack) speed(out int64, timeline float64, was float64) float64 {
	oldest := r.at[0]
	if r.n == rateWindow {
		oldest = r.at[r.next]
	}
	r.at[r.next] = rateSample{out, timeline}
	r.next = (r.next + 1) % rateWindow
	r.n = min(r.n+1, rateWindow)
	if r.n < rateMinSamples || out == oldest.out {
		return was
	}
	v := (timeline-oldest.timeline)/float64(out-oldest.out) - 1
	if math.Abs(v) > maxSpeed {
		*r = rateTrack{}
		return was
	}
	return v
}
