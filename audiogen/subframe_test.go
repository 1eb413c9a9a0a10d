package audiogen

import (
	"math"
	"testing"
)

// playBetween returns n frames of a subframe timecode song played from
// position start (in frames, with a fraction) at speed, interpolated
// linearly between frames and rounded to 16 bits as a steering player does.
func playBetween(start, speed float64, n int) []Frame {
	out := make([]Frame, n)
	for j := range out {
		p := start + float64(j)*speed
		i := int64(math.Floor(p))
		frac := p - float64(i)
		a, b := SubframeTimecode(i), SubframeTimecode(i+1)
		lerp := func(x, y int16) int16 { return int16(math.Round(float64(x) + frac*float64(int(y)-int(x)))) }
		out[j] = Frame{L: lerp(a.L, b.L), R: lerp(a.R, b.R)}
	}
	return out
}

func TestSubframeTimecodeReadsBetweenFrames(t *testing.T) {
	for _, start := range []float64{0, 1, 100.25, 1023.5, 1020.75, 512.5, 44100*60 + 0.1, SubframeTimecodeFrames - 100.9} {
		for _, speed := range []float64{1, 1 + 500e-6, 1 - 500e-6} {
			pos, ok := ReadSubframeTimecode(playBetween(start, speed, 441))
			if !ok || math.Abs(pos-start) > 1.0/64 {
				t.Errorf("from %.4f at speed %.4f: read %.4f ok=%v, want within 1/64 frame", start, speed, pos, ok)
			}
		}
	}
}

func TestSubframeTimecodeFramesAreNeverSilence(t *testing.T) {
	for _, i := range []int64{0, 511, 512, 1023, 1024, SubframeTimecodeFrames - 1} {
		if f := SubframeTimecode(i); f.R <= 0 {
			t.Errorf("frame %d: %+v has no count", i, f)
		}
	}
}

func TestReadSubframeTimecodeRefusesWhatIsNotIt(t *testing.T) {
	silence := make([]Frame, 441)
	faded := playBetween(5000, 1, 441)
	for j := range faded {
		faded[j].L = int16(float64(faded[j].L) * float64(j) / 441)
	}
	tune := make([]Frame, 441)
	for j := range tune {
		tune[j] = Tune(1, 44100)(int64(j))
	}
	for name, frames := range map[string][]Frame{"silence": silence, "fade-in": faded, "a tune": tune, "empty": nil} {
		if pos, ok := ReadSubframeTimecode(frames); ok {
			t.Errorf("%s read as position %.3f", name, pos)
		}
	}
}

func FuzzReadSubframeTimecode(f *testing.F) {
	f.Add([]byte{0, 0x80, 1, 0, 0x40, 0x80, 1, 0})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		frames := make([]Frame, len(b)/4)
		for j := range frames {
			frames[j] = Frame{L: int16(uint16(b[4*j]) | uint16(b[4*j+1])<<8), R: int16(uint16(b[4*j+2]) | uint16(b[4*j+3])<<8)}
		}
		pos, ok := ReadSubframeTimecode(frames)
		if ok && (pos < -1 || pos > SubframeTimecodeFrames+1 || math.IsNaN(pos)) {
			t.Fatalf("position %v out of the signal's range", pos)
		}
	})
}
