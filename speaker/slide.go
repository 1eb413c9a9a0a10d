package speaker

import (
	"math"
	"time"

	"github.com/gopxl/beep/v2"
)

// Steering by whole frames. A player hands its song's frames to the output
// verbatim, so that between corrections what is heard is the song sample for
// sample (at the song's own rate; a song of another rate is resampled first,
// at the fixed ratio of the two rates). Its position follows the timeline by
// whole frames: when it is off by more than slideThreshold, it slides by one
// frame over slideTime, reading the song at fractional positions by cubic
// interpolation, and lands on a whole frame again.
//
// The position through a slide follows a raised cosine: the speed changes
// smoothly and peaks at π/2 frames per slide off nominal (0.07 % for 50 ms,
// 1.2 cents), where dropping or repeating a frame puts a step in the
// waveform, a click. Measured on a sine (TestSlideArtefacts), a slide adds
// nothing above the song's own floor more than 500 Hz from the tone (a
// dropped frame: -43 dB at 1 kHz, -24 dB at 10 kHz); what it moves stays
// within the tone's critical band, where the tone masks it. With clocks
// 100 ppm apart a slide comes every 227 ms, so 22 % of the time is
// interpolated, where continuous steering interpolated all of it; slides
// back to back correct up to 450 ppm, about as much as that steering did.
const (
	// slideThreshold is the position error, in frames, beyond which a
	// player slides. Whole frames leave up to half a frame of error
	// (11 µs at 44.1 kHz), so two speakers may stay up to 2×0.55 frames
	// (25 µs) apart; the margin keeps the clock estimate's jitter on a
	// wired network (1-3 µs) from sliding back and forth around the half.
	slideThreshold = 0.55
	// slideTime is how long one slide of one frame takes: 10 ms slides
	// still showed at -74 dB (10 kHz tone), 25 ms at -89 dB.
	slideTime = 50 * time.Millisecond
	// sliderBuffer is how many decoded frames a slider holds: a slide's
	// length plus room to read ahead.
	sliderBuffer = 4096
	// sliderReadAhead is how many frames past the one it needs a slider
	// reads at once: few reads per block, and little past what a song still
	// downloading was checked to hold (decoder.go ready).
	sliderReadAhead = 1024
)

// slider streams src verbatim, except through slides. Positions are in
// frames of src from its start.
type slider struct {
	src     beep.Streamer
	buf     [][2]float64 // decoded frames from first on
	first   int64
	ended   bool  // src has no more frames
	next    int64 // the frame the next verbatim frame is; a slide starts from it
	length  int   // output frames of one slide
	dir     int   // direction of the slide under way (+1: one frame ahead); 0: none
	step    int   // output frames of it done
	pending int   // whole frames to slide by after it
	// hold is the last position to read (a pause's), which no slide
	// crosses: it stops there on a whole frame, as every other speaker.
	hold   float64
	slides int64 // slides started
}

// slideFrames is how many output frames a slide takes at rate.
func slideFrames(rate int) int {
	return max(4, int(int64(rate)*int64(slideTime)/int64(time.Second)))
}

// newSlider returns a slider over src at rate, holding frames in buf
// (any length: it is resized as needed).
func newSlider(src beep.Streamer, rate int, buf [][2]float64) *slider {
	length := slideFrames(rate)
	if size := max(sliderBuffer, 2*length+8); cap(buf) < size {
		buf = make([][2]float64, 0, size)
	}
	return &slider{src: src, buf: buf[:0], length: length, hold: math.Inf(1)}
}

// position is where the next output frame is read, in frames of src.
func (s *slider) position() float64 {
	if s.dir == 0 {
		return float64(s.next)
	}
	return float64(s.next) + float64(s.step) + float64(s.dir)*s.shape(s.step)
}

// shape is how far, as a fraction of the frame, a slide has moved after
// step of its output frames: a raised cosine, so the speed changes smoothly.
func (s *slider) shape(step int) float64 {
	return (1 - math.Cos(math.Pi*float64(step)/float64(s.length))) / 2
}

// correct takes the position error (frames; positive: ahead of the
// timeline) and plans the whole-frame slides that bring it within half a
// frame, unless it is within slideThreshold once those already planned are
// done.
func (s *slider) correct(errFrames float64) {
	planned := float64(s.pending)
	if s.dir != 0 {
		planned += float64(s.dir) * (1 - s.shape(s.step))
	}
	if after := errFrames + planned; math.Abs(after) > slideThreshold {
		s.pending -= int(math.Round(after))
	}
}

// Stream implements beep.Streamer.
func (s *slider) Stream(out [][2]float64) (int, bool) {
	i := 0
	for i < len(out) {
		s.begin()
		if s.dir == 0 {
			if !s.fill(s.next) {
				break
			}
			n := copy(out[i:], s.buf[s.next-s.first:])
			s.next += int64(n)
			i += n
			continue
		}
		x := s.position()
		at := int64(math.Floor(x))
		if !s.fill(at) {
			break
		}
		s.fill(at + 2) // the last points may lie past the end: silence
		out[i] = s.interpolate(at, x-float64(at))
		s.advance()
		i++
	}
	return i, i > 0 || len(out) == 0
}

// begin starts a planned slide if none is under way and it ends before
// hold.
func (s *slider) begin() {
	if s.dir == 0 && s.pending != 0 && float64(s.next+int64(s.length)) < s.hold {
		s.dir, s.step = sign(s.pending), 0
		s.pending -= s.dir
		s.slides++
	}
}

// advance moves past one output frame.
func (s *slider) advance() {
	if s.dir == 0 {
		s.next++
		return
	}
	s.step++
	if s.step == s.length {
		s.next += int64(s.length + s.dir)
		s.dir = 0
	}
}

// through is how many of the next n output frames are read at positions
// up to last: through a slide, a frame read between last and last+1 would
// already carry some of last+1.
func (s *slider) through(last float64, n int) int {
	c := *s // a copy that moves, reading nothing
	for i := range n {
		c.begin()
		if c.position() > last {
			return i
		}
		c.advance()
	}
	return n
}

// fill reads src until frame k is in buf, and says whether it is (false:
// src ended before it). Frames before next-1 are dropped: interpolation
// reaches one frame back.
func (s *slider) fill(k int64) bool {
	for !s.ended && k >= s.first+int64(len(s.buf)) {
		if drop := int(min(s.next-1-s.first, int64(len(s.buf)))); drop > 0 && len(s.buf) == cap(s.buf) {
			n := copy(s.buf, s.buf[drop:])
			s.buf, s.first = s.buf[:n], s.first+int64(drop)
		}
		if len(s.buf) == cap(s.buf) {
			break // cannot happen: a slide spans far less than the buffer
		}
		end := min(cap(s.buf), int(k-s.first)+1+sliderReadAhead)
		n, ok := s.src.Stream(s.buf[len(s.buf):end])
		s.buf = s.buf[:len(s.buf)+n]
		s.ended = !ok || n == 0
	}
	return k < s.first+int64(len(s.buf))
}

// frame is frame k of src, silence outside what buf holds.
func (s *slider) frame(k int64) [2]float64 {
	if k < s.first || k >= s.first+int64(len(s.buf)) {
		return [2]float64{}
	}
	return s.buf[k-s.first]
}

// interpolate is src at frame at+frac (0 <= frac < 1): the cubic Lagrange
// polynomial through frames at-1 .. at+2, the interpolation beep's
// resampler uses at quality 2.
func (s *slider) interpolate(at int64, frac float64) [2]float64 {
	y0, y1, y2, y3 := s.frame(at-1), s.frame(at), s.frame(at+1), s.frame(at+2)
	w0 := -frac * (frac - 1) * (frac - 2) / 6
	w1 := (frac + 1) * (frac - 1) * (frac - 2) / 2
	w2 := -(frac + 1) * frac * (frac - 2) / 2
	w3 := (frac + 1) * frac * (frac - 1) / 6
	var out [2]float64
	for c := range out {
		out[c] = w0*y0[c] + w1*y1[c] + w2*y2[c] + w3*y3[c]
	}
	return out
}

func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}
