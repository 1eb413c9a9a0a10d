package playlog

import (
	"encoding/binary"
	"math"

	"github.com/tutti-audio/tutti/audiogen"
)

// PCMRead is one read of a speaker's raw PCM output (s16le stereo) that
// began with a subframe timecode song's sound: what an outside reader of
// the output saw leave, and when.
type PCMRead struct {
	AtNs   int64   // when the read returned, Unix ns
	Offset int64   // byte offset in the stream of the read's first whole frame
	Pos    float64 // song position of that frame, in frames with their fraction
	Frames int     // frames of sound from that frame on
}

// Block is the read as a Block whose first frame was heard at tNs (the
// read's instant, or another instant of the same frame): its whole frame,
// at the instant that frame was played.
func (r PCMRead) Block(tNs int64, rate int) Block {
	whole := math.Floor(r.Pos)
	return Block{TNs: tNs - int64(math.Round((r.Pos-whole)*1e9/float64(rate))), Frame: int64(whole), Frames: r.Frames}
}

// PCMStream follows one speaker's PCM output as its reader reads it.
type PCMStream struct {
	maxRead int   // bytes a read may hold and still be on time
	offset  int64 // bytes read so far
	frames  []audiogen.Frame
	reads   []PCMRead
	late    int
}

// NewPCMStream follows a stream written a block of blockFrames frames at a
// time. A read that holds more than one block was late: the reader woke
// after a later write, so its instant is not when the first block left.
func NewPCMStream(blockFrames int) *PCMStream {
	return &PCMStream{maxRead: 4 * blockFrames, frames: make([]audiogen.Frame, 0, blockFrames)}
}

// Add takes what one read returned and when it returned.
func (s *PCMStream) Add(atNs int64, p []byte) {
	start := s.offset
	s.offset += int64(len(p))
	if len(p) > s.maxRead {
		s.late++
		return
	}
	skip := int((4 - start%4) % 4) // a read that begins mid-frame: from the next frame
	if skip >= len(p) {
		return
	}
	s.frames = s.frames[:0]
	for b := p[skip:]; len(b) >= 4; b = b[4:] {
		f := audiogen.Frame{L: int16(binary.LittleEndian.Uint16(b)), R: int16(binary.LittleEndian.Uint16(b[2:]))}
		if f.L == 0 && f.R == 0 {
			break // silence from here on
		}
		s.frames = append(s.frames, f)
	}
	pos, ok := audiogen.ReadSubframeTimecode(s.frames)
	if !ok {
		return
	}
	s.reads = append(s.reads, PCMRead{AtNs: atNs, Offset: start + int64(skip), Pos: pos, Frames: len(s.frames)})
}

// Reads returns the reads so far that began with timecoded sound, in order.
func (s *PCMStream) Reads() []PCMRead { return s.reads }

// Late returns how many reads were dropped for holding more than a block.
func (s *PCMStream) Late() int { return s.late }

// Bytes returns how many bytes were read.
func (s *PCMStream) Bytes() int64 { return s.offset }
