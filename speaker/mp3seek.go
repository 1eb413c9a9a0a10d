package speaker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gopxl/beep/v2"
	gomp3 "github.com/hajimehoshi/go-mp3"
)

// Opening and seeking an MP3 file. go-mp3, given a file it can seek, reads
// every frame header of it when it opens, to index the frames (77 ms for
// 20 minutes at 128 kbit/s here, 1.4 s for 6 hours), and its own seek
// starts one frame early without the bit reservoir, so its first frame
// after a seek differs from a decode from the start. Instead the cache
// indexes a song once, off the audio path, when it is verified
// (indexMP3), and a player opens go-mp3 over a plain reader that starts
// just before the sample it wants (mp3Seeker.decoderAt): a made-up silent
// frame carrying the bit reservoir, then the song from two frames before
// the one holding the sample. What comes out is bit for bit what a decode
// from the start gives, with go-mp3's own start offset (its first frame
// is the encoder's info frame, decoded as silence) kept.
const (
	// mp3IndexStride is the number of frames between index marks: a seek
	// walks at most this many frame headers from a mark (1.7 s of audio,
	// 27 KB at 128 kbit/s), and the index of a 6-hour song holds 13,000
	// marks (200 KB).
	mp3IndexStride = 64
	// mp3MaxReservoir is how many bytes of main data a frame may take from
	// the frames before it (main_data_begin has 9 bits).
	mp3MaxReservoir = 511
	// mp3PrerollFrames are decoded and dropped before the frame holding
	// the wanted sample. The first has its own audio data exact (the
	// reservoir frame carries what it takes from before) but overlaps it
	// with nothing, so what it outputs, and leaves in the synthesis
	// filterbank's history, is off; the second overlaps with the first's
	// exact tail and refills the history (1024 values, 18×64 a granule)
	// with exact output. Then the wanted frame decodes as from the start.
	// (An MPEG-1 frame holds two granules, and one frame would do; an
	// MPEG-2 frame, lame's choice at 64 kbit/s and below, holds one.)
	mp3PrerollFrames = 2
	// mp3BitrateIndexMax selects the largest frame of a sample rate: the
	// made-up frame must hold mp3MaxReservoir bytes of main data.
	mp3BitrateIndexMax = 14
)

// mp3Header is a frame's 32-bit header, read as go-mp3 reads it.
type mp3Header uint32

// valid is go-mp3's test for a frame header: the decoder takes the first
// four bytes after a frame that pass it as the next frame.
func (h mp3Header) valid() bool {
	return h&0xFFE00000 == 0xFFE00000 &&
		h.version() != 1 && // reserved
		h.bitrateIndex() != 15 &&
		h.rateIndex() != 3 &&
		h.layer() != 0 &&
		h&3 != 2 // reserved emphasis
}

func (h mp3Header) version() int      { return int(h>>19) & 3 } // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
func (h mp3Header) layer() int        { return int(h>>17) & 3 } // 1: layer III
func (h mp3Header) hasCRC() bool      { return h&(1<<16) == 0 }
func (h mp3Header) bitrateIndex() int { return int(h>>12) & 15 }
func (h mp3Header) rateIndex() int    { return int(h>>10) & 3 }
func (h mp3Header) padding() int      { return int(h>>9) & 1 }
func (h mp3Header) mono() bool        { return (h>>6)&3 == 3 }

// lsf is 1 for MPEG-2's low sampling frequencies, 0 for MPEG-1.
func (h mp3Header) lsf() int {
	if h.version() == 3 {
		return 0
	}
	return 1
}

// playable says whether go-mp3 decodes the frame (it fails on the others).
func (h mp3Header) playable() error {
	switch {
	case h.version() == 0:
		return errors.New("MPEG 2.5 is not supported")
	case h.layer() != 1:
		return errors.New("only layer III is supported")
	case h.bitrateIndex() == 0:
		return errors.New("free bitrate is not supported")
	}
	return nil
}

var mp3Bitrates = [2][15]int{ // layer III, in bit/s: MPEG-1, MPEG-2
	{0, 32000, 40000, 48000, 56000, 64000, 80000, 96000, 112000, 128000, 160000, 192000, 224000, 256000, 320000},
	{0, 8000, 16000, 24000, 32000, 40000, 48000, 56000, 64000, 80000, 96000, 112000, 128000, 144000, 160000},
}

// size is the frame's length in bytes, header included, as go-mp3 computes
// it (for MPEG-2, halving the MPEG-1 formula with the padding byte).
func (h mp3Header) size() int {
	rate := [3]int{44100, 48000, 32000}[h.rateIndex()] >> h.lsf()
	return (144*mp3Bitrates[h.lsf()][h.bitrateIndex()]/rate + h.padding()) >> h.lsf()
}

// samples is the number of stereo samples go-mp3 makes of the frame.
func (h mp3Header) samples() int64 { return 1152 >> h.lsf() }

// mainDataStart is where the frame's main data starts: after the header,
// the CRC and the side information.
func (h mp3Header) mainDataStart() int {
	n := 4
	if h.hasCRC() {
		n += 2
	}
	switch {
	case h.lsf() == 1 && h.mono():
		n += 9
	case h.lsf() == 1, h.mono():
		n += 17
	default:
		n += 32
	}
	return n
}

// mp3Frames walks the frames of an MP3 file as go-mp3 finds them: each is
// the first valid header at or after the end of the one before.
type mp3Frames struct {
	r   *bufio.Reader
	off int64 // of the next byte of r
}

// next returns the next frame's header and offset, and skips its body;
// io.EOF once there is none. A frame cut short by the end of the file
// counts, as it does in go-mp3's length.
func (w *mp3Frames) next() (mp3Header, int64, error) {
	var b [4]byte
	if _, err := io.ReadFull(w.r, b[:]); err != nil {
		return 0, 0, io.EOF
	}
	h := mp3Header(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	at := w.off
	w.off += 4
	for !h.valid() {
		c, err := w.r.ReadByte()
		if err != nil {
			return 0, 0, io.EOF
		}
		h = h<<8 | mp3Header(c)
		at++
		w.off++
	}
	if err := h.playable(); err != nil {
		return 0, 0, fmt.Errorf("mp3 frame at byte %d: %w", at, err)
	}
	n, _ := w.r.Discard(h.size() - 4)
	w.off += int64(n)
	return h, at, nil
}

// skipTags skips what go-mp3 skips before the first frame: an ID3v2 tag,
// or a 128-byte ID3v1 tag.
func (w *mp3Frames) skipTags() error {
	head, err := w.r.Peek(10)
	if err != nil && len(head) < 3 {
		return fmt.Errorf("mp3 header: %w", err)
	}
	skip := 0
	switch {
	case string(head[:3]) == "TAG":
		skip = 128
	case string(head[:3]) == "ID3" && len(head) == 10:
		skip = 10 + (int(head[6])<<21 | int(head[7])<<14 | int(head[8])<<7 | int(head[9]))
	}
	n, err := w.r.Discard(skip)
	w.off += int64(n)
	if err != nil {
		return fmt.Errorf("mp3 tag: %w", err)
	}
	return nil
}

// mp3Mark is where a frame starts: its offset and its first sample.
type mp3Mark struct{ off, sample int64 }

// mp3Index is what opening and seeking an MP3 file needs to know of it:
// where every mp3IndexStride-th frame starts, and its length.
type mp3Index struct {
	marks   []mp3Mark // of frames 0, mp3IndexStride, 2×mp3IndexStride…
	samples int64     // as go-mp3 counts them
}

// indexMP3 reads every frame header of an MP3 file.
func indexMP3(r io.Reader) (*mp3Index, error) {
	w := &mp3Frames{r: bufio.NewReaderSize(r, 64<<10)}
	if err := w.skipTags(); err != nil {
		return nil, err
	}
	idx := &mp3Index{}
	for frame := 0; ; frame++ {
		h, at, err := w.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if frame%mp3IndexStride == 0 {
			idx.marks = append(idx.marks, mp3Mark{at, idx.samples})
		}
		idx.samples += h.samples()
	}
	if len(idx.marks) == 0 {
		return nil, errors.New("no mp3 frame")
	}
	return idx, nil
}

// isMP3 says whether a file starting with magic is one for the MP3
// decoder: it is what no other decoder claims.
func isMP3(magic []byte) bool {
	for _, other := range []string{"RIFF", "fLaC", "OggS"} {
		if bytes.HasPrefix(magic, []byte(other)) {
			return false
		}
	}
	// An M4A, replicated with the library: speakers play its FLAC
	// conversion instead.
	return len(magic) < 8 || string(magic[4:8]) != "ftyp"
}

// indexSongFile indexes the song file at path if it is an MP3.
func indexSongFile(path string) (index *mp3Index, isMP3File bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	magic, err := r.Peek(8)
	if err != nil || !isMP3(magic) {
		return nil, false, nil // too short for any decoder, or another format
	}
	index, err = indexMP3(r)
	return index, true, err
}

// mp3Seeker opens decoders of one indexed MP3 file that start anywhere.
type mp3Seeker struct {
	f     io.ReaderAt
	size  int64
	index *mp3Index
}

// newMP3Seeker is a seeker over the verified MP3 song sha, open as f.
func newMP3Seeker(sha string, f *os.File, mp3Index func(sha string) (*mp3Index, error)) (*mp3Seeker, error) {
	if mp3Index == nil {
		return nil, errors.New("mp3: no frame index")
	}
	index, err := mp3Index(sha)
	if err != nil {
		return nil, fmt.Errorf("mp3 frame index: %w", err)
	}
	size, err := fileSize(f)
	if err != nil {
		return nil, err
	}
	return &mp3Seeker{f: f, size: size, index: index}, nil
}

// mp3Frame is one frame found walking from a mark.
type mp3Frame struct {
	h      mp3Header
	off    int64
	sample int64
}

// decoderAt returns a decoder whose next sample is sample (of the song,
// clamped to its length) and the format it reports.
func (s *mp3Seeker) decoderAt(sample int64) (beep.StreamSeekCloser, beep.Format, error) {
	sample = min(max(sample, 0), s.index.samples)
	frames, at, err := s.framesBefore(sample)
	if err != nil {
		return nil, beep.Format{}, err
	}
	var src io.Reader
	var skip int64
	if at == 0 { // framesBefore walked from the first mark
		// From the song's first frame, as a decode from the start (which
		// would read the tags before it into memory first).
		first := s.index.marks[0].off
		src = io.NewSectionReader(s.f, first, s.size-first)
		skip = sample
	} else {
		first := frames[at]
		silent, err := s.reservoirFrame(frames[:at], first.h)
		if err != nil {
			return nil, beep.Format{}, err
		}
		src = io.MultiReader(bytes.NewReader(silent), io.NewSectionReader(s.f, first.off, s.size-first.off))
		skip = first.h.samples() + sample - first.sample
	}
	dec, format, err := newMP3Stream(src, int(s.index.samples))
	if err != nil {
		return nil, beep.Format{}, err
	}
	buf := make([][2]float64, 4096)
	for skip > 0 {
		n, ok := dec.Stream(buf[:min(skip, int64(len(buf)))])
		skip -= int64(n)
		if !ok {
			if err := dec.Err(); err != nil {
				return nil, beep.Format{}, err
			}
			break
		}
	}
	return dec, format, nil
}

// framesBefore walks the frames from a mark up to the one holding sample,
// and returns them and the index of the first to decode in them:
// mp3PrerollFrames before that one, with at least mp3MaxReservoir bytes of
// main data in the frames before it (or the song's start).
func (s *mp3Seeker) framesBefore(sample int64) ([]mp3Frame, int, error) {
	m := sort.Search(len(s.index.marks), func(i int) bool { return s.index.marks[i].sample > sample }) - 1
	m = max(m, 0)
	for ; ; m-- {
		frames, err := s.walk(s.index.marks[m], sample)
		if err != nil {
			return nil, 0, err
		}
		at := max(len(frames)-1-mp3PrerollFrames, 0)
		reservoir := 0
		for _, f := range frames[:at] {
			reservoir += f.h.size() - f.h.mainDataStart()
		}
		if reservoir >= mp3MaxReservoir || m == 0 {
			return frames, at, nil
		}
	}
}

// walk returns the frames from mark on up to the one holding sample (the
// last frame, if sample is the end).
func (s *mp3Seeker) walk(mark mp3Mark, sample int64) ([]mp3Frame, error) {
	w := &mp3Frames{r: bufio.NewReaderSize(io.NewSectionReader(s.f, mark.off, s.size-mark.off), 4<<10), off: mark.off}
	var frames []mp3Frame
	for next := mark.sample; ; {
		h, at, err := w.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		frames = append(frames, mp3Frame{h, at, next})
		next += h.samples()
		if next > sample {
			break
		}
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("mp3: no frame at byte %d, where the index has one", mark.off)
	}
	return frames, nil
}

// reservoirFrame makes the frame that go-mp3 decodes first when it starts
// at a frame with header like: silent (no bits of audio), and whose main
// data ends with the main data of the frames before (the bit reservoir the
// next frame reads from).
func (s *mp3Seeker) reservoirFrame(before []mp3Frame, like mp3Header) ([]byte, error) {
	const kept = 0xFFFE0000 | 3<<10 | 3<<6 | 3      // sync, version, layer, sample rate, mode, emphasis
	h := like&kept | 1<<16 | mp3BitrateIndexMax<<12 // no CRC, no padding
	frame := make([]byte, h.size())
	frame[0], frame[1], frame[2], frame[3] = byte(h>>24), byte(h>>16), byte(h>>8), byte(h)
	main := frame[h.mainDataStart():]
	end := len(main)
	for i := len(before) - 1; i >= 0 && end > 0; i-- {
		f := before[i]
		area := make([]byte, f.h.size()-f.h.mainDataStart())
		if _, err := s.f.ReadAt(area, f.off+int64(f.h.mainDataStart())); err != nil {
			return nil, fmt.Errorf("mp3 frame at byte %d: %w", f.off, err)
		}
		n := min(len(area), end)
		copy(main[end-n:end], area[len(area)-n:])
		end -= n
	}
	return frame, nil
}

// mp3StreamChunk is how many samples mp3Stream reads from go-mp3 at a
// time: one MPEG-1 frame's.
const mp3StreamChunk = 1152

// mp3Stream is an MP3 decoder reading its file as a stream: go-mp3's
// 16-bit PCM as beep's samples, x/32768 (the same bits as beep's mp3
// package gives, which reads go-mp3 one sample, four bytes, a call). Its
// length is the song's; it cannot seek (a player asks the mp3Seeker for
// another decoder, or its streamDecoder decodes forward).
type mp3Stream struct {
	d       *gomp3.Decoder
	samples int
	pos     int
	err     error
	pcm     [4 * mp3StreamChunk]byte
}

// newMP3Stream decodes r, whose song is samples long, from its start.
func newMP3Stream(r io.Reader, samples int) (*mp3Stream, beep.Format, error) {
	d, err := gomp3.NewDecoder(struct{ io.Reader }{r}) // not a Seeker: go-mp3 does not scan it
	if err != nil {
		return nil, beep.Format{}, fmt.Errorf("mp3: %w", err)
	}
	format := beep.Format{SampleRate: beep.SampleRate(d.SampleRate()), NumChannels: 2, Precision: 2}
	return &mp3Stream{d: d, samples: samples}, format, nil
}

func (d *mp3Stream) Stream(out [][2]float64) (n int, ok bool) {
	for n < len(out) && d.err == nil {
		// go-mp3 hands out whole samples: it decodes frames of them.
		got, err := d.d.Read(d.pcm[:4*min(len(out)-n, mp3StreamChunk)])
		for i := 0; i+4 <= got; i += 4 {
			out[n] = [2]float64{
				float64(int16(binary.LittleEndian.Uint16(d.pcm[i:]))) / 32768,
				float64(int16(binary.LittleEndian.Uint16(d.pcm[i+2:]))) / 32768,
			}
			n++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.err = fmt.Errorf("mp3: %w", err)
		}
	}
	d.pos += n
	return n, n > 0
}

func (d *mp3Stream) Err() error { return d.err }

func (d *mp3Stream) Len() int { return d.samples }

func (d *mp3Stream) Position() int { return d.pos }

func (d *mp3Stream) Seek(int) error { return errors.New("mp3: seek through the seeker") }

// Close closes nothing: the player closes the file.
func (d *mp3Stream) Close() error { return nil }
