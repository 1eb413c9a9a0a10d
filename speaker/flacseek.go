package speaker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/mewkiz/flac/frame"
)

// Seeking in a FLAC file. The decoder's own seek reads every frame from the
// seek point before the target, and a file without a seek table has only
// the start: 3.3 s for the end of a 20-minute song here, 78 s for a 12-hour
// one, all on the audio goroutine. flacSeeker bisects over the file's frame
// headers instead: each probe finds the first frame at or after a byte
// offset and reads its first sample number, so a seek costs about
// log2(size/flacSeekWindow) probes of one frame each, whatever the file's
// seek table says.
const (
	// flacSeekWindow is where bisection stops: the decoder then decodes
	// from the frame found up to the target, within this many bytes.
	flacSeekWindow = 16 << 10
	// flacProbeBytes bounds how far past an offset a probe looks for a
	// frame: far more than a frame of stereo audio takes (64 KiB for 4096
	// frames of 32-bit samples, verbatim).
	flacProbeBytes = 1 << 20
	// flacProbeBuffer is what a probe reads at a time: a typical frame
	// (4096 frames of 16-bit stereo) takes under 16 KiB.
	flacProbeBuffer = 16 << 10
)

// flacSeeker opens decoders of one FLAC file that start at any frame.
type flacSeeker struct {
	f         io.ReaderAt
	size      int64
	header    []byte // the file's bytes before its first frame: "fLaC" and the metadata
	blockSize int64  // of fixed-block-size streams: frame number × blockSize is a frame's first sample
}

// newFLACSeeker reads the metadata of the FLAC file f (size bytes): where
// its first frame starts, and its block size.
func newFLACSeeker(f io.ReaderAt, size int64) (*flacSeeker, error) {
	var streamInfo [4]byte // its min and max block sizes
	if _, err := f.ReadAt(streamInfo[:], 8); err != nil {
		return nil, err
	}
	// Metadata blocks follow "fLaC": a 4-byte header each (last-block
	// flag, type, 24-bit length), STREAMINFO first.
	dataStart := int64(4)
	for last := false; !last; {
		var h [4]byte
		if _, err := f.ReadAt(h[:], dataStart); err != nil {
			return nil, fmt.Errorf("flac metadata: %w", err)
		}
		last = h[0]&0x80 != 0
		dataStart += 4 + (int64(h[1])<<16 | int64(h[2])<<8 | int64(h[3]))
		if dataStart > size {
			return nil, errors.New("flac metadata runs past the end of the file")
		}
	}
	blockSize := int64(streamInfo[2])<<8 | int64(streamInfo[3])
	if blockSize == 0 {
		return nil, errors.New("flac stream info: no block size")
	}
	header := make([]byte, dataStart)
	if _, err := f.ReadAt(header, 0); err != nil {
		return nil, err
	}
	return &flacSeeker{f: f, size: size, header: header, blockSize: blockSize}, nil
}

// decoderAt returns a decoder whose next frame is sample (of the song),
// and the format it reports.
func (s *flacSeeker) decoderAt(sample int64) (beep.StreamSeekCloser, error) {
	off, start := s.frameBefore(sample)
	view := io.NewSectionReader(spliced{s, off}, 0, int64(len(s.header))+s.size-off)
	// Not a Closer: the decoder must not close the file (the player does).
	dec, _, err := flac.Decode(struct{ io.ReadSeeker }{view})
	if err != nil {
		return nil, err
	}
	skip := make([][2]float64, 4096)
	for left := sample - start; left > 0; {
		n, ok := dec.Stream(skip[:min(left, int64(len(skip)))])
		left -= int64(n)
		if !ok {
			if err := dec.Err(); err != nil {
				return nil, err
			}
			break // past the end: nothing to play
		}
	}
	return dec, nil
}

// frameBefore returns the offset and first sample of a frame at or before
// sample, at most about flacSeekWindow bytes of frames before it.
func (s *flacSeeker) frameBefore(sample int64) (off, start int64) {
	lo, hi := int64(len(s.header)), s.size
	off, start = lo, 0
	for hi-lo > flacSeekWindow {
		mid := lo + (hi-lo)/2
		at, first, ok := s.probe(mid)
		if !ok || first > sample || at >= hi {
			hi = mid
			continue
		}
		off, start, lo = at, first, at
	}
	return off, start
}

// probe finds the first whole frame at or after offset from: a sync code,
// whose header passes its CRC-8 and whose frame parses and passes its
// CRC-16 (audio data can look like a header; it cannot be both).
func (s *flacSeeker) probe(from int64) (at, first int64, ok bool) {
	buf := make([]byte, flacProbeBuffer+1)
	for base := from; base < min(from+flacProbeBytes, s.size); base += flacProbeBuffer {
		n, err := s.f.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, false
		}
		for i := 0; i+1 < n && i < flacProbeBuffer; i++ {
			j := bytes.IndexByte(buf[i:min(n, flacProbeBuffer)], 0xFF)
			if j < 0 {
				break
			}
			i += j
			if i+1 >= n || buf[i+1]&0xFE != 0xF8 {
				continue
			}
			if first, ok := s.frameAt(base + int64(i)); ok {
				return base + int64(i), first, true
			}
		}
	}
	return 0, 0, false
}

// frameAt parses the frame that would start at off, and returns its first
// sample.
func (s *flacSeeker) frameAt(off int64) (int64, bool) {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, off, s.size-off), 32<<10)
	fr, err := frame.Parse(r)
	if err != nil {
		return 0, false
	}
	if fr.HasFixedBlockSize {
		return int64(fr.Num) * s.blockSize, true
	}
	return int64(fr.Num), true
}

// spliced is the file as a decoder starting at frame offset off sees it:
// the header, then the frames from off on.
type spliced struct {
	s   *flacSeeker
	off int64
}

func (v spliced) ReadAt(p []byte, pos int64) (int, error) {
	n := 0
	if head := int64(len(v.s.header)); pos < head {
		n = copy(p, v.s.header[pos:])
		pos += int64(n)
	}
	if n == len(p) {
		return n, nil
	}
	m, err := v.s.f.ReadAt(p[n:], v.off+pos-int64(len(v.s.header)))
	return n + m, err
}

// openFLAC opens a decoder over f from its start that leaves f open.
func openFLAC(f io.ReadSeeker) (beep.StreamSeekCloser, beep.Format, error) {
	return flac.Decode(struct{ io.ReadSeeker }{f})
}

// fileSize is f's size.
func fileSize(f *os.File) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}
