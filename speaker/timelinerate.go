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
	// of 10 µs makes 7 ppm of error (a least-squares slope), a pitch
	// change of 0.01 cents.
	rateWindow = 64
	// rateMinSamples is how many corrections the first measure waits for.
	rateMinSamples = rateWindow / 4
	// maxSpeed bounds the rate (frames per frame off one): ten times what
	// a crystal may be off. A measure beyond it starts afresh.
	maxSpeed = 1e-3
	// stepFrames is how far (frames) from where the rate measured puts it
	// the timeline may move in one block before the move counts as a step
	// (a new clock estimate, a calibration), which slides take up and the
	// rate leaves out: a step measured as rate would be corrected twice.
	// 11 µs at 44.1 kHz, four times the jitter of a block's instant of
	// 2 µs, so that jitter is not taken for steps: a smaller step makes at
	// most 20 ppm of error for a window, which slides take up.
	stepFrames = 0.5
	// stepSlack is how far off (frames per frame) the rate measured may be
	// once measured, which a block's move may show beyond stepFrames;
	// before the first measure, maxSpeed.
	stepSlack = 50e-6
)

// rateTrack measures the timeline's rate against the output: the
// least-squares slope of where the timeline stood at each of the last
// rateWindow corrections, its steps left out, against how many output
// frames had been streamed.
type rateTrack struct {
	at    [rateWindow]rateSample
	n     int     // samples held
	next  int     // where the next goes: the oldest once all are held
	steps float64 // the steps so far, frames
}

type rateSample struct {
	out      int64   // output frames streamed
	timeline float64 // the timeline's position then less the steps before, in frames of the source
}

// speed takes where the timeline stands after out output frames and
// returns how many frames of the source more than one it moves per output
// frame, or was when it cannot tell yet.
func (r *rateTrack) speed(out int64, timeline float64, was float64) float64 {
	if r.n > 0 {
		last := r.at[(r.next+rateWindow-1)%rateWindow]
		frames := float64(out - last.out)
		slack := stepSlack
		if r.n < rateMinSamples {
			slack = maxSpeed
		}
		if step := timeline - r.steps - last.timeline - frames*(1+was); math.Abs(step) > stepFrames+slack*frames {
			r.steps += step
		}
	}
	r.at[r.next] = rateSample{out, timeline - r.steps}
	r.next = (r.next + 1) % rateWindow
	r.n = min(r.n+1, rateWindow)
	if r.n < rateMinSamples {
		return was
	}
	v, ok := r.slope()
	if !ok {
		return was
	}
	if math.Abs(v-1) > maxSpeed {
		*r = rateTrack{}
		return was
	}
	return v - 1
}

// slope is the least-squares slope of the samples held; ok is false if
// they were all taken after as many output frames.
func (r *rateTrack) slope() (float64, bool) {
	held := r.at[:r.n]
	newest := r.at[(r.next+rateWindow-1)%rateWindow] // differences from it keep float64's precision
	var mx, my float64
	for _, p := range held {
		mx += float64(p.out - newest.out)
		my += p.timeline - newest.timeline
	}
	mx, my = mx/float64(len(held)), my/float64(len(held))
	var sxy, sxx float64
	for _, p := range held {
		dx, dy := float64(p.out-newest.out)-mx, p.timeline-newest.timeline-my
		sxy += dx * dy
		sxx += dx * dx
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}
