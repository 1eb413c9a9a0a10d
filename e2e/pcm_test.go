package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// A speaker on the pipe output writes what it plays as raw PCM (s16le
// stereo) and logs each block it wrote, in order, one line per block (and
// a line per underrun, which wrote nothing): the log tells when each
// stretch of the PCM was heard.

// pcmPath is where speaker name's pipe output writes.
func (s *system) pcmPath(name string) string { return filepath.Join(s.dir, name+".pcm") }

// startPipeSpeaker runs a speaker on the pipe output, bit-exact, so that
// its PCM holds the songs' samples as they are (times their gain).
func (s *system) startPipeSpeaker(name string) {
	s.startSpeaker(name, "--output", "pipe", "--pipe", s.pcmPath(name), "--bit-exact")
}

// walkPCM hands fn each frame speaker name's pipe output wrote, with the
// instant it was heard, in order.
func (s *system) walkPCM(name string, fn func(at int64, f audiogen.Frame)) {
	s.t.Helper()
	pcm, err := os.ReadFile(s.pcmPath(name))
	if err != nil {
		s.t.Fatal(err)
	}
	offset := 0 // bytes of the blocks before
	for _, l := range readLines(s.t, s.logs[name]) {
		if l.Underrun {
			continue
		}
		if offset+4*l.Frames > len(pcm) {
			return
		}
		for k := range l.Frames {
			b := pcm[offset+4*k:]
			fn(l.TNs+int64(k)*1e9/int64(l.Rate), audiogen.Frame{L: int16(binary.LittleEndian.Uint16(b)), R: int16(binary.LittleEndian.Uint16(b[2:]))})
		}
		offset += 4 * l.Frames
	}
}

// pcmHeard returns the frames speaker name's pipe output played between
// from and to.
func (s *system) pcmHeard(name string, from, to int64) []audiogen.Frame {
	s.t.Helper()
	var frames []audiogen.Frame
	s.walkPCM(name, func(at int64, f audiogen.Frame) {
		if at >= from && at < to {
			frames = append(frames, f)
		}
	})
	return frames
}

// levels counts each absolute sample value of frames, whose two channels
// must be alike, and finds the peak.
func levels(t *testing.T, frames []audiogen.Frame) (count map[int]int, peak int) {
	t.Helper()
	count = map[int]int{}
	for i, f := range frames {
		if f.L != f.R {
			t.Fatalf("frame %d: left %d, right %d; the songs are the same on both", i, f.L, f.R)
		}
		a := max(int(f.L), -int(f.L))
		count[a]++
		peak = max(peak, a)
	}
	return count, peak
}
