// Package playlog reads what virtual audio devices heard, as they log it
// (one JSON line per block), and measures from it how far apart speakers
// play. Songs made with audiogen.Timecode carry their frame index in every
// sample, so the log is ground truth: which frame was heard at which instant.
package playlog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/tutti-audio/tutti/audiogen"
)

// Line is one line of a virtual device's log; speaker.VirtualOutput writes it.
type Line struct {
	TNs    int64 `json:"t_ns"`    // when the block's first frame is heard, Unix ns, real clock
	Frames int   `json:"frames"`  // frames in the block
	L      int16 `json:"l"`       // first frame, left
	R      int16 `json:"r"`       // first frame, right
	Sound  int   `json:"n_sound"` // leading frames of the block that are not silence
	// Tail is how many frames at the block's end come after its last silent
	// frame (Frames if none is silent): where in the block sound began.
	Tail     int  `json:"n_tail,omitempty"`
	Underrun bool `json:"underrun,omitempty"`
	// LX is the first frame's left sample times 32768 before rounding and
	// Rate the device's rate: a speaker that resamples plays between
	// frames, and a timecode's left channel, a ramp, tells by how much.
	LX   float64 `json:"lx,omitempty"`
	Rate int     `json:"rate,omitempty"`
	// LocalNs is TNs on the speaker's own clock (what its engine was asked
	// to fill for), and LateNs how long after its due instant the block
	// left the device's pacing (timer wake-up and scheduling).
	LocalNs int64 `json:"local_ns,omitempty"`
	LateNs  int64 `json:"late_ns,omitempty"`
}

// Block is a logged block whose first frame carries a timecode.
type Block struct {
	TNs    int64 // when song frame Frame was heard (to the sub-frame, where the log tells)
	Frame  int64 // timecode frame index of the block's first frame
	Frames int   // frames of sound in the block, from the first on
	// SoundFromNs is when the sound that runs on into this block began
	// (0: before the log tells). It may begin inside the block before, or
	// in blocks whose first frame carries no timecode to read, such as the
	// scaled samples of a fade-in.
	SoundFromNs int64
}

// Read parses a log and returns its blocks that start with timecoded sound,
// in log order. Silent blocks, underrun markers and malformed lines are skipped.
func Read(r io.Reader) ([]Block, error) {
	var rd Reader
	blocks, err := rd.Read(r)
	return append(blocks, rd.Flush()...), err
}

// Reader parses a log that arrives in pieces of whole lines. Whether a
// block was read right depends on the block after it, so the last block
// of a piece waits for the next piece, or for Flush.
type Reader struct {
	soundFrom int64   // when the sound at the end of the last line began; 0: silence there, or unknown
	prev      *Block  // the block before pending[0], as parsed
	pending   []Block // parsed, the last not yet decided on
}

// Read parses the next piece of a log and returns the blocks it could
// decide on, as the package's Read does.
func (rd *Reader) Read(r io.Reader) ([]Block, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var l Line
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Underrun {
			rd.soundFrom = 0
			continue
		}
		soundFrom := rd.soundFrom
		if soundFrom == 0 && l.Sound > 0 {
			soundFrom = l.TNs // the sound began with this line
		}
		rd.soundFrom = l.soundAtEnd(rd.soundFrom)
		frame, ok := audiogen.ReadTimecode(audiogen.Frame{L: l.L, R: l.R})
		if !ok {
			continue
		}
		n := l.Sound
		if n <= 0 || n > l.Frames {
			n = l.Frames
		}
		// The first frame may sit between song frames: frame+frac.
		if frac := l.LX - float64(l.L); l.Rate > 0 && math.Abs(frac) <= 0.5 {
			l.TNs -= int64(math.Round(frac * 1e9 / float64(l.Rate)))
		}
		rd.pending = append(rd.pending, Block{TNs: l.TNs, Frame: frame, Frames: n, SoundFromNs: soundFrom})
	}
	return rd.decide(len(rd.pending) - 1), sc.Err()
}

// soundAtEnd is when the sound at the end of the line began, given when
// the sound at the end of the line before began (0: silence, or unknown).
func (l Line) soundAtEnd(before int64) int64 {
	switch {
	case l.Frames > 0 && l.Sound == l.Frames:
		// Sound all through: it goes on from the line before, or began
		// with this one.
		if before == 0 {
			return l.TNs
		}
		return before
	case l.Tail > 0 && l.Tail < l.Frames && l.Rate > 0:
		return l.TNs + int64(l.Frames-l.Tail)*1e9/int64(l.Rate)
	}
	return 0
}

// Flush decides on the last block: the log ended.
func (rd *Reader) Flush() []Block { return rd.decide(len(rd.pending)) }

// misreadFrames is how far a block may break the continuity of its
// neighbours before it counts as misread.
const misreadFrames = 16

// decide keeps, of the first n pending blocks, those that continue the
// block before them or into the block after them. A block's first frame can
// read as some other frame: a speaker that steers its speed plays between
// frames, and interpolated across a jump of the timecode signal, or scaled
// by a fade-in, the sample carries another number; such a block continues
// nothing.
func (rd *Reader) decide(n int) []Block {
	continues := func(a, b Block) bool {
		gap := b.TNs - a.TNs
		return gap > 0 && gap < 50e6 && abs(a.Frame+int64(a.Frames)-b.Frame) <= misreadFrames
	}
	var kept []Block
	for i := range max(n, 0) {
		b := rd.pending[i]
		var before, after *Block
		if i > 0 {
			before = &rd.pending[i-1]
		} else {
			before = rd.prev
		}
		if i+1 < len(rd.pending) {
			after = &rd.pending[i+1]
		}
		keep := before != nil && continues(*before, b) || after != nil && continues(b, *after)
		if !keep && before != nil && after != nil {
			// Misread between two blocks that continue each other across it
			// (a speaker playing between frames across the timecode's 16-bit
			// wrap reads garbage there): it was sound, at the frames between.
			fixed := b
			fixed.Frame = before.Frame + int64(before.Frames)
			if keep = continues(*before, fixed) && continues(fixed, *after); keep {
				b = fixed
			}
		}
		if keep {
			kept = append(kept, b)
		}
	}
	if n > 0 {
		prev := rd.pending[n-1]
		rd.prev = &prev
		rd.pending = append(rd.pending[:0], rd.pending[n:]...)
	}
	return kept
}

// Underruns returns the instants a log marks as underruns: the speaker's
// process stalled for longer than its device's buffer (the machine was
// overloaded), so the device ran dry whatever the speaker meant to play.
func Underruns(r io.Reader) ([]int64, error) {
	var at []int64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var l Line
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Underrun {
			at = append(at, l.TNs)
		}
	}
	return at, sc.Err()
}

// Timeline answers when one speaker heard a given frame.
type Timeline struct {
	rate   int
	blocks []Block // sorted by Frame, then TNs
}

// NewTimeline indexes blocks played at rate frames per second.
func NewTimeline(blocks []Block, rate int) *Timeline {
	sorted := slices.Clone(blocks)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Frame != sorted[j].Frame {
			return sorted[i].Frame < sorted[j].Frame
		}
		return sorted[i].TNs < sorted[j].TNs
	})
	return &Timeline{rate: rate, blocks: sorted}
}

// HeardAt returns when frame was heard; near picks among several hearings
// (a song played twice) the one closest to it. ok is false if never heard.
func (tl *Timeline) HeardAt(frame, near int64) (tNs int64, ok bool) {
	// Blocks are at most a few thousand frames, so a containing block
	// starts within maxBlock frames before frame.
	const maxBlock = 1 << 16
	i := sort.Search(len(tl.blocks), func(i int) bool { return tl.blocks[i].Frame > frame-maxBlock })
	best := int64(math.MaxInt64)
	for ; i < len(tl.blocks) && tl.blocks[i].Frame <= frame; i++ {
		b := tl.blocks[i]
		if frame >= b.Frame+int64(b.Frames) {
			continue
		}
		t := b.TNs + (frame-b.Frame)*1e9/int64(tl.rate)
		if abs(t-near) < abs(best-near) {
			best, ok = t, true
		}
	}
	return best, ok
}

// Spread measures, for each block that speaker ref heard, how far apart in
// time all speakers heard its first frame (latest minus earliest), for
// blocks heard within [fromNs, toNs) by ref and heard by every speaker.
// It returns the spreads in nanoseconds.
func Spread(ref []Block, others []*Timeline, fromNs, toNs int64) []int64 {
	var spreads []int64
	for _, b := range ref {
		if b.TNs < fromNs || b.TNs >= toNs {
			continue
		}
		lo, hi := b.TNs, b.TNs
		all := true
		for _, tl := range others {
			t, ok := tl.HeardAt(b.Frame, b.TNs)
			if !ok {
				all = false
				break
			}
			lo, hi = min(lo, t), max(hi, t)
		}
		if all {
			spreads = append(spreads, hi-lo)
		}
	}
	return spreads
}

// Stats summarises spreads in milliseconds.
type Stats struct {
	N                 int
	P50Ms, P99Ms, Max float64
}

// Summarize computes percentiles of spreads (nanoseconds).
func Summarize(spreads []int64) Stats {
	if len(spreads) == 0 {
		return Stats{}
	}
	s := slices.Clone(spreads)
	slices.Sort(s)
	pct := func(p float64) float64 {
		return float64(s[int(math.Ceil(p*float64(len(s))))-1]) / 1e6
	}
	return Stats{N: len(s), P50Ms: pct(0.50), P99Ms: pct(0.99), Max: float64(s[len(s)-1]) / 1e6}
}

func (s Stats) String() string {
	return fmt.Sprintf("n=%d p50=%.3fms p99=%.3fms max=%.3fms", s.N, s.P50Ms, s.P99Ms, s.Max)
}

// LastSound returns the last frame heard before untilNs, and when it was
// heard: given an instant a little after a pause took effect, where a
// speaker stopped.
func LastSound(blocks []Block, rate int, untilNs int64) (frame, tNs int64, ok bool) {
	for i := len(blocks) - 1; i >= 0; i-- {
		if b := blocks[i]; b.TNs < untilNs {
			return b.Frame + int64(b.Frames) - 1, b.TNs + int64(b.Frames-1)*1e9/int64(rate), true
		}
	}
	return 0, 0, false
}

// Gap is the worst break in a speaker's sound between fromNs and toNs: the
// longest silence between two consecutive blocks of sound, or the largest
// jump of the song position against the time that passed (frames skipped
// or played twice), whichever is worse, in nanoseconds. A speaker that
// plays on through an event has a gap of 0 (to within the sub-frame
// steering of its speed). atNs is when the worst break began.
func Gap(blocks []Block, rate int, fromNs, toNs int64) (gapNs, atNs int64) {
	for i := 1; i < len(blocks); i++ {
		a, b := blocks[i-1], blocks[i]
		if a.TNs < fromNs || b.TNs > toNs {
			continue
		}
		silence := b.TNs - (a.TNs + int64(a.Frames)*1e9/int64(rate))
		jump := abs(b.TNs - a.TNs - (b.Frame-a.Frame)*1e9/int64(rate))
		if g := max(silence, jump); g > gapNs {
			gapNs, atNs = g, a.TNs
		}
	}
	return gapNs, atNs
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
