package speaker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/oggopus"
)

// resampleQuality is beep's resampler quality for songs of another rate
// than the output's: 2 is cubic Lagrange interpolation over 4 points, which
// costs about a sixth of quality 4 (0.3 % against 1.9 % of a core for
// 44.1 kHz stereo here).
const resampleQuality = 2

// songPlayer is one open decoder over a cached song file, or over one
// still downloading (see ready). It plays the song's frames and follows the
// session timeline by slides (slide.go): the output device's oscillator and
// the clock estimate both drift, and a seek to correct them would click.
// Positions are in frames of the output rate.
type songPlayer struct {
	sha     string
	place   placement
	dec     beep.StreamSeekCloser
	file    io.Closer   // the song file, when dec does not close it
	flac    *flacSeeker // a verified FLAC file's seeks
	mp3     *mp3Seeker  // a verified MP3 file's seeks; both nil: dec.Seek
	songHz  int
	outHz   int
	stream  *slider // over dec, resampled to outHz when the rates differ
	base    float64 // output-rate position of stream's start (the last seek)
	slides  int64   // slides of the streams before the current one
	fade    int     // frames of fade-in still to apply
	usedGen uint64  // last Fill that used it

	// Of a song still downloading (dl nil: a verified file).
	dl         *download
	partial    *partialFile
	dataStart  int64 // WAV: offset of the first sample
	frameBytes int64 // WAV: bytes per frame; 0: offsets are estimates
	waiting    bool  // the last check found too little downloaded
}

// position is where the next output frame is in the song, in output frames.
func (p *songPlayer) position() float64 { return p.base + p.stream.position() }

// corrections is how many whole-frame slides the player made.
func (p *songPlayer) corrections() int64 { return p.slides + p.stream.slides }

// newStream sets the player streaming from its decoder's current frame.
func (p *songPlayer) newStream() {
	var src beep.Streamer = p.dec
	if p.songHz != p.outHz {
		src = beep.ResampleRatio(resampleQuality, float64(p.songHz)/float64(p.outHz), p.dec)
	}
	var buf [][2]float64
	var speed float64
	if p.stream != nil {
		p.slides += p.stream.slides
		buf = p.stream.buf
		speed = p.stream.speed // the timeline's rate outlives a seek
	}
	p.stream = newSlider(src, p.outHz, p.place, buf)
	p.stream.speed = speed
}

// openSong opens path with the decoder its first bytes call for. dl is the
// download path is still arriving through, or nil for a verified file;
// mp3Index gives a verified MP3 file's frame index; frames is the song's
// length in its own frames, from the playlist (0: unknown), which a
// compressed song still downloading cannot tell; place is how it follows
// the timeline.
func openSong(sha, path string, dl *download, mp3Index func(sha string) (*mp3Index, error), outHz int, frames int64, place placement) (p *songPlayer, err error) {
	defer func() {
		if r := recover(); r != nil { // decoders panic on some corrupt files
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var src io.ReadSeekCloser = f
	var partial *partialFile
	if dl != nil {
		partial = &partialFile{f: f, dl: dl}
		src = partial
	}
	var head [64]byte // enough to tell Ogg Opus from Ogg Vorbis
	n, err := io.ReadFull(src, head[:])
	if n < 4 {
		src.Close()
		return nil, fmt.Errorf("read header: %w", err)
	}
	magic := head[:4]
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		src.Close()
		return nil, err
	}
	isWAV := bytes.Equal(magic, []byte("RIFF"))
	isOpus := oggopus.Detect(head[:n])
	var dec beep.StreamSeekCloser
	var format beep.Format
	var seeker *flacSeeker
	var mp3s *mp3Seeker
	switch {
	case isWAV:
		dec, format, err = wav.Decode(src)
	case bytes.Equal(magic, []byte("fLaC")) && dl == nil:
		// Verified: seeks bisect the file (flacseek.go), by decoders that
		// each start at a frame; the player closes the file.
		var size int64
		dec, format, err = openFLAC(f)
		if err == nil {
			size, err = fileSize(f)
		}
		if err == nil {
			seeker, err = newFLACSeeker(f, size)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	case bytes.Equal(magic, []byte("fLaC")):
		dec, format, err = flac.Decode(src)
	case isOpus && dl != nil:
		dec, format, err = openStream(partial, frames, openOpusStream)
	case isOpus: // seeks bisect the file's pages (oggopus)
		var o *oggopus.Decoder
		if o, err = oggopus.New(src); err == nil {
			dec, format = o, o.Format()
		}
	case bytes.Equal(magic, []byte("OggS")) && dl != nil:
		dec, format, err = openStream(partial, frames, openVorbisStream)
	case bytes.Equal(magic, []byte("OggS")):
		dec, format, err = vorbis.Decode(src)
	case dl != nil: // MP3 still downloading: streamdecoder.go
		dec, format, err = openStream(partial, frames, openMP3Stream)
	default: // MP3, verified: decoders start at any frame (mp3seek.go)
		mp3s, err = newMP3Seeker(sha, f, mp3Index)
		if err == nil {
			dec, format, err = mp3s.decoderAt(0)
		}
	}
	if err != nil {
		src.Close()
		return nil, err
	}
	if format.SampleRate <= 0 {
		dec.Close()
		return nil, errors.New("decoder reports no sample rate")
	}
	p = &songPlayer{sha: sha, place: place, dec: dec, songHz: int(format.SampleRate), outHz: outHz,
		dl: dl, partial: partial, waiting: true}
	if seeker != nil {
		p.file, p.flac = f, seeker
	}
	if mp3s != nil {
		p.file, p.mp3 = f, mp3s
	}
	if partial != nil && isWAV { // the decoder stopped at the first sample
		p.dataStart, p.frameBytes = partial.off, int64(format.NumChannels*format.Precision)
	}
	p.newStream()
	return p, nil
}

// Playing a song still downloading. Before each block the player checks
// that the bytes it will read have arrived, so that the decoder never meets
// a hole: in a WAV the offset of a frame is exact; in a compressed file it
// is estimated from the average byte rate, with a generous margin. A player
// that had to wait (or just opened) wants resumeAhead more, so that it does
// not stutter at the pace of the download.
const (
	wavMargin        = 64 << 10  // covers the slider's (sliderReadAhead frames) and file reads' look-ahead
	compressedMargin = 256 << 10 // plus compressedSlack of audio
	compressedSlack  = 2         // seconds
	resumeAhead      = 0.5       // seconds
)

// errNotYetDownloaded is what a read of a part of a song that has not
// arrived yet gets.
var errNotYetDownloaded = errors.New("not downloaded yet")

// partialFile reads a song file still downloading: a read of bytes not yet
// written fails at once (it must not block the audio goroutine, nor return
// the sparse file's holes as audio).
type partialFile struct {
	f   *os.File
	dl  *download
	off int64
}

func (r *partialFile) Read(b []byte) (int, error) {
	if !r.dl.has(r.off, r.off+int64(len(b))) {
		return 0, errNotYetDownloaded
	}
	n, err := r.f.ReadAt(b, r.off)
	r.off += int64(n)
	return n, err
}

func (r *partialFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.dl.size
	}
	if offset < 0 {
		return r.off, errors.New("seek before the start of the file")
	}
	r.off = offset
	return offset, nil
}

func (r *partialFile) Close() error { return r.f.Close() }

// ready tells whether the bytes that a block of n output frames from want
// needs have arrived (always, once the download is verified).
func (p *songPlayer) ready(want float64, n int) bool {
	if p.dl == nil || p.dl.result() == downloadVerified {
		return true
	}
	toSong := float64(p.songHz) / float64(p.outHz)
	from := (max(want, 0) - float64(p.outHz)/100) * toSong // 10 ms early: the decoder may lag the timeline a little
	to := (max(want, 0) + float64(n)) * toSong
	var lo, hi int64
	var perSecond float64
	if p.frameBytes > 0 {
		lo = p.dataStart + int64(max(from, 0))*p.frameBytes
		hi = p.dataStart + int64(math.Ceil(to))*p.frameBytes + wavMargin
		perSecond = float64(p.songHz * int(p.frameBytes))
	} else {
		perFrame := float64(p.dl.size) / float64(max(p.dec.Len(), 1))
		perSecond = perFrame * float64(p.songHz)
		margin := compressedMargin + int64(compressedSlack*perSecond)
		lo = int64(from*perFrame) - margin
		hi = int64(to*perFrame) + margin
	}
	if p.waiting {
		hi += int64(resumeAhead * perSecond)
	}
	p.waiting = !p.dl.has(max(lo, 0), hi)
	return !p.waiting
}

// Drift correction. The player compares its position with the frame the
// timeline wants at each block; within resyncFrames it slides (slide.go).
// Beyond, it seeks and fades in.
const fadeFrames = 5 // ms of fade-in after a seek into a song

// read fills out with the song from output frame want on (fractional: the
// timeline's exact position), leaving silence from frame limit on. A file
// that ends more than resyncFrames early is an error (truncated).
func (p *songPlayer) read(out [][2]float64, want float64, resyncFrames, limit int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	errFrames := p.position() - want
	if math.Abs(errFrames) > float64(resyncFrames) {
		if err := p.seek(want); err != nil {
			return err
		}
	} else {
		p.stream.correct(errFrames)
	}
	last := float64(limit-1) - p.base // the last position to play
	p.stream.hold = last
	if room := last - p.position(); room < float64(len(out)) {
		out = out[:p.stream.through(last, len(out))]
	}
	wanted := len(out)
	for len(out) > 0 {
		n, ok := p.stream.Stream(out)
		p.applyFade(out[:n])
		out = out[n:]
		if !ok || n == 0 {
			break
		}
	}
	if err := p.dec.Err(); err != nil {
		return err
	}
	if int64(len(out)) > resyncFrames && len(out) < wanted {
		return fmt.Errorf("file ends at frame %.0f, before the playlist's length", p.position())
	}
	return nil
}

func (p *songPlayer) applyFade(buf [][2]float64) {
	total := fadeFrames * p.outHz / 1000
	for i := 0; i < len(buf) && p.fade > 0; i++ {
		gain := float64(total-p.fade) / float64(total)
		buf[i][0] *= gain
		buf[i][1] *= gain
		p.fade--
	}
}

// seek starts the player afresh at output frame want (fractional: the
// timeline's exact position).
func (p *songPlayer) seek(want float64) error {
	songFrame := int64(math.Round(want * float64(p.songHz) / float64(p.outHz)))
	songFrame = min(max(songFrame, 0), int64(p.dec.Len()))
	switch {
	case p.flac != nil:
		dec, err := p.flac.decoderAt(songFrame)
		if err != nil {
			return err
		}
		p.dec = dec // the old one holds nothing the file does not
	case p.mp3 != nil:
		dec, _, err := p.mp3.decoderAt(songFrame)
		if err != nil {
			return err
		}
		p.dec = dec
	default:
		if err := p.dec.Seek(int(songFrame)); err != nil {
			return err
		}
	}
	// A fresh stream: the old one holds frames from before the seek.
	p.newStream()
	p.base = float64(songFrame) * float64(p.outHz) / float64(p.songHz)
	if p.place == subframe { // whole frames: on the frame nearest want
		p.stream.land(want - p.base)
	}
	if songFrame > 0 { // into the middle of a song: fade in, or it clicks
		p.fade = fadeFrames * p.outHz / 1000
	}
	return nil
}

func (p *songPlayer) close() {
	p.dec.Close()
	if p.file != nil {
		p.file.Close()
	}
}
