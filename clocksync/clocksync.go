// Package clocksync estimates how a speaker's local clock relates to the
// shared clock of the time master, from 4-timestamp probe exchanges: an
// offset (shared minus local) and a drift (the local oscillator's frequency
// error), so the estimate stays right between probes and as samples age.
//
// Method: weighted least squares over a window of recent samples, with a
// prior on the drift.
//
//   - Each sample says the true offset at its local midpoint lies within
//     RTT/2 of the sample's offset. Queueing only adds delay, so the sample
//     with the smallest round trip of the window (the floor) is the least
//     disturbed; a sample whose round trip exceeds the floor by e is trusted
//     as a measurement with standard error (e+σ0)/2. σ0 is the noise of the
//     floor itself: the excess of the 5th-percentile round trip, at least
//     Options.MinNoise. A request or response delayed by 130 ms therefore
//     weighs (σ0/130ms)² as much as a clean sample: spikes do not move the
//     estimate, whichever direction they hit.
//   - That model of the noise is a prior, not the last word: the samples
//     are grouped in bands of excess (a third of an octave each), and each
//     band is weighed by the variance of its residuals, drawn towards the
//     model's where a band holds few. Networks differ in how their
//     samples err; the residuals say how this one's do.
//   - The line offset(local) = a + b·(local − newest) is fitted to the
//     samples of the last Options.Window of local time (120 s by default,
//     at most Options.MaxSamples). Weights fade linearly to zero over the
//     oldest quarter of the window, so a sample leaving the window changes
//     nothing abruptly.
//   - The drift b has a Gaussian prior N(0, 100 ppm) (a ridge term). With
//     a few samples over a short span the data cannot tell drift from noise
//     and the estimate stays near 0 (offset only); as the span grows the
//     data takes over smoothly, with no threshold at which the model jumps.
//     On loopback the drift is within 1 ppm after a few seconds; with Wi-Fi
//     jitter within a few ppm after about 30 s.
//   - All absolute instants stay int64 Unix ns; floats only hold differences
//     (seconds since the newest sample, ns from a reference offset), so local
//     clocks minutes or years off lose no precision.
//   - A local clock that steps (or a master whose clock steps) makes samples
//     that no line through the window can explain: three such samples in a
//     row replace the window.
//
// The error bound is strict under two assumptions: network delays are not
// negative, and the drift lies within three standard errors of its estimate
// (plus 0.1 ppm). Each sample i bounds the error at the model's anchor by
// |residual_i| + RTT_i/2 + drift uncertainty × age_i; the bound is the
// smallest of these. It holds at Model.RefLocal and grows by the drift
// uncertainty (a few ppm at most once the window holds a minute) after it.
package clocksync

import (
	"errors"
	"math"
	"time"
)

// Defaults of Options. DefaultMaxSamples holds the whole window of probes
// every 25 ms (a speaker's pace through jitter): under Wi-Fi-like jitter the
// error falls with the number of samples fitted (with probes every 50 ms,
// p99 95 µs with 512 samples, about 45 µs with the whole window;
// TestEstimatorWiFiFastProbes), so a cap that cut the window short would
// waste the extra probes. What a sample costs, refits included, is in
// BenchmarkEstimatorAdd; at the steady pace (a probe every 200 ms) the
// window holds 600.
const (
	DefaultWindow     = 120 * time.Second
	DefaultMaxSamples = 4800
	DefaultMinNoise   = 5 * time.Microsecond
)

const (
	driftPrior    = 100e3 // standard deviation of the drift prior, ns/s (100 ppm)
	maxDrift      = 1e-3  // no working oscillator is 1000 ppm off; beyond is bad input
	driftBoundMin = 100.0 // ns/s (0.1 ppm) added to the drift uncertainty
	stepMargin    = float64(time.Millisecond)
	stepSamples   = 3 // inconsistent samples in a row that replace the window
)

// Sample is the result of one probe exchange.
type Sample struct {
	Local  int64         // local instant the sample describes: midpoint of send and receive (Unix ns)
	Offset time.Duration // shared minus local clock at Local
	RTT    time.Duration // network round trip, the master's processing time excluded
}

// NewSample computes a sample from the exchange's timestamps (Unix ns): t1
// local send, t2 master receive, t3 master send (shared clock), t4 local
// receive. Timestamps before 1970 or out of order are rejected: they cannot
// come from a working exchange, and rejecting them keeps the arithmetic
// free of overflow.
func NewSample(t1, t2, t3, t4 int64) (Sample, error) {
	if t1 < 0 || t2 < 0 || t3 < 0 || t4 < 0 {
		return Sample{}, errors.New("clocksync: timestamp before 1970")
	}
	rtt := (t4 - t1) - (t3 - t2)
	if rtt < 0 || t3 < t2 || t4 < t1 {
		return Sample{}, errors.New("clocksync: inconsistent timestamps (negative round trip)")
	}
	local := t1 + (t4-t1)/2
	return Sample{
		Local:  local,
		Offset: time.Duration(t2 + (t3-t2)/2 - local),
		RTT:    time.Duration(rtt),
	}, nil
}

// Model maps the local clock to the shared clock: a line through
// (RefLocal, Offset) with slope Drift.
type Model struct {
	RefLocal int64   // local instant the model is anchored at (Unix ns)
	Offset   int64   // shared minus local clock at RefLocal, ns
	Drift    float64 // d(offset)/d(local): e.g. -100e-6 when the local clock runs 100 ppm fast
}

// At is shared minus local clock at the local instant local (Unix ns).
func (m Model) At(local int64) int64 {
	return addSat(m.Offset, m.Drift*diff(local, m.RefLocal))
}

// Shared is the shared-clock instant of the local instant local (Unix ns).
func (m Model) Shared(local int64) int64 {
	return addInt(local, m.At(local))
}

// Options tunes an Estimator; zero fields take the defaults.
type Options struct {
	Window     time.Duration // local time behind the newest sample that is fitted; DefaultWindow
	MaxSamples int           // samples kept at most; DefaultMaxSamples
	MinNoise   time.Duration // least error assumed of the cleanest sample; DefaultMinNoise
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.MinNoise <= 0 {
		o.MinNoise = DefaultMinNoise
	}
	return o
}

// Estimator fits a Model to recent samples. The zero value is ready to use
// with the default Options; NewEstimator sets others. Not safe for
// concurrent use.
type Estimator struct {
	opts    Options
	samples []Sample // ring of at most opts.MaxSamples, in arrival order
	next    int      // ring position of the next Add once full
	newest  int64    // largest Local of the ring

	suspects []Sample // consecutive samples the current model cannot explain

	fitted     bool // model, bound and driftBound reflect the samples
	hasFit     bool // of the samples since the window was last replaced
	model      Model
	bound      float64 // ns, at model.RefLocal
	driftBound float64 // ns/s
	rtts       []time.Duration
	points     []point   // the window's samples as the fit sees them
	bands      bandNoise // their noise, learned per band of round trips
}

// NewEstimator returns an Estimator with opts (zero fields take defaults).
func NewEstimator(opts Options) *Estimator {
	return &Estimator{opts: opts.withDefaults()}
}

// Add records a sample. Samples with a negative round trip are ignored.
func (e *Estimator) Add(s Sample) {
	if s.RTT < 0 {
		return
	}
	e.opts = e.opts.withDefaults()
	if len(e.samples) > 0 && !e.consistent(s) {
		e.suspects = append(e.suspects, s)
		if len(e.suspects) < stepSamples {
			return
		}
		// The clock stepped: what the window says no longer holds.
		suspects := e.suspects
		e.samples, e.next, e.suspects = e.samples[:0], 0, suspects[:0]
		e.bands, e.hasFit = bandNoise{}, false
		for _, s := range suspects {
			e.push(s)
		}
		return
	}
	e.suspects = e.suspects[:0]
	e.push(s)
}

func (e *Estimator) push(s Sample) {
	e.fitted = false
	e.bands.age++
	if len(e.samples) < e.opts.MaxSamples {
		e.samples = append(e.samples, s)
	} else {
		e.samples[e.next] = s
		e.next = (e.next + 1) % len(e.samples)
	}
	e.newest = s.Local
	for _, s := range e.samples {
		e.newest = max(e.newest, s.Local)
	}
}

// consistent reports whether s could be true given the current model: the
// true offset lies within RTT/2 of the sample's, and within the error bound
// of the model's.
func (e *Estimator) consistent(s Sample) bool {
	if !e.inWindow(s) {
		return false // the local clock went back by more than the window
	}
	m, _, _ := e.Model()
	gap := math.Abs(float64(s.Local)-float64(m.RefLocal)) / 1e9
	allowed := float64(s.RTT)/2 + 2*(e.bound+e.driftBound*gap) + stepMargin
	return math.Abs(float64(s.Offset)-float64(m.At(s.Local))) <= allowed
}

// inWindow reports whether s is recent enough to be fitted.
func (e *Estimator) inWindow(s Sample) bool {
	return s.Local >= addInt(e.newest, -int64(e.opts.Window))
}

// Len is the number of samples in the window.
func (e *Estimator) Len() int {
	n := 0
	for _, s := range e.samples {
		if e.inWindow(s) {
			n++
		}
	}
	return n
}

// refitAfter is how far the newest sample must lie after the last fit's
// for Model to fit again: probes as fast as a speaker's through jitter
// (every 12.5-25 ms) refit the window every few samples rather than at each,
// which would cost four times as much for changes far below the error.
const refitAfter = 100 * time.Millisecond

// Model is the current model, anchored at the newest sample (or, while
// samples come faster than refitAfter, at one at most refitAfter older),
// with a bound on its error there (see the package doc); ok is false
// before the first sample.
func (e *Estimator) Model() (m Model, errBound time.Duration, ok bool) {
	if len(e.samples) == 0 {
		return Model{}, 0, false
	}
	if !e.fitted && (!e.hasFit || e.newest < e.model.RefLocal || e.newest-e.model.RefLocal >= int64(refitAfter)) {
		e.fit()
		e.fitted, e.hasFit = true, true
	}
	return e.model, time.Duration(min(math.Ceil(e.bound), 1<<62)), true
}

// point is a sample of the window as the fit sees it.
type point struct {
	x      float64 // s since the newest sample (≤ 0)
	y      float64 // offset, ns from the reference sample's
	halfRT float64 // RTT/2, ns
	model  float64 // variance the noise model gives it, ns²
	band   int     // its band of round-trip excess (noiseBand)
	fade   float64 // 1, falling to 0 over the oldest quarter of the window
	w      float64 // its weight in the fit: fade over its variance
}

// fit computes model, bound and driftBound from the window's samples.
func (e *Estimator) fit() {
	// Round-trip floor and the noise of the floor.
	e.rtts = e.rtts[:0]
	var ref Sample // the min-RTT sample; offsets are taken relative to it
	for _, s := range e.samples {
		if !e.inWindow(s) {
			continue
		}
		if len(e.rtts) == 0 || s.RTT < ref.RTT {
			ref = s
		}
		e.rtts = append(e.rtts, s.RTT)
	}
	floor := float64(ref.RTT)
	noise := max(float64(e.opts.MinNoise), float64(nthSmallest(e.rtts, min(len(e.rtts)-1, max(2, len(e.rtts)/20))))-floor)

	window := float64(e.opts.Window)
	fade := window / 4
	e.points = e.points[:0]
	for _, s := range e.samples {
		if !e.inWindow(s) {
			continue
		}
		excess := float64(s.RTT) - floor
		sigma := (excess + noise) / 2
		p := point{
			x:      float64(s.Local-e.newest) / 1e9,
			y:      diff(int64(s.Offset), int64(ref.Offset)),
			halfRT: float64(s.RTT) / 2,
			model:  sigma * sigma,
			band:   noiseBand(excess, noise),
		}
		p.fade = min(1, (window+p.x*1e9)/fade)
		p.w = p.fade / p.model
		e.points = append(e.points, p)
	}
	if len(e.points) >= learnMinSamples {
		if !e.bands.learned || e.bands.age >= relearnEvery {
			e.bands = bandNoise{learned: true}
			for range learnRounds {
				e.bands.learn(e.points, weightedSums(e.points).line(1))
				e.bands.weigh(e.points)
			}
		}
		e.bands.weigh(e.points)
	}
	// Fit, then again with the noise scaled to what the residuals show, so
	// that the drift prior is weighed against the data's real precision.
	sums := weightedSums(e.points)
	l := sums.line(1)
	scale := 1.0
	if n := len(e.points); n > 2 { // a line through two points has no residuals to learn from
		scale = max(1, l.chi2(e.points)/float64(n-2))
		l = sums.line(scale)
	}
	e.driftBound = 3*math.Sqrt(scale/l.precision) + driftBoundMin

	e.bound = math.Inf(1)
	for _, p := range e.points {
		e.bound = min(e.bound, math.Abs(l.residual(p))+p.halfRT+e.driftBound*math.Abs(p.x))
	}
	e.model = Model{
		RefLocal: e.newest,
		Offset:   addSat(int64(ref.Offset), math.Round(l.intercept)),
		Drift:    l.slope / 1e9,
	}
}

// Learning the noise of each band of round trips from the residuals. The
// noise model (error (excess+σ0)/2) is right in shape but not in scale, and
// not for every network: through the sync benchmark's Wi-Fi the samples
// err by about 0.2 of their excess, and the least-excess ones by more than
// the model says (both directions rarely come near their floors together).
// Weighing each band by the variance its residuals show brings the
// estimate's error closer to what the samples allow: through delays
// recorded in that Wi-Fi, the 3-speaker skew p99 from the estimates alone
// over 35-95 s fell from 168 µs to 149 µs with probes every 50 ms, and
// from 118 µs to 116 µs with probes every 25 ms (TestFollowerRecordedWiFi,
// 16 runs pooled).
const (
	// bandsPerOctave splits the round-trip excess into bands a third of an
	// octave wide: narrow enough that a band's samples err alike, wide
	// enough that a window of a minute puts tens of samples in most.
	bandsPerOctave = 3
	// maxBands covers excesses up to 2^20 times the floor's noise (5 s
	// at the least noise): longer round trips share the last band.
	maxBands = 20 * bandsPerOctave
	// bandPrior is how many samples' worth of the model's variance (scaled
	// to the whole window's residuals) each band starts from, so that a
	// band of one or two samples cannot weigh them by their own residual.
	bandPrior = 4
	// learnRounds: weights learned from a fit, then refitted once more;
	// further rounds changed the estimate by far less than its error.
	learnRounds = 2
	// learnMinSamples: fewer samples leave too few per band to learn from.
	learnMinSamples = 20
	// relearnEvery: the bands' noise is learned again after this many
	// samples and reused in between, where it changes little; learning at
	// every sample tripled the cost of a fit.
	relearnEvery = 16
)

// noiseBand is the band of a round-trip excess: a third of an octave of
// (excess+noise)/noise each, found without a logarithm (fits compute it
// for every sample of the window).
func noiseBand(excess, noise float64) int {
	frac, exp := math.Frexp((excess + noise) / noise) // frac in [0.5, 1)
	third := 0
	switch {
	case frac >= 0.5*cubeRoot4:
		third = 2
	case frac >= 0.5*cubeRoot2:
		third = 1
	}
	return min(maxBands-1, max(0, (exp-1)*bandsPerOctave+third))
}

const (
	cubeRoot2 = 1.2599210498948732 // 2^(1/3)
	cubeRoot4 = 1.5874010519681994 // 2^(2/3)
)

// bandNoise is the noise of the window's samples learned per band of
// round-trip excess.
type bandNoise struct {
	variance [maxBands]float64 // ns²; 0 where the band held no sample
	scale    float64           // residual² over the model's variance, averaged over the window
	learned  bool
	age      int // samples added since it was learned
}

// learn takes the variance of each band's residuals around l, drawn
// towards the model's variance where a band holds few.
func (b *bandNoise) learn(points []point, l line) {
	var sq, model, n [maxBands]float64
	var ratio float64
	for _, p := range points {
		r := l.residual(p)
		sq[p.band] += r * r
		model[p.band] += p.model
		n[p.band]++
		ratio += r * r / p.model
	}
	b.scale = ratio / float64(len(points))
	for i := range b.variance {
		b.variance[i] = 0
		if n[i] > 0 {
			b.variance[i] = (sq[i] + bandPrior*b.scale*model[i]/n[i]) / (n[i] + bandPrior)
		}
	}
}

// weigh weighs each point by its band's variance; a band that held no
// sample when learned takes the model's, scaled.
func (b *bandNoise) weigh(points []point) {
	for i := range points {
		p := &points[i]
		variance := b.variance[p.band]
		if variance <= 0 {
			variance = b.scale * p.model
		}
		if variance > 0 {
			p.w = p.fade / variance
		}
	}
}

// line is a weighted least-squares fit of offset against time with a
// Gaussian prior on the drift.
type line struct {
	slope     float64 // ns/s
	intercept float64 // ns at the newest sample, relative to the reference offset
	precision float64 // of the slope: Σw(x−x̄)² plus the prior's
}

// sums are the weighted sums a line is fitted from.
type sums struct{ mx, my, sxx, sxy float64 }

// weightedSums sums points by their weights: weighted means, then centred
// sums, better conditioned than raw ones.
func weightedSums(points []point) sums {
	var sw, swx, swy float64
	for _, p := range points {
		sw += p.w
		swx += p.w * p.x
		swy += p.w * p.y
	}
	s := sums{mx: swx / sw, my: swy / sw}
	for _, p := range points {
		dx := p.x - s.mx
		s.sxx += p.w * dx * dx
		s.sxy += p.w * dx * (p.y - s.my)
	}
	return s
}

// line fits the line, the drift prior weighed as if the weights were scale
// times too large.
func (s sums) line(scale float64) line {
	precision := s.sxx + scale/(driftPrior*driftPrior)
	slope := max(-maxDrift*1e9, min(maxDrift*1e9, s.sxy/precision))
	return line{slope: slope, intercept: s.my - slope*s.mx, precision: precision}
}

func (l line) residual(p point) float64 { return p.y - l.intercept - l.slope*p.x }

// chi2 is the weighted sum of squared residuals.
func (l line) chi2(points []point) float64 {
	var sum float64
	for _, p := range points {
		r := l.residual(p)
		sum += p.w * r * r
	}
	return sum
}

// nthSmallest is the n-th smallest of xs (0: the smallest), which it
// reorders: a quickselect, linear where sorting a window of thousands of
// samples at each one was most of a fit's work.
func nthSmallest(xs []time.Duration, n int) time.Duration {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		// Hoare partition around the middle element's value.
		pivot := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return xs[n]
		}
	}
	return xs[n]
}

// addSat is a+b rounded, saturated to the int64 range.
func addSat(a int64, b float64) int64 {
	b = math.Round(b)
	switch {
	case math.IsNaN(b):
		return a
	case math.Abs(b) < 1<<62:
		return addInt(a, int64(b))
	case float64(a)+b >= 1<<63:
		return math.MaxInt64
	case float64(a)+b <= -(1 << 63):
		return math.MinInt64
	}
	return int64(float64(a) + b)
}

// addInt is a+b saturated to the int64 range.
func addInt(a, b int64) int64 {
	sum := a + b
	switch {
	case b > 0 && sum < a:
		return math.MaxInt64
	case b < 0 && sum > a:
		return math.MinInt64
	}
	return sum
}

// diff is a−b as a float, exact while the difference is below 2^53 in
// magnitude, and never wrapped around.
func diff(a, b int64) float64 {
	if d := a - b; (b >= 0) == (d <= a) {
		return float64(d)
	}
	return float64(a) - float64(b)
}
