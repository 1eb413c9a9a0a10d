package loudness

import "math"

// kWeighting is BS.1770's K-weighting filter for one channel: a high shelf
// (+4 dB above ~1.5 kHz, the head's effect) then a high pass (the RLB
// curve). The coefficients come from the analogue prototypes through the
// bilinear transform, so that any sample rate gets the filter the standard
// tabulates for 48 kHz; ffmpeg and libebur128 derive them the same way.
type kWeighting struct {
	shelf, highPass biquad
}

// The analogue prototypes' parameters, fitted to the standard's 48 kHz
// coefficients.
const (
	shelfFreq   = 1681.974450955533  // Hz
	shelfGainDb = 3.999843853973347  // dB
	shelfQ      = 0.7071752369554196 //
	shelfVb     = 0.4996667741545416 // exponent of the band gain
	passFreq    = 38.13547087602444  // Hz
	passQ       = 0.5003270373238773 //
)

func newKWeighting(rate float64) kWeighting {
	k := math.Tan(math.Pi * shelfFreq / rate)
	vh := math.Pow(10, shelfGainDb/20)
	vb := math.Pow(vh, shelfVb)
	a0 := 1 + k/shelfQ + k*k
	shelf := biquad{
		b0: (vh + vb*k/shelfQ + k*k) / a0,
		b1: 2 * (k*k - vh) / a0,
		b2: (vh - vb*k/shelfQ + k*k) / a0,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/shelfQ + k*k) / a0,
	}
	k = math.Tan(math.Pi * passFreq / rate)
	a0 = 1 + k/passQ + k*k
	highPass := biquad{
		b0: 1, b1: -2, b2: 1,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/passQ + k*k) / a0,
	}
	return kWeighting{shelf: shelf, highPass: highPass}
}

func (w *kWeighting) filter(x float64) float64 {
	return w.highPass.filter(w.shelf.filter(x))
}

// biquad is a second-order IIR filter (a0 = 1) in transposed direct form II.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	z1, z2             float64
}

func (q *biquad) filter(x float64) float64 {
	y := q.b0*x + q.z1
	q.z1 = q.b1*x - q.a1*y + q.z2
	q.z2 = q.b2*x - q.a2*y
	return y
}
