package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gopxl/beep/v2"

	"github.com/tutti-audio/tutti/protocol"
)

// Reading an M4A (MP4) file's header: which audio codec its first sound
// track holds, at what rate and how many channels, and how long it lasts.
// Speakers do not decode M4A (convert.go makes a FLAC of it); this only
// tells what the song is before it is converted, for display.

// m4aInfo is what an M4A header says of its first sound track.
type m4aInfo struct {
	codec      string // sample entry: "mp4a" (AAC) or "alac"
	sampleRate int    // the track's time scale: its sample rate
	frames     int64  // its duration in the time scale (AAC: its priming included)
	channels   int
}

// Limits of the header walk, so a hostile file costs little.
const (
	// m4aMaxDepth: the sample entry lies 6 boxes deep (moov trak mdia
	// minf stbl stsd).
	m4aMaxDepth = 8
	// m4aMaxBoxes bounds the boxes read in all: a file's header has tens.
	m4aMaxBoxes = 4096
)

// m4aSong completes song, an M4A's record, from its header: its length
// until the conversion counts it exactly.
func m4aSong(f io.ReaderAt, size int64, song protocol.Song) (protocol.Song, error) {
	info, err := probeM4A(f, size)
	if err != nil {
		return song, fmt.Errorf("%w: %v", errNotAudio, err)
	}
	if err := checkFormat(beep.Format{SampleRate: beep.SampleRate(info.sampleRate), NumChannels: info.channels}); err != nil {
		return song, fmt.Errorf("%w: %v", errNotAudio, err)
	}
	if info.frames <= 0 || info.frames > int64(maxSongDuration.Seconds())*int64(info.sampleRate) {
		return song, fmt.Errorf("%w: m4a lasts %d frames at %d Hz", errNotAudio, info.frames, info.sampleRate)
	}
	song.Frames, song.SampleRate = info.frames, info.sampleRate
	song.DurationNs = protocol.FramesToNs(song.Frames, song.SampleRate)
	return song, nil
}

// probeM4A reads the header of the MP4 file r of size bytes.
func probeM4A(r io.ReaderAt, size int64) (m4aInfo, error) {
	w := &boxWalk{r: r}
	if err := w.walk(0, size, 0); err != nil {
		return m4aInfo{}, err
	}
	info := w.found
	if info.codec == "" {
		return m4aInfo{}, errors.New("m4a: no sound track")
	}
	if info.codec != "mp4a" && info.codec != "alac" {
		return m4aInfo{}, fmt.Errorf("m4a: codec %q: tutti plays AAC and ALAC", info.codec)
	}
	if info.sampleRate <= 0 {
		return m4aInfo{}, errors.New("m4a: no time scale")
	}
	return info, nil
}

// boxWalk walks nested boxes within a file.
type boxWalk struct {
	r     io.ReaderAt
	boxes int
	sound bool    // the trak being read is a sound track
	track m4aInfo // what the trak being read says
	found m4aInfo // of the first sound track
}

// walk reads the boxes in [off, end).
func (w *boxWalk) walk(off, end int64, depth int) error {
	if depth > m4aMaxDepth {
		return errors.New("m4a: boxes nested too deep")
	}
	for off+8 <= end {
		if w.boxes++; w.boxes > m4aMaxBoxes {
			return fmt.Errorf("m4a: over %d boxes", m4aMaxBoxes)
		}
		var h [16]byte
		if _, err := w.r.ReadAt(h[:8], off); err != nil {
			return fmt.Errorf("m4a: box header: %w", err)
		}
		size, body := int64(binary.BigEndian.Uint32(h[:4])), off+8
		switch size {
		case 0: // to the end
			size = end - off
		case 1: // a 64-bit size follows
			if _, err := w.r.ReadAt(h[8:16], off+8); err != nil {
				return fmt.Errorf("m4a: box header: %w", err)
			}
			size, body = int64(binary.BigEndian.Uint64(h[8:16])), off+16
		}
		if size < body-off || size > end-off {
			return fmt.Errorf("m4a: box %q of %d bytes does not fit", h[4:8], size)
		}
		typ := string(h[4:8])
		descend, err := w.visit(typ, body, off+size)
		if err != nil {
			return err
		}
		if descend {
			if err := w.walk(body, off+size, depth+1); err != nil {
				return err
			}
		}
		if typ == "trak" && w.sound && w.found.codec == "" {
			w.found = w.track
		}
		off += size
	}
	return nil
}

// visit reads the boxes that matter and says which to descend into.
func (w *boxWalk) visit(typ string, off, end int64) (bool, error) {
	switch typ {
	case "moov", "mdia", "minf", "stbl":
		return true, nil
	case "trak":
		w.sound, w.track = false, m4aInfo{}
		return w.found.codec == "", nil // the first sound track only
	case "mdhd":
		var b [32]byte
		n, _ := w.r.ReadAt(b[:min(int64(len(b)), end-off)], off)
		switch {
		case n >= 20 && b[0] == 0:
			w.track.sampleRate = int(binary.BigEndian.Uint32(b[12:16]))
			w.track.frames = int64(binary.BigEndian.Uint32(b[16:20]))
		case n >= 32 && b[0] == 1:
			w.track.sampleRate = int(binary.BigEndian.Uint32(b[20:24]))
			w.track.frames = int64(binary.BigEndian.Uint64(b[24:32]) & (1<<62 - 1))
		default:
			return false, errors.New("m4a: short mdhd")
		}
	case "hdlr":
		var b [12]byte
		if end-off >= 12 {
			if _, err := w.r.ReadAt(b[:], off); err != nil {
				return false, err
			}
			w.sound = string(b[8:12]) == "soun"
		}
	case "stsd":
		// Version and flags, an entry count, then the first sample entry:
		// its size and type, 6 reserved bytes, a data reference index, 8
		// bytes of version and vendor, then the channel count.
		var b [34]byte
		if end-off < int64(len(b)) {
			return false, errors.New("m4a: short stsd")
		}
		if _, err := w.r.ReadAt(b[:], off); err != nil {
			return false, err
		}
		w.track.codec = string(b[12:16])
		w.track.channels = int(binary.BigEndian.Uint16(b[32:34]))
	}
	return false, nil
}
