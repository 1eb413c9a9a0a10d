package speaker

import "math"

// The limiter's curve. Below limiterKnee (-0.9 dBFS) gained samples pass
// untouched: a gain that keeps the peaks there changes nothing else. Above
// it the room up to limiterCeiling (full scale) is shared out, and no
// sample reaches the ceiling.
const (
	limiterKnee    = 0.9
	limiterCeiling = 1.0
)

// applyEntryGain scales one entry's frames by its ReplayGain (Entry.GainDb,
// which the controller chose for every speaker alike). A positive gain
// goes through the limiter. Both are functions of each sample alone, not
// of what came before: every speaker computes the same output whatever its
// block boundaries or where it joined, and the gain changes exactly at the
// entry's first frame. A gain of 0 dB costs nothing and changes no bit.
func applyEntryGain(buf [][2]float64, gainDb float64) {
	if gainDb == 0 {
		return
	}
	g := math.Pow(10, gainDb/20)
	if g <= 1 {
		applyGain(buf, g)
		return
	}
	for i := range buf {
		buf[i][0] = limit(buf[i][0] * g)
		buf[i][1] = limit(buf[i][1] * g)
	}
}

// limit is a soft-knee limiter without memory: samples within limiterKnee
// of silence pass as they are; louder ones approach limiterCeiling along
// u/(1+u), which leaves the knee at slope 1 (no kink). It takes a division,
// not a transcendental function: cheap, and rounded alike by every CPU (the
// conversion keeps a compiler from fusing the multiply and add, which
// arm64 does and amd64 does not).
func limit(x float64) float64 {
	a := math.Abs(x)
	if a <= limiterKnee {
		return x
	}
	const room = limiterCeiling - limiterKnee
	u := (a - limiterKnee) / room
	return math.Copysign(limiterKnee+float64(room*(u/(1+u))), x)
}
