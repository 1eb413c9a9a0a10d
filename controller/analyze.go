package controller

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/oggopus"
	"github.com/tutti-audio/tutti/protocol"
)

// Limits of the audio a song may hold. Analysing a song decodes all of it,
// so these also bound what one upload can cost the controller.
const (
	// maxSongDuration: the longest things a household plays as one file, a
	// DJ set or a live concert, last a few hours; a longer file is a loop
	// or a bomb, and speakers would cache and index all of it.
	maxSongDuration = 6 * time.Hour
	// minSampleRate and maxSampleRate span what the decoders handle and
	// what anyone records: telephone quality to 192 kHz studio masters.
	minSampleRate = 8000
	maxSampleRate = 192000
	// maxChannels: speakers play stereo; a surround file would silently lose
	// its centre channel (the voices), so it is refused instead.
	maxChannels = 2
	// maxFramesPerByte bounds the decode work per byte uploaded. Silence,
	// the most compressible real audio, encodes at ~210 frames per byte as
	// FLAC and ~650 as Ogg Vorbis; a FLAC of constant 65535-frame blocks
	// (an audio bomb) reaches ~3700. Decoding stops as soon as the frames
	// decoded pass this many per byte read (plus decodeSlack), so a bomb
	// is refused after a fraction of a second.
	maxFramesPerByte = 1000
	// decodeSlack is the bytes' worth of frames (at maxFramesPerByte) that
	// decoding may run ahead of the bytes read: a decoder hands out one
	// block at a time (FLAC's largest is 65535 frames from a few bytes),
	// and the bytes it buffers count as read already.
	decodeSlack = 4 << 10
)

// analyze reads the tags of the audio file f and decodes all of it, within
// the limits above, to count its frames exactly, as speakers will decode it.
func analyze(f *os.File) (song protocol.Song, err error) {
	// Decoders of third-party formats can panic on hostile input; a bad
	// file must cost an error, not the process.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder failed: %v", errNotAudio, p)
		}
	}()
	var head [musicfolder.HeadSize]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return song, err
	}
	song.Format = musicfolder.DetectFormat(head[:n])
	if song.Format == "" {
		return song, fmt.Errorf("%w: unknown file type", errNotAudio)
	}
	info, err := f.Stat()
	if err != nil {
		return song, err
	}
	if err := checkContainer(f, song.Format, info.Size()); err != nil {
		return song, fmt.Errorf("%w: %v", errNotAudio, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return song, err
	}
	format := song.Format
	song = musicfolder.ReadTags(f).Song
	song.Format = format
	if song.Format == "m4a" { // speakers play its FLAC conversion (convert.go)
		return m4aSong(f, info.Size(), song)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return song, err
	}
	var meter *songMeter // measures the loudness when the tags give none
	if song.ReplayGain == nil {
		meter = new(songMeter)
	}
	song.Frames, song.SampleRate, err = countFrames(f, song.Format, meter)
	if err != nil {
		return song, fmt.Errorf("%w: %v", errNotAudio, err)
	}
	if meter != nil {
		song.ReplayGain = meter.replayGain()
	}
	song.DurationNs = protocol.FramesToNs(song.Frames, song.SampleRate)
	return song, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReadSeeker
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	return c.r.Seek(offset, whence)
}

// countFrames decodes the whole file and counts the frames the decoder
// gives, which is what a speaker will play (go-mp3's leading delay included),
// and has meter (if not nil) measure them. It stops at the first limit the
// file breaks.
func countFrames(f *os.File, format string, meter *songMeter) (frames int64, rate int, err error) {
	var s beep.StreamSeekCloser
	var fm beep.Format
	// Decoders close what they read when it is a Closer; the caller closes f.
	r := &countingReader{r: f}
	rc := io.NopCloser(r)
	switch format {
	case "mp3":
		s, fm, err = mp3.Decode(rc)
	case "flac":
		s, fm, err = flac.Decode(r)
	case "wav":
		s, fm, err = wav.Decode(r)
	case "ogg":
		s, fm, err = vorbis.Decode(rc)
	case "opus":
		// Not a Seeker: the decoder would read the last page for the
		// length, bytes that would count as read.
		var d *oggopus.Decoder
		if d, err = oggopus.New(struct{ io.Reader }{r}); err == nil {
			s, fm = d, d.Format()
		}
	}
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if err := checkFormat(fm); err != nil {
		return 0, 0, err
	}
	meter.start(fm)
	maxFrames := int64(maxSongDuration.Seconds()) * int64(fm.SampleRate)
	if int64(s.Len()) > maxFrames { // what the header claims; the decoding below checks what is there
		return 0, 0, fmt.Errorf("longer than %v", maxSongDuration)
	}
	buf := make([][2]float64, 4096)
	for {
		n, ok := s.Stream(buf)
		frames += int64(n)
		meter.write(buf[:n])
		if frames > maxFrames {
			return 0, 0, fmt.Errorf("longer than %v", maxSongDuration)
		}
		if frames > maxFramesPerByte*(r.n+decodeSlack) {
			return 0, 0, fmt.Errorf("decodes to over %d frames per byte (an audio bomb?)", maxFramesPerByte)
		}
		if !ok || n == 0 {
			break
		}
	}
	if err := s.Err(); err != nil {
		return 0, 0, err
	}
	if frames == 0 {
		return 0, 0, errors.New("no audio frames")
	}
	return frames, int(fm.SampleRate), nil
}

// checkFormat refuses sample rates and channel counts outside the limits.
func checkFormat(fm beep.Format) error {
	switch {
	case fm.SampleRate < minSampleRate || fm.SampleRate > maxSampleRate:
		return fmt.Errorf("sample rate %d Hz outside %d-%d Hz", fm.SampleRate, minSampleRate, maxSampleRate)
	case fm.NumChannels < 1 || fm.NumChannels > maxChannels:
		return fmt.Errorf("%d channels: tutti plays mono and stereo", fm.NumChannels)
	}
	return nil
}
