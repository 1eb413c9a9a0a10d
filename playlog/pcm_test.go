package playlog

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// pcmOf encodes frames of a subframe timecode song from frame first as
// s16le stereo; silent frames after sound frames of it.
func pcmOf(first int64, sound, silent int) []byte {
	var b []byte
	for j := range sound {
		f := audiogen.SubframeTimecode(first + int64(j))
		b = binary.LittleEndian.AppendUint16(b, uint16(f.L))
		b = binary.LittleEndian.AppendUint16(b, uint16(f.R))
	}
	return append(b, make([]byte, 4*silent)...)
}

func TestPCMStreamTimesEachReadsFirstFrame(t *testing.T) {
	s := NewPCMStream(441)
	s.Add(1_000, pcmOf(5000, 441, 0))
	s.Add(2_000, pcmOf(5441, 441, 0))
	s.Add(3_000, append(pcmOf(5882, 441, 0), pcmOf(6323, 441, 0)...)) // the reader was late
	s.Add(4_000, pcmOf(6764, 100, 341))                               // a pause began
	s.Add(5_000, pcmOf(0, 0, 441))                                    // silence
	want := []PCMRead{
		{AtNs: 1_000, Offset: 0, Pos: 5000, Frames: 441},
		{AtNs: 2_000, Offset: 1764, Pos: 5441, Frames: 441},
		{AtNs: 4_000, Offset: 4 * 1764, Pos: 6764, Frames: 100},
	}
	got := s.Reads()
	if len(got) != len(want) {
		t.Fatalf("reads %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("read %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if s.Late() != 1 || s.Bytes() != 6*1764 {
		t.Errorf("late %d, bytes %d; want 1 late read of 2 blocks, %d bytes", s.Late(), s.Bytes(), 6*1764)
	}
}

func TestPCMStreamReadFromMidFrame(t *testing.T) {
	s := NewPCMStream(441)
	block := pcmOf(100, 441, 0)
	s.Add(1, block[:1002])
	s.Add(2, block[1002:])
	got := s.Reads()
	// The second read begins 2 bytes into frame 250: it is timed from 251.
	if len(got) != 2 || got[1].Offset != 1004 || got[1].Pos != 351 || got[1].Frames != 190 {
		t.Fatalf("reads %+v, want the second from byte 1004, frame 351, 190 frames", got)
	}
}

func TestPCMReadBlockMovesToTheWholeFrame(t *testing.T) {
	r := PCMRead{AtNs: 1_000_000_000, Pos: 100.25, Frames: 441}
	b := r.Block(r.AtNs, 44100)
	want := r.AtNs - int64(math.Round(0.25e9/44100))
	if b.Frame != 100 || b.TNs != want || b.Frames != 441 {
		t.Fatalf("%+v, want frame 100 at %d", b, want)
	}
}

func FuzzPCMStream(f *testing.F) {
	f.Add(pcmOf(7, 64, 3), uint16(10), uint16(101))
	f.Add([]byte{1, 2, 3}, uint16(1), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16) {
		s := NewPCMStream(32)
		a, b := min(int(cut1), len(data)), min(int(cut2), len(data))
		a, b = min(a, b), max(a, b)
		for i, chunk := range [][]byte{data[:a], data[a:b], data[b:]} {
			s.Add(int64(i), chunk)
		}
		if s.Bytes() != int64(len(data)) {
			t.Fatalf("%d bytes counted of %d", s.Bytes(), len(data))
		}
		last := int64(-1)
		for _, r := range s.Reads() {
			if r.Offset <= last || r.Offset%4 != 0 || r.Frames < 1 || int64(r.Frames)*4 > int64(len(data))-r.Offset {
				t.Fatalf("read %+v does not fit the %d bytes after offset %d", r, len(data), last)
			}
			last = r.Offset
		}
	})
}
