package musicfolder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"
)

// Length is a song's audio as the speakers' decoders give it: Frames
// frames at SampleRate. Frames is 0 when the file's headers do not tell
// exactly; then only decoding all of it does.
type Length struct {
	Frames     int64
	SampleRate int
	Channels   int
}

// opusRate is the rate every Opus stream decodes at.
const opusRate = 48000

// HeaderLength reads a song's length from its headers, without decoding
// its audio, using the decoders the speakers use where they expose it:
//   - FLAC: STREAMINFO's total samples (0 in a stream encoded without
//     knowing its length: not known);
//   - WAV: the data chunk's size, as far as the file holds it;
//   - Ogg Vorbis: the last page's granule position;
//   - MP3: go-mp3 walks every frame header and counts 1152 (or 576)
//     frames each, Xing frame included, exactly as it decodes them;
//   - Opus: the last page's granule position less the pre-skip, at 48 kHz;
//   - M4A: not known (speakers get it converted).
//
// A file that none of these accept is an error. A decoder that panics on
// hostile input costs an error, not the process.
func HeaderLength(r io.ReadSeeker, size int64, format string) (l Length, err error) {
	defer func() {
		if p := recover(); p != nil {
			l, err = Length{}, fmt.Errorf("%s headers: decoder failed: %v", format, p)
		}
	}()
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return l, err
	}
	var s beep.StreamSeekCloser
	var fm beep.Format
	switch format {
	case "mp3":
		s, fm, err = mp3.Decode(seekNopCloser{r})
	case "flac":
		s, fm, err = flac.Decode(seekNopCloser{r})
	case "ogg":
		s, fm, err = vorbis.Decode(seekNopCloser{r})
	case "wav":
		if s, fm, err = wav.Decode(seekNopCloser{r}); err == nil {
			// The decoder stops at the end of the file, before the end
			// a truncated file's header promises.
			var dataStart int64
			if dataStart, err = r.Seek(0, io.SeekCurrent); err == nil && fm.Width() > 0 {
				l := Length{Frames: int64(s.Len()), SampleRate: int(fm.SampleRate), Channels: fm.NumChannels}
				l.Frames = min(l.Frames, (size-dataStart)/int64(fm.Width()))
				return l, nil
			}
		}
	case "opus":
		return opusLength(r, size)
	case "m4a":
		return Length{}, nil
	default:
		return l, fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return l, err
	}
	return Length{Frames: int64(s.Len()), SampleRate: int(fm.SampleRate), Channels: fm.NumChannels}, nil
}

// Ogg page layout (RFC 3533): "OggS", version, flags, granule position
// (int64 LE at 6), serial, sequence, CRC, segment count (at 26), segment
// table, then the data.
const (
	oggHeaderSize = 27
	// oggTailScan is how much of a file's end is searched for the last
	// page: a page holds at most 255*255 data bytes plus its headers.
	oggTailScan = 65536 + 512
)

// opusLength reads an Ogg Opus file's length: the last page's granule
// position (48 kHz samples since the start, pre-skip included) less the
// pre-skip that OpusHead (the first packet) declares.
func opusLength(r io.ReadSeeker, size int64) (Length, error) {
	var head [oggHeaderSize + 255 + 19]byte
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Length{}, err
	}
	n, err := io.ReadFull(r, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return Length{}, err
	}
	channels, preSkip, err := parseOpusHead(head[:n])
	if err != nil {
		return Length{}, err
	}
	tailStart := max(0, size-oggTailScan)
	tail := make([]byte, size-tailStart)
	if _, err := r.Seek(tailStart, io.SeekStart); err != nil {
		return Length{}, err
	}
	if _, err := io.ReadFull(r, tail); err != nil {
		return Length{}, err
	}
	granule, err := lastGranule(tail)
	if err != nil {
		return Length{}, err
	}
	if granule <= int64(preSkip) {
		return Length{}, fmt.Errorf("opus: last granule %d within the pre-skip %d", granule, preSkip)
	}
	return Length{Frames: granule - int64(preSkip), SampleRate: opusRate, Channels: channels}, nil
}

// parseOpusHead reads the channel count and pre-skip of an Ogg Opus
// stream from its first page.
func parseOpusHead(page []byte) (channels, preSkip int, err error) {
	if len(page) < oggHeaderSize || string(page[:4]) != "OggS" {
		return 0, 0, errors.New("opus: no Ogg page at the start")
	}
	data := oggHeaderSize + int(page[26])
	if len(page) < data+19 || string(page[data:data+8]) != "OpusHead" {
		return 0, 0, errors.New("opus: first packet is not OpusHead")
	}
	channels = int(page[data+9])
	preSkip = int(binary.LittleEndian.Uint16(page[data+10:]))
	if channels < 1 {
		return 0, 0, errors.New("opus: no channels")
	}
	return channels, preSkip, nil
}

// lastGranule finds the granule position of the last complete Ogg page in
// tail, the end of a file: the last "OggS" whose page fits in tail and
// whose granule is set (-1 marks a page where no packet ends).
func lastGranule(tail []byte) (int64, error) {
	for i := len(tail) - oggHeaderSize; i >= 0; i-- {
		if tail[i] != 'O' || string(tail[i:i+4]) != "OggS" {
			continue
		}
		segments := int(tail[i+26])
		if i+oggHeaderSize+segments > len(tail) {
			continue
		}
		length := 0
		for _, s := range tail[i+oggHeaderSize : i+oggHeaderSize+segments] {
			length += int(s)
		}
		if i+oggHeaderSize+segments+length > len(tail) {
			continue
		}
		if g := int64(binary.LittleEndian.Uint64(tail[i+6:])); g >= 0 {
			return g, nil
		}
	}
	return 0, errors.New("ogg: no complete page with a granule position at the end")
}

// seekNopCloser hands a decoder a file it may seek in but not close
// (io.NopCloser would hide Seek, and go-mp3 and oggvorbis find the length
// only by seeking).
type seekNopCloser struct{ io.ReadSeeker }

func (seekNopCloser) Close() error { return nil }
