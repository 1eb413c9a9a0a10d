package speaker

import (
	"errors"
	"fmt"
	"io"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/vorbis"

	"github.com/tutti-audio/tutti/oggopus"
)

// Playing an MP3, Ogg Vorbis or Ogg Opus song still downloading. Their
// decoders want the whole file to open seekable (go-mp3 indexes every
// frame, oggvorbis and oggopus read the last page for the length), so a streamDecoder reads the part
// downloaded so far as a plain stream from the start, takes the song's
// length from the playlist, and seeks by decoding: forward from where it
// is, or again from the start. A seek further than partialSeekLimit fails,
// and the song waits until it is complete (then its seeks are exact and
// cheap: mp3seek.go, oggvorbis's own, oggopus's bisection).
const partialSeekLimit = 5 // seconds of the song: tens of ms of decoding

// streamDecoder decodes a compressed song still downloading from its
// start.
type streamDecoder struct {
	file   *partialFile
	open   func(io.Reader) (beep.StreamSeekCloser, beep.Format, error) // a decoder reading from the start
	dec    beep.StreamSeekCloser
	pos    int // song frames decoded
	frames int // the song's length, from the playlist
	limit  int // partialSeekLimit in song frames
	skip   [][2]float64
}

// openStream opens a streamDecoder over file, which open decodes.
func openStream(file *partialFile, frames int64, open func(io.Reader) (beep.StreamSeekCloser, beep.Format, error)) (*streamDecoder, beep.Format, error) {
	if frames <= 0 {
		return nil, beep.Format{}, errors.New("the playlist gives no length for a song still downloading")
	}
	d := &streamDecoder{file: file, open: open, frames: int(frames)}
	format, err := d.rewind()
	if err != nil {
		return nil, beep.Format{}, err
	}
	d.limit = partialSeekLimit * int(format.SampleRate)
	return d, format, nil
}

// rewind starts a decoder at the file's start.
func (d *streamDecoder) rewind() (beep.Format, error) {
	if _, err := d.file.Seek(0, io.SeekStart); err != nil {
		return beep.Format{}, err
	}
	// Not a Seeker: the decoders read it as a stream.
	dec, format, err := d.open(struct{ io.Reader }{d.file})
	if err != nil {
		return beep.Format{}, err
	}
	d.dec, d.pos = dec, 0
	return format, nil
}

func (d *streamDecoder) Stream(out [][2]float64) (int, bool) {
	n, ok := d.dec.Stream(out)
	d.pos += n
	return n, ok
}

func (d *streamDecoder) Err() error    { return d.dec.Err() }
func (d *streamDecoder) Len() int      { return d.frames }
func (d *streamDecoder) Position() int { return d.pos }
func (d *streamDecoder) Close() error  { return d.file.Close() }

func (d *streamDecoder) Seek(to int) error {
	if to < d.pos {
		if to > d.limit {
			return fmt.Errorf("seek back to frame %d of a song still downloading", to)
		}
		if _, err := d.rewind(); err != nil {
			return err
		}
	}
	if to-d.pos > d.limit {
		return fmt.Errorf("seek %d frames ahead in a song still downloading", to-d.pos)
	}
	if d.skip == nil {
		d.skip = make([][2]float64, 4096)
	}
	for d.pos < to {
		n, ok := d.Stream(d.skip[:min(to-d.pos, len(d.skip))])
		if !ok || n == 0 {
			if err := d.dec.Err(); err != nil {
				return err
			}
			return fmt.Errorf("seek to frame %d: the song ends at %d", to, d.pos)
		}
	}
	return nil
}

// openMP3Stream is an MP3 decoder over r, which it reads as a stream.
func openMP3Stream(r io.Reader) (beep.StreamSeekCloser, beep.Format, error) {
	return newMP3Stream(r, 0)
}

// openVorbisStream is an Ogg Vorbis decoder over r, which it reads as a
// stream.
func openVorbisStream(r io.Reader) (beep.StreamSeekCloser, beep.Format, error) {
	return vorbis.Decode(io.NopCloser(r)) // the streamDecoder closes the file
}

// openOpusStream is an Ogg Opus decoder over r, which it reads as a
// stream (from the start, with no length).
func openOpusStream(r io.Reader) (beep.StreamSeekCloser, beep.Format, error) {
	d, err := oggopus.New(r)
	if err != nil {
		return nil, beep.Format{}, err
	}
	return d, d.Format(), nil
}
