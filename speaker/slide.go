package speaker

import (
	"math"
	"time"

	"github.com/gopxl/beep/v2"
)

// Placement on the timeline. A player hands its song's frames to the
// output (a song of another rate is resampled first, at the fixed ratio of
// the two rates) and follows the timeline by slides: when its position is
// off by more than a threshold, it slides over slideTime, reading the song
// at fractional positions by cubic interpolation.
//
// By default a slide lands where the timeline is, to the fraction of a
// frame (subframe), and between slides the player moves at the rate it
// measures the timeline to move against the output (timelinerate.go), so
// that its placement error is the clock estimate's alone (TestPlacementError:
// p50 0.5 µs where whole frames leave 5-7 µs). With equal clocks it reads the
// song at a constant fractional delay, a fixed filter (the cubic's weights
// at that fraction: at half a frame -0.7 dB at 10 kHz, -3.5 dB at 15 kHz,
// TestSubframeResponse); with clocks apart the fraction sweeps, as a
// resampler's does. With wholeFrames it slides by whole frames and lands on
// whole frames: between slides what is heard is the song sample for sample,
// but up to half a frame (11 µs at 44.1 kHz) off the timeline, so two
// speakers may stay up to 2×slideThreshold frames (25 µs) apart.
//
// The position through a slide follows a raised cosine: the speed changes
// smoothly and peaks at π/2 frames per slide off nominal for a slide of one
// frame (0.07 % for 50 ms, 1.2 cents), where dropping or repeating a frame
// puts a step in the waveform, a click. Measured on a sine
// (TestSlideArtefacts), a slide adds nothing above the song's own floor more
// than 500 Hz from the tone (a dropped frame: -43 dB at 1 kHz, -24 dB at
// 10 kHz); what it moves stays within the tone's critical band, where the
// tone masks it; subframe slides, which take up a clock estimate's steps of
// a fraction of a frame, put 20 dB less there than whole-frame ones. With
// clocks 100 ppm apart whole-frame slides come every 227 ms, so 22 % of the
// time is interpolated. Slides back to back correct up to 450 ppm.
type placement int

const (
	// subframe lands slides on the timeline's fractional position.
	subframe placement = iota
	// wholeFrames slides by whole frames only: bit-exact between slides.
	wholeFrames
)

const (
	// slideThreshold is the position error, in frames, beyond which a
	// player placing by whole frames slides. Whole frames leave up to half
	// a frame of error; the margin keeps the clock estimate's jitter on a
	// wired network (1-3 µs) from sliding back and forth around the half.
	slideThreshold = 0.55
	// subframeThreshold is the position error, in frames, beyond which a
	// player placing to the fraction of a frame slides: 1.1 µs at
	// 44.1 kHz, below the clock estimate's own jitter on a wired network,
	// so that placement adds next to nothing to the clock's error.
	subframeThreshold = 0.05
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

// slider streams src at its positions: verbatim at whole frames, through
// the cubic between them. Positions are in frames of src from its start.
type slider struct {
	src   beep.Streamer
	place placement
	buf   [][2]float64 // decoded frames from first on
	first int64
	ended bool // src has no more frames
	// The position at rest is next+frac: next is the frame the next one
	// out is read at (or after), and a slide starts from it.
	next int64
	frac float64 // in [0, 1); always 0 with wholeFrames
	// speed is how many frames of src more than one each output frame
	// moves on (subframe only): the rate the timeline moves at against the
	// output, as the corrections tell it, so that slides only take up the
	// clock estimate's steps instead of chasing the drift.
	speed   float64
	rate    rateTrack
	out     int64   // output frames streamed
	length  int     // output frames of one slide
	move    float64 // frames the slide under way moves (+: ahead), at most one; 0: none
	step    int     // output frames of it done
	pending float64 // frames to slide by after it
	// hold is the last position to read (a pause's), which no slide
	// crosses: it stops there, as every other speaker.
	hold   float64
	slides int64 // slides started
}

// slideFrames is how many output frames a slide takes at rate.
func slideFrames(rate int) int {
	return max(4, int(int64(rate)*int64(slideTime)/int64(time.Second)))
}

// newSlider returns a slider over src at rate placing as place, holding
// frames in buf (any length: it is resized as needed).
func newSlider(src beep.Streamer, rate int, place placement, buf [][2]float64) *slider {
	length := slideFrames(rate)
	if size := max(sliderBuffer, 2*length+8); cap(buf) < size {
		buf = make([][2]float64, 0, size)
	}
	return &slider{src: src, place: place, buf: buf[:0], length: length, hold: math.Inf(1)}
}

// land sets where a slider that has streamed nothing yet starts, in frames
// of src and their fraction.
func (s *slider) land(at float64) {
	s.next, s.frac = 0, 0
	s.rest(at)
}

// rest moves the resting position by d frames.
func (s *slider) rest(d float64) {
	at := s.frac + d
	whole := math.Floor(at)
	s.next += int64(whole)
	s.frac = at - whole
	if s.frac >= 1 { // at - whole rounded up, for at just below a whole frame
		s.next++
		s.frac = 0
	}
}

// position is where the next output frame is read, in frames of src.
func (s *slider) position() float64 {
	at := float64(s.next) + s.frac
	if s.move != 0 {
		at += float64(s.step) + s.move*s.shape(s.step)
	}
	return at
}

// shape is how far, as a fraction of its move, a slide has moved after
// step of its output frames: a raised cosine, so the speed changes smoothly.
func (s *slider) shape(step int) float64 {
	return (1 - math.Cos(math.Pi*float64(step)/float64(s.length))) / 2
}

// correct takes the position error (frames; positive: ahead of the
// timeline) and plans the slides that bring it within half a frame (whole
// frames) or to the timeline (subframe), unless it is within the threshold
// once those already planned are done.
func (s *slider) correct(errFrames float64) {
	if s.place == subframe {
		s.speed = s.rate.speed(s.out, s.position()-errFrames, s.speed)
	}
	after := errFrames + s.pending
	if s.move != 0 {
		after += s.move * (1 - s.shape(s.step))
	}
	switch {
	case s.place == wholeFrames && math.Abs(after) > slideThreshold:
		s.pending -= math.Round(after)
	case s.place == subframe && math.Abs(after) > subframeThreshold:
		s.pending -= after
	}
}

// Stream implements beep.Streamer.
func (s *slider) Stream(out [][2]float64) (int, bool) {
	i := 0
	for i < len(out) {
		s.begin()
		if s.move == 0 {
			if !s.fill(s.next) {
				break
			}
			var n int
			if s.frac == 0 && s.speed == 0 {
				n = copy(out[i:], s.buf[s.next-s.first:])
				s.next += int64(n)
				s.out += int64(n)
			} else {
				n = s.sweep(out[i:])
			}
			if n > 0 {
				i += n
				continue
			}
		}
		// Through a slide, and next to the source's start and end: frame
		// by frame.
		x := s.position()
		at := int64(math.Floor(x))
		if !s.fill(at) {
			break
		}
		s.fill(at + 2) // the last points may lie past the end: silence
		out[i] = s.interpolate(at, cubicWeights(x-float64(at)))
		s.advance()
		i++
	}
	return i, i > 0 || len(out) == 0
}

// sweep fills out at rest between frames, moving at speed, as far as buf
// holds the four frames each output frame is read from (not next to the
// source's start and end), and says how many it filled.
func (s *slider) sweep(out [][2]float64) int {
	s.fill(s.next + 2)
	from := s.next - 1 - s.first
	if from < 0 {
		return 0
	}
	// Frames out before the next position past what buf holds: the
	// position moves at most 1+maxSpeed a frame.
	n := min(len(out), int(float64(int64(len(s.buf))-from-4)/(1+maxSpeed)))
	if n <= 0 {
		return 0
	}
	w := cubicWeights(s.frac)
	for j := range out[:n] {
		if s.speed != 0 {
			w = cubicWeights(s.frac)
		}
		in := s.buf[s.next-1-s.first:][:4]
		out[j] = [2]float64{
			w[0]*in[0][0] + w[1]*in[1][0] + w[2]*in[2][0] + w[3]*in[3][0],
			w[0]*in[0][1] + w[1]*in[1][1] + w[2]*in[2][1] + w[3]*in[3][1],
		}
		s.rest(1 + s.speed)
	}
	s.out += int64(n)
	return n
}

// begin starts a planned slide if none is under way and it ends before
// hold.
func (s *slider) begin() {
	if s.move == 0 && s.pending != 0 && float64(s.next+int64(s.length)) < s.hold {
		s.move, s.step = max(-1, min(1, s.pending)), 0
		s.pending -= s.move
		s.slides++
	}
}

// advance moves past one output frame.
func (s *slider) advance() {
	s.out++
	if s.move == 0 {
		s.rest(1 + s.speed)
		return
	}
	s.step++
	if s.step < s.length {
		s.rest(s.speed)
		return
	}
	s.rest(float64(s.length) + s.move + s.speed)
	s.move = 0
}

// through is how many of the next n output frames are read at positions
// up to last: a frame read between last and last+1 would already carry
// some of last+1.
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

// interpolate is src at frame at plus the fraction w holds the weights of
// (silence outside what buf holds).
func (s *slider) interpolate(at int64, w [4]float64) [2]float64 {
	y0, y1, y2, y3 := s.frame(at-1), s.frame(at), s.frame(at+1), s.frame(at+2)
	var out [2]float64
	for c := range out {
		out[c] = w[0]*y0[c] + w[1]*y1[c] + w[2]*y2[c] + w[3]*y3[c]
	}
	return out
}

// cubicWeights are the weights of frames at-1 .. at+2 that give src at
// at+frac (0 <= frac < 1): the cubic Lagrange polynomial through them, the
// interpolation beep's resampler uses at quality 2.
func cubicWeights(frac float64) [4]float64 {
	return [4]float64{
		-frac * (frac - 1) * (frac - 2) / 6,
		(frac + 1) * (frac - 1) * (frac - 2) / 2,
		-(frac + 1) * frac * (frac - 2) / 2,
		(frac + 1) * frac * (frac - 1) / 6,
	}
}
