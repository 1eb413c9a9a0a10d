package clocksync

import (
	"errors"
	"fmt"
	"time"
)

// LocalNs is an instant on a machine's own clock, Unix ns. SharedNs is an
// instant on the shared clock, the time master's, Unix ns: the timeline
// speakers play by. A Model maps the first to the second.
type (
	LocalNs  int64
	SharedNs int64
)

// SharedAt is the shared-clock instant of the local instant local.
func (m Model) SharedAt(local LocalNs) SharedNs { return SharedNs(m.Shared(int64(local))) }

// FollowerConfig is how a Follower paces its probes and when it trusts
// its estimate.
type FollowerConfig struct {
	// Burst probes go out BurstInterval apart right after a (re)connect;
	// then they come FastInterval apart until FastFor after it, and
	// Interval apart from then on.
	Burst                                 int
	BurstInterval, FastInterval, Interval time.Duration
	FastFor                               time.Duration
	// While the link is jittery, probes come JitterSpeedup times as often
	// (in the fast phase and after it): through jitter the estimate's
	// error falls with the number of answers it fits, and a quiet link
	// needs no more. The link is jittery from when the median round trip
	// of the recent answers lies Jittery or more above their minimum (few
	// answers come near the floor the fit leans on) until it lies less
	// than half of that above, but never while their median is Congested
	// or longer: then the link or the master is congested rather than
	// jittery, and faster probes would only add to the queue. (Not a
	// higher percentile: a Wi-Fi's spikes of a hundred milliseconds hold
	// up every probe behind them, so a few in a row would reach it, and
	// at the steady pace their round trips would stay among the recent
	// ones for half a minute.) A JitterSpeedup of 0 or 1 keeps the pace
	// whatever the link.
	JitterSpeedup int
	Jittery       time.Duration
	Congested     time.Duration
	// The estimate is trusted once it has Samples answers and an error
	// bound within ErrorBound, or, Patience after the first answer (or
	// after it stopped being trusted) brought nothing better, with the
	// bound there is. A trusted estimate stops being trusted when its
	// bound grows beyond max(Uncertain, twice the bound it was trusted
	// with); recovering, patience settles only for a bound within that.
	Samples    int
	ErrorBound time.Duration
	Patience   time.Duration
	Uncertain  time.Duration
	// StaleProbes is how many probes back an answer may refer to.
	StaleProbes uint64
}

// Follower follows the time master's clock for one client, a speaker or a
// standby controller: it numbers and paces the probes, checks the answers,
// fits them with an Estimator and says whether the estimate is good enough
// to go by. It reads no clock: every instant comes as an argument. Not safe
// for concurrent use; its owner locks.
type Follower struct {
	cfg       FollowerConfig
	estimator Estimator
	trust     Trust
	seen      bool    // an answer came since the last Reset
	closedAt  LocalNs // when trust was lost (before the first: the first answer)
	openBound time.Duration
	probeID   uint64  // of the last probe sent
	burstLeft int     // probes still to send at BurstInterval
	fastUntil LocalNs // probes at FastInterval until then
	rtts      RoundTrips
	jittery   bool // probes JitterSpeedup times as often
}

// NewFollower returns a follower that starts as after a connect at now.
func NewFollower(cfg FollowerConfig, now LocalNs) *Follower {
	f := &Follower{cfg: cfg}
	f.Reconnected(now)
	return f
}

// Trust is whether an estimate is good enough to go by. The zero value is
// that of a follower with no answer yet.
type Trust struct {
	Open   bool // it is now
	Opened bool // it was since the last Reset: if not Open, it is recovering
	// Closed with: the bound that closed it, the limit it crossed, and the
	// bound that opens it again.
	ClosedBound, Limit, ErrorBound time.Duration
}

// Why is why the estimate is not trusted, for a status.
func (t Trust) Why() string {
	if !t.Opened {
		return "clock not synchronised"
	}
	return fmt.Sprintf("clock estimate uncertain: error bound grew to %v, over %v; muted until it is back within %v",
		t.ClosedBound.Round(10*time.Microsecond), t.Limit, t.ErrorBound)
}

// Estimate is the follower's state after an answer.
type Estimate struct {
	Model   Model
	Bound   time.Duration // error bound of Model
	Samples int           // in the estimator's window
	RTT     time.Duration // of this answer's probe
	At      LocalNs       // when the answer came
	Jittery bool          // the link is jittery: probes come JitterSpeedup times as often
	Trust   Trust
	Changed bool // Trust.Open changed with this answer
}

// Reconnected restarts the burst and the fast pace: the connection is new,
// and so is the other side's view of ours.
func (f *Follower) Reconnected(now LocalNs) {
	f.burstLeft = f.cfg.Burst
	f.fastUntil = now + LocalNs(f.cfg.FastFor)
}

// Reset forgets the answers (they were of another master, perhaps over
// another link) and the trust, and paces the probes as after a connect.
func (f *Follower) Reset(now LocalNs) {
	f.estimator = Estimator{}
	f.trust, f.seen, f.openBound = Trust{}, false, 0
	f.rtts.Reset()
	f.jittery = false
	f.Reconnected(now)
}

// Probe returns the id of the next probe to send.
func (f *Follower) Probe() uint64 {
	f.probeID++
	return f.probeID
}

// Next is the time from now until the next probe is due.
func (f *Follower) Next(now LocalNs) time.Duration {
	if f.burstLeft > 0 {
		f.burstLeft--
		return f.cfg.BurstInterval
	}
	interval := f.cfg.Interval
	if now < f.fastUntil {
		interval = f.cfg.FastInterval
	}
	if f.jittery {
		interval /= time.Duration(f.cfg.JitterSpeedup)
	}
	return interval
}

// jitterMinAnswers is how many answers the link is judged from at least:
// the first ones, sent while the connection warms up, tend to be slow,
// and two or three of them would decide the median of fewer.
const jitterMinAnswers = 10

// judgeLink updates whether the link is jittery from the recent round
// trips. The gap between the spreads that start and end it keeps a link
// near either from flapping between the paces.
func (f *Follower) judgeLink() {
	if f.cfg.JitterSpeedup <= 1 || f.rtts.Len() < jitterMinAnswers {
		return
	}
	spread := f.rtts.Percentile(50) - f.rtts.Percentile(0)
	congested := f.rtts.Percentile(50) >= f.cfg.Congested
	if f.jittery {
		f.jittery = spread >= f.cfg.Jittery/2 && !congested
	} else {
		f.jittery = spread >= f.cfg.Jittery && !congested
	}
}

// RoundTrips returns the lowest and the 99th percentile of the recent
// probes' round trips; zeros before the first answer.
func (f *Follower) RoundTrips() (lowest, p99 time.Duration) {
	return f.rtts.Percentile(0), f.rtts.Percentile(99)
}

// errUnknownProbe refuses an answer to a probe not sent, or long ago.
var errUnknownProbe = errors.New("clock answer to an unknown probe")

// Answer takes the master's answer to probe id, which was sent at t1 and
// stamped t2 (received) and t3 (sent back) by the master, and came back at
// t4.
func (f *Follower) Answer(id uint64, t1 LocalNs, t2, t3 SharedNs, t4 LocalNs) (Estimate, error) {
	if id == 0 || id > f.probeID || f.probeID-id > f.cfg.StaleProbes {
		return Estimate{}, fmt.Errorf("%w (%d)", errUnknownProbe, id)
	}
	sample, err := NewSample(int64(t1), int64(t2), int64(t3), int64(t4))
	if err != nil {
		return Estimate{}, err
	}
	f.estimator.Add(sample)
	f.rtts.Add(sample.RTT)
	f.judgeLink()
	model, bound, _ := f.estimator.Model()
	est := Estimate{Model: model, Bound: bound, Samples: f.estimator.Len(), RTT: sample.RTT, At: t4, Jittery: f.jittery}
	est.Changed = f.update(est)
	est.Trust = f.trust
	return est, nil
}

// Model is the current estimate; ok is false before the first answer.
func (f *Follower) Model() (m Model, bound time.Duration, ok bool) { return f.estimator.Model() }

// limit is the bound beyond which a trusted estimate is trusted no more.
func (f *Follower) limit() time.Duration { return max(f.cfg.Uncertain, 2*f.openBound) }

// update applies the trust rules to a new estimate and says whether Open
// changed. The gap between the bounds that open and close it keeps a bound
// near either from flapping.
func (f *Follower) update(est Estimate) bool {
	if !f.seen || est.At < f.closedAt { // first, or the local clock stepped back
		f.seen, f.closedAt = true, est.At
	}
	was := f.trust.Open
	if f.trust.Open {
		if est.Bound > f.limit() {
			f.trust.Open, f.closedAt = false, est.At
			f.trust.ClosedBound, f.trust.Limit, f.trust.ErrorBound = est.Bound, f.limit(), f.cfg.ErrorBound
		}
	} else {
		enough := est.Samples >= f.cfg.Samples
		good := enough && est.Bound <= f.cfg.ErrorBound
		patient := enough && time.Duration(est.At-f.closedAt) >= f.cfg.Patience
		// Recovering, patience settles for what was good enough before.
		if good || patient && (!f.trust.Opened || est.Bound <= f.limit()) {
			f.trust.Open, f.openBound = true, est.Bound
		}
	}
	f.trust.Opened = f.trust.Opened || f.trust.Open
	return f.trust.Open != was
}
