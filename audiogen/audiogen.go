// Package audiogen makes audio that tutti needs without shipping any: the
// demo's songs and the timecode songs that tests and benchmarks play. A
// timecode song carries its own frame index in every sample, so whoever
// records what a speaker played can tell exactly which frame was heard when.
package audiogen

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
)

// Frame is one stereo sample frame of 16-bit PCM.
type Frame struct{ L, R int16 }

// WriteWAV writes a 16-bit stereo PCM WAV file of frames frames at rate,
// taking frame i from sample(i).
func WriteWAV(w io.Writer, rate int, frames int64, sample func(i int64) Frame) error {
	bw := bufio.NewWriter(w)
	dataLen := uint32(frames * 4)
	header := []any{
		[4]byte{'R', 'I', 'F', 'F'}, 36 + dataLen, [4]byte{'W', 'A', 'V', 'E'},
		[4]byte{'f', 'm', 't', ' '}, uint32(16), uint16(1), uint16(2),
		uint32(rate), uint32(rate * 4), uint16(4), uint16(16),
		[4]byte{'d', 'a', 't', 'a'}, dataLen,
	}
	for _, field := range header {
		if err := binary.Write(bw, binary.LittleEndian, field); err != nil {
			return err
		}
	}
	var buf [4]byte
	for i := range frames {
		f := sample(i)
		binary.LittleEndian.PutUint16(buf[0:], uint16(f.L))
		binary.LittleEndian.PutUint16(buf[2:], uint16(f.R))
		if _, err := bw.Write(buf[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Timecode is the sample of frame i of a timecode song: the left channel
// holds the low 16 bits of i, the right channel the high bits plus one, so
// that no frame of the song is all zero and silence is never mistaken for it.
func Timecode(i int64) Frame {
	return Frame{L: int16(uint16(i)), R: int16(i>>16 + 1)}
}

// ReadTimecode returns the frame index a Timecode sample carries; ok is false
// for silence (R == 0).
func ReadTimecode(f Frame) (frame int64, ok bool) {
	if f.R <= 0 {
		return 0, false
	}
	return int64(f.R-1)<<16 | int64(uint16(f.L)), true
}

// Tune is a short generated piece for the demo: an arpeggio over a chord
// progression chosen by seed, a soft sine voice with a plucked envelope, the
// two channels a little apart so stereo can be heard.
func Tune(seed int, rate int) func(i int64) Frame {
	roots := []float64{220, 246.94, 261.63, 293.66, 329.63, 196, 174.61}
	root := roots[seed%len(roots)]
	progression := [][3]float64{{1, 1.25, 1.5}, {0.75, 0.9375, 1.125}, {0.8333, 1.0417, 1.25}, {0.6667, 0.8333, 1}}
	noteFrames := int64(rate) / 4 // eighth notes at 120 bpm
	return func(i int64) Frame {
		note := i / noteFrames
		chord := progression[(note/8+int64(seed))%int64(len(progression))]
		freq := root * chord[note%3] * float64(1+note%8/3)
		t := float64(i%noteFrames) / float64(rate)
		env := math.Exp(-t*6) * 0.35
		phase := 2 * math.Pi * freq * float64(i) / float64(rate)
		l := env * (math.Sin(phase) + 0.3*math.Sin(2*phase))
		r := env * (math.Sin(phase+0.3) + 0.3*math.Sin(3*phase))
		return Frame{L: int16(l * 32767), R: int16(r * 32767)}
	}
}
