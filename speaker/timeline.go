package speaker

import (
	"github.com/tutti-audio/tutti/protocol"
)

// anchor is one timeline anchor of a session state, with what it refers to.
type anchor struct {
	protocol.Anchor
	state           string // protocol.Playing, Paused or Stopped
	playlistVersion uint64
	playlistHash    string // that playlist's Hash(); "": not given
	volume          int    // session volume, 0-100
}

// timeline is the sorted list of anchors a speaker follows: the anchor in
// effect at shared instant s is the last one with AtNs <= s.
type timeline struct {
	anchors []anchor // sorted by AtNs
}

// add inserts a new state's anchor. The newest state wins from its AtNs on,
// so anchors at or after it (announced earlier, now superseded) are dropped.
func (tl *timeline) add(a anchor) {
	keep := tl.anchors[:0]
	for _, old := range tl.anchors {
		if old.AtNs < a.AtNs {
			keep = append(keep, old)
		}
	}
	tl.anchors = append(keep, a)
}

// dropBefore forgets anchors that no longer matter from shared instant s on:
// all but the last one at or before s.
func (tl *timeline) dropBefore(s int64) {
	i := 0
	for i+1 < len(tl.anchors) && tl.anchors[i+1].AtNs <= s {
		i++
	}
	tl.anchors = tl.anchors[i:]
}

// at returns the index of the anchor in effect at shared instant s, or -1.
func (tl *timeline) at(s int64) int {
	k := -1
	for i, a := range tl.anchors {
		if a.AtNs <= s {
			k = i
		}
	}
	return k
}

// nsToFramesRound converts a duration to the nearest frame count at rate,
// without overflowing for long positions.
func nsToFramesRound(ns int64, rate int) int64 {
	return ns/1e9*int64(rate) + (ns%1e9*int64(rate)+5e8)/1e9
}

// framesToNsRound is the nearest nanosecond of a frame count at rate.
func framesToNsRound(frames int64, rate int) int64 {
	return frames/int64(rate)*1e9 + (frames%int64(rate)*1e9+int64(rate)/2)/int64(rate)
}

// frameAtOrAfter is the first frame i >= 0 with framesToNsRound(i) >= ns:
// frame instants and positions are rounded to the nanosecond the same way
// everywhere.
func frameAtOrAfter(ns int64, rate int) int64 {
	if ns <= 0 {
		return 0
	}
	i := protocol.NsToFrames(ns, rate) // within a frame of the answer
	for i > 0 && framesToNsRound(i-1, rate) >= ns {
		i--
	}
	for framesToNsRound(i, rate) < ns {
		i++
	}
	return i
}

// firstFrameAtOrAfter is the first frame i (0 <= i <= limit) of a block
// whose frame 0 is at shared instant base that is at or after instant at.
func firstFrameAtOrAfter(base, at int64, rate, limit int) int {
	return int(min(frameAtOrAfter(at-base, rate), int64(limit)))
}

// entryFrames is an entry's length in frames of the output rate.
func entryFrames(e protocol.Entry, rate int) int64 {
	if e.SampleRate == rate && !e.Missing { // a missing entry lasts 0 (DurationNs)
		return e.Frames
	}
	return protocol.NsToFrames(e.DurationNs(), rate)
}
