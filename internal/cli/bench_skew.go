//go:build bench

package cli

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// speakerTrace is one speaker's output over a run, seen from outside and
// as its engine scheduled it, frame for frame.
type speakerTrace struct {
	external []playlog.Block // when each read's first frame left, plus the output's buffer
	// engine holds when the engine scheduled the frames of the reads its
	// block log covers (none from a tutti whose pipe output logs nothing),
	// and outputLateNs, for the same reads, how long after its due instant
	// the block left (timer wake-up, the write).
	engine       []playlog.Block
	outputLateNs []int64
	lines        []playlog.Line // the output's block log, in order
}

// traceOf pairs a speaker's timed reads with its block log: the read at
// byte offset o holds block o/(4*blockFrames) of the stream, which the
// log's line of that index describes.
func traceOf(reads []playlog.PCMRead, lines []playlog.Line, rate, blockFrames int, latencyNs int64) speakerTrace {
	tr := speakerTrace{lines: lines}
	blockBytes := int64(4 * blockFrames)
	for _, r := range reads {
		tr.external = append(tr.external, r.Block(r.AtNs+latencyNs, rate))
		k := r.Offset / blockBytes
		if k >= int64(len(lines)) {
			continue // not logged (yet)
		}
		intoBlock := (r.Offset - k*blockBytes) / 4
		heard := lines[k].TNs + protocol.FramesToNs(intoBlock, rate)
		tr.engine = append(tr.engine, r.Block(heard, rate))
		tr.outputLateNs = append(tr.outputLateNs, r.AtNs-(heard-latencyNs))
	}
	return tr
}

// timerLateNs returns how late each block left the output's pacing, as
// the speaker measured it, for blocks heard within [fromNs, toNs).
func (tr speakerTrace) timerLateNs(fromNs, toNs int64) []int64 {
	var late []int64
	for _, l := range tr.lines {
		if l.TNs >= fromNs && l.TNs < toNs {
			late = append(late, l.LateNs)
		}
	}
	return late
}

// localMinusReal returns how far the speaker's clock was off real time at
// real instant tNs, from the block logged nearest to it (its heard instant
// on both clocks).
func (tr speakerTrace) localMinusReal(tNs int64) (int64, bool) {
	i := sort.Search(len(tr.lines), func(i int) bool { return tr.lines[i].TNs >= tNs })
	best, ok := int64(math.MaxInt64), false
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(tr.lines) && tr.lines[j].LocalNs != 0 && abs64(tr.lines[j].TNs-tNs) < best {
			best, ok = abs64(tr.lines[j].TNs-tNs), true
			i = j
		}
	}
	if !ok {
		return 0, false
	}
	return tr.lines[i].LocalNs - tr.lines[i].TNs, true
}

// frameSkews returns, for each frame the first speaker's output began a
// read with in [fromNs, toNs) (by its external instant) and every speaker
// played, the spread over speakers (latest minus earliest) of the instants
// seen from outside; and where every speaker's block log covers the frame,
// the spread of the instants their engines scheduled, and of the
// difference of the two, the output's own timing.
func frameSkews(traces []speakerTrace, rate int, fromNs, toNs int64) (external, engine, output []int64) {
	if len(traces) == 0 {
		return nil, nil, nil
	}
	ext := make([]*playlog.Timeline, len(traces))
	eng := make([]*playlog.Timeline, len(traces))
	for i, tr := range traces {
		ext[i], eng[i] = playlog.NewTimeline(tr.external, rate), playlog.NewTimeline(tr.engine, rate)
	}
	xs, es, ds := make([]int64, len(traces)), make([]int64, len(traces)), make([]int64, len(traces))
	for _, ref := range traces[0].external {
		if ref.TNs < fromNs || ref.TNs >= toNs {
			continue
		}
		heardByAll, logged := true, true
		for i := range traces {
			x, ok := ext[i].HeardAt(ref.Frame, ref.TNs)
			heardByAll = heardByAll && ok
			e, ok := eng[i].HeardAt(ref.Frame, ref.TNs)
			logged = logged && ok
			xs[i], es[i], ds[i] = x, e, x-e
		}
		if !heardByAll {
			continue
		}
		external = append(external, spread(xs))
		if logged {
			engine, output = append(engine, spread(es)), append(output, spread(ds))
		}
	}
	return external, engine, output
}

// spread is the largest minus the smallest.
func spread(v []int64) int64 {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return hi - lo
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// timedError is an error of a speaker's timing at a real instant.
type timedError struct{ atNs, errNs int64 }

// clockErrors returns, for each status received in [fromNs, toNs), how far
// the speaker's estimate of the shared clock (its clock_offset_ns, shared
// minus local) was off the truth: the shared clock is real time plus
// sharedMinusWall, and the block log says how far the local clock was off
// real time.
func clockErrors(tr speakerTrace, statuses []statusSample, sharedMinusWall, fromNs, toNs int64) []timedError {
	var errs []timedError
	for _, st := range statuses {
		est, ok := st.fields["clock_offset_ns"].(float64)
		if !ok || st.atNs < fromNs || st.atNs >= toNs {
			continue
		}
		if off, ok := tr.localMinusReal(st.atNs); ok {
			errs = append(errs, timedError{st.atNs, int64(est) - (sharedMinusWall - off)})
		}
	}
	return errs
}

// at interpolates errs (in time order) at tNs; ok is false if empty.
func errorAt(errs []timedError, tNs int64) (int64, bool) {
	if len(errs) == 0 {
		return 0, false
	}
	i := sort.Search(len(errs), func(i int) bool { return errs[i].atNs >= tNs })
	switch {
	case i == 0:
		return errs[0].errNs, true
	case i == len(errs):
		return errs[i-1].errNs, true
	}
	a, b := errs[i-1], errs[i]
	return a.errNs + (b.errNs-a.errNs)*(tNs-a.atNs)/(b.atNs-a.atNs), true
}

// scheduleErrors returns, for each block the engine scheduled within
// [fromNs, toNs), how much later than the session timeline wants it the
// engine scheduled it to be heard (real time), and that error less the
// clock estimate's share: a clock estimate ahead of the shared clock by
// e makes the engine play e early, so the steering's own error is the
// schedule's error plus the clock's.
func scheduleErrors(tr speakerTrace, a protocol.Anchor, sharedMinusWall int64, clock []timedError, rate int, fromNs, toNs int64) (schedule, steering []int64) {
	if !a.Playing || a.Index != 0 {
		return nil, nil
	}
	for _, b := range tr.engine {
		if b.TNs < fromNs || b.TNs >= toNs {
			continue
		}
		want := a.AtNs - a.PositionNs + protocol.FramesToNs(b.Frame, rate) - sharedMinusWall
		e := b.TNs - want
		schedule = append(schedule, e)
		if c, ok := errorAt(clock, b.TNs); ok {
			steering = append(steering, e+c)
		}
	}
	return schedule, steering
}

// errorSources describes where a speaker's error comes from over
// [fromNs, toNs): its clock estimate, its engine's schedule and steering,
// and its output's timing.
func errorSources(tr speakerTrace, statuses []statusSample, a protocol.Anchor, sharedMinusWall, fromNs, toNs int64) string {
	clock := clockErrors(tr, statuses, sharedMinusWall, fromNs, toNs)
	var clockNs []int64
	for _, c := range clock {
		clockNs = append(clockNs, c.errNs)
	}
	schedule, steering := scheduleErrors(tr, a, sharedMinusWall, clock, pipeRate, fromNs, toNs)
	var outside []int64
	for i, b := range tr.engine {
		if b.TNs >= fromNs && b.TNs < toNs {
			outside = append(outside, tr.outputLateNs[i])
		}
	}
	return fmt.Sprintf("clock estimate error %s (%d statuses); schedule vs timeline %s; steering (schedule less clock error) %s; output late: timer %s, write %s",
		usStats(clockNs), len(clockNs), usStats(schedule), usStats(steering), usStats(tr.timerLateNs(fromNs, toNs)), usStats(outside))
}

// usStats prints the median and the 1st to 99th percentile range of v in
// µs.
func usStats(v []int64) string {
	if len(v) == 0 {
		return "n/a"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pct := func(p float64) float64 { return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / 1e3 }
	return fmt.Sprintf("median %.1f µs [p1 %.1f, p99 %.1f]", pct(0.5), pct(0.01), pct(0.99))
}
