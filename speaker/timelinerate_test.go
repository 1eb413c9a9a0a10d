package speaker

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRateTrackLeavesStepsOut: the rate measured of a timeline drifting
// 100 ppm against the output, read at blocks with 2 µs of timing jitter, is
// the drift within 20 ppm (what is left, slides take up), whatever steps
// (new clock estimates, a calibration) the timeline makes: measured as
// rate, a step of 20 frames would make 700 ppm for the window. A timeline
// moving beyond maxSpeed is not followed.
func TestRateTrackLeavesStepsOut(t *testing.T) {
	const drift = 100e-6
	r := rand.New(rand.NewPCG(1, 2))
	var track rateTrack
	var speed, steps, worst float64
	for k := range 1000 {
		out := int64(k) * 441
		if k%50 == 25 {
			steps += []float64{0.9, -3, 20, -0.8}[k/50%4] // frames
		}
		jitter := r.NormFloat64() * 2e-6 * testRate
		speed = track.speed(out, float64(out)*(1+drift)+steps+jitter, speed)
		if k < rateWindow {
			continue
		}
		worst = max(worst, math.Abs(speed-drift))
		if math.Abs(speed-drift) > 20e-6 {
			t.Fatalf("block %d: speed %.1f ppm, the timeline drifts %.0f", k, speed*1e6, drift*1e6)
		}
	}
	t.Logf("speed within %.1f ppm of the drift", worst*1e6)

	var fast rateTrack
	speed = 0
	for k := range 200 {
		out := int64(k) * 441
		if speed = fast.speed(out, float64(out)*(1+3*maxSpeed), speed); speed != 0 {
			t.Fatalf("block %d: followed a timeline moving %.0f ppm: speed %.0f ppm", k, 3*maxSpeed*1e6, speed*1e6)
		}
	}
}
