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
// every 50 ms: under Wi-Fi-like jitter the error falls with the number of
// samples fitted (with probes every 50 ms, p99 95 µs with 512 samples,
// about 45 µs with the whole window; TestEstimatorWiFiFastProbes), so a
// cap that cut the window short would waste the extra probes. Each sample
// refits the window: 0.055 ms for 2400 samples here (BenchmarkEstimatorAdd); at
// today's probe every 200 ms the window holds 600.
const (
	DefaultWindow     = 120 * time.Second
	DefaultMaxSamples = 2400
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
	model      Model
	bound      float64 // ns, at model.RefLocal
	driftBound float64 // ns/s
	rtts       []time.Duration
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

// Model is the current model, anchored at the newest sample, with a bound
// on its error there (see the package doc); ok is false before the first
// sample.
func (e *Estimator) Model() (m Model, errBound time.Duration, ok bool) {
	if len(e.samples) == 0 {
		return Model{}, 0, false
	}
	if !e.fitted {
		e.fit()
		e.fitted = true
	}
	return e.model, time.Duration(min(math.Ceil(e.bound), 1<<62)), true
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
	weight := func(s Sample) float64 {
		age := float64(e.newest - s.Local)
		sigma := (float64(s.RTT) - floor + noise) / 2
		return min(1, (window-age)/fade) / (sigma * sigma)
	}
	x := func(s Sample) float64 { return float64(s.Local-e.newest) / 1e9 } // s
	y := func(s Sample) float64 { return diff(int64(s.Offset), int64(ref.Offset)) }

	// Weighted means, then centred sums: better conditioned than raw ones.
	var sw, swx, swy float64
	for _, s := range e.samples {
		if !e.inWindow(s) {
			continue
		}
		w := weight(s)
		sw += w
		swx += w * x(s)
		swy += w * y(s)
	}
	mx, my := swx/sw, swy/sw
	var sxx, sxy float64
	for _, s := range e.samples {
		if !e.inWindow(s) {
			continue
		}
		w, dx := weight(s), x(s)-mx
		sxx += w * dx * dx
		sxy += w * dx * (y(s) - my)
	}
	// Fit once with the noise model as it is, then again with the noise
	// scaled to what the residuals show, so that the drift prior is weighed
	// against the data's real precision.
	var slope, intercept, precision float64 // slope in ns/s; intercept in ns at e.newest, relative to ref.Offset
	line := func(scale float64) {
		precision = sxx + scale/(driftPrior*driftPrior)
		slope = max(-maxDrift*1e9, min(maxDrift*1e9, sxy/precision))
		intercept = my - slope*mx
	}
	scale := 1.0
	line(scale)
	if n := len(e.rtts); n > 2 { // a line through two points has no residuals to learn from
		var chi2 float64
		for _, s := range e.samples {
			if e.inWindow(s) {
				r := y(s) - intercept - slope*x(s)
				chi2 += weight(s) * r * r
			}
		}
		scale = max(1, chi2/float64(n-2))
		line(scale)
	}
	e.driftBound = 3*math.Sqrt(scale/precision) + driftBoundMin

	e.bound = math.Inf(1)
	for _, s := range e.samples {
		if e.inWindow(s) {
			r := y(s) - intercept - slope*x(s)
			e.bound = min(e.bound, math.Abs(r)+float64(s.RTT)/2+e.driftBound*math.Abs(x(s)))
		}
	}
	e.model = Model{
		RefLocal: e.newest,
		Offset:   addSat(int64(ref.Offset), math.Round(intercept)),
		Drift:    slope / 1e9,
	}
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
