package speaker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"
)

// resampleQuality is beep's resampler quality for songs whose rate differs
// from the output's (3-4 is the documented real-time range).
const resampleQuality = 4

// songPlayer is one open decoder over a cached song file, positioned in
// frames of the output rate.
type songPlayer struct {
	sha     string
	dec     beep.StreamSeekCloser
	songHz  int
	outHz   int
	stream  beep.Streamer // dec, or a resampler over it
	pos     int64         // output frame the stream yields next
	usedGen uint64        // last Fill that used it
}

// openSong opens path with the decoder its first bytes call for.
func openSong(sha, path string, outHz int) (p *songPlayer, err error) {
	defer func() {
		if r := recover(); r != nil { // decoders panic on some corrupt files
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("read header: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	var dec beep.StreamSeekCloser
	var format beep.Format
	switch {
	case bytes.Equal(magic[:], []byte("RIFF")):
		dec, format, err = wav.Decode(f)
	case bytes.Equal(magic[:], []byte("fLaC")):
		dec, format, err = flac.Decode(f)
	case bytes.Equal(magic[:], []byte("OggS")):
		dec, format, err = vorbis.Decode(f)
	default:
		dec, format, err = mp3.Decode(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if format.SampleRate <= 0 {
		dec.Close()
		return nil, errors.New("decoder reports no sample rate")
	}
	p = &songPlayer{sha: sha, dec: dec, songHz: int(format.SampleRate), outHz: outHz, stream: dec}
	if p.songHz != outHz {
		p.stream = beep.Resample(resampleQuality, format.SampleRate, beep.SampleRate(outHz), dec)
	}
	return p, nil
}

// read fills out with the song from output frame want on, leaving silence
// from frame limit on. It continues where the stream is when that is within
// tolerance frames of want (small clock estimate changes must not cause
// seeks), and seeks otherwise. A file that ends more than tolerance frames
// early is an error (truncated).
func (p *songPlayer) read(out [][2]float64, want, tolerance, limit int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	if d := want - p.pos; d > tolerance || d < -tolerance {
		if err := p.seek(want); err != nil {
			return err
		}
	}
	if p.pos >= limit {
		return nil
	}
	out = out[:min(int64(len(out)), limit-p.pos)]
	for len(out) > 0 {
		n, ok := p.stream.Stream(out)
		p.pos += int64(n)
		out = out[n:]
		if !ok || n == 0 {
			break
		}
	}
	if err := p.dec.Err(); err != nil {
		return err
	}
	if int64(len(out)) > tolerance {
		return fmt.Errorf("file ends at frame %d, before the playlist's length", p.pos)
	}
	return nil
}

func (p *songPlayer) seek(want int64) error {
	songFrame := want
	if p.songHz != p.outHz {
		songFrame = (want*int64(p.songHz) + int64(p.outHz)/2) / int64(p.outHz)
	}
	songFrame = min(max(songFrame, 0), int64(p.dec.Len()))
	if err := p.dec.Seek(int(songFrame)); err != nil {
		return err
	}
	if p.songHz != p.outHz { // a fresh resampler: the old one holds frames from before the seek
		p.stream = beep.Resample(resampleQuality, beep.SampleRate(p.songHz), beep.SampleRate(p.outHz), p.dec)
	}
	p.pos = want
	return nil
}

func (p *songPlayer) close() { p.dec.Close() }
