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

// runMono filters the left channel of frames and returns the sum of the
// squares of what comes out, raising *peak to the largest absolute sample.
// The filters' state lives in locals for the run: this loop is where a
// song's analysis spends its time.
func (w *kWeighting) runMono(frames [][2]float64, peak *float64) float64 {
	s, h := w.shelf, w.highPass
	p := *peak
	var sum float64
	for _, f := range frames {
		x := f[0]
		if a := math.Abs(x); a > p {
			p = a
		}
		y := s.b0*x + s.z1
		s.z1 = s.b1*x - s.a1*y + s.z2
		s.z2 = s.b2*x - s.a2*y
		k := h.b0*y + h.z1
		h.z1 = h.b1*y - h.a1*k + h.z2
		h.z2 = h.b2*y - h.a2*k
		sum += k * k
	}
	w.shelf, w.highPass, *peak = s, h, p
	return sum
}

// runStereo is runMono for both channels of frames, through w[0] and
// w[1]. The channels go through the same loop: each filter waits on its
// own last output, and two independent chains keep the CPU twice as busy.
func runStereo(w *[2]kWeighting, frames [][2]float64, peak *float64) float64 {
	sl, hl, sr, hr := w[0].shelf, w[0].highPass, w[1].shelf, w[1].highPass
	p := *peak
	var sumL, sumR float64
	for _, f := range frames {
		xl, xr := f[0], f[1]
		if a := math.Abs(xl); a > p { // not max: its NaN handling costs a third of the loop
			p = a
		}
		if a := math.Abs(xr); a > p {
			p = a
		}
		yl := sl.b0*xl + sl.z1
		yr := sr.b0*xr + sr.z1
		sl.z1 = sl.b1*xl - sl.a1*yl + sl.z2
		sr.z1 = sr.b1*xr - sr.a1*yr + sr.z2
		sl.z2 = sl.b2*xl - sl.a2*yl
		sr.z2 = sr.b2*xr - sr.a2*yr
		kl := hl.b0*yl + hl.z1
		kr := hr.b0*yr + hr.z1
		hl.z1 = hl.b1*yl - hl.a1*kl + hl.z2
		hr.z1 = hr.b1*yr - hr.a1*kr + hr.z2
		hl.z2 = hl.b2*yl - hl.a2*kl
		hr.z2 = hr.b2*yr - hr.a2*kr
		sumL += kl * kl
		sumR += kr * kr
	}
	w[0].shelf, w[0].highPass, w[1].shelf, w[1].highPass, *peak = sl, hl, sr, hr, p
	return sumL + sumR
}

// biquad is a second-order IIR filter (a0 = 1) in transposed direct form
// II: y = b0*x + z1, then z1 = b1*x - a1*y + z2 and z2 = b2*x - a2*y.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	z1, z2             float64
}
