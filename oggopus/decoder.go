// Package oggopus decodes Ogg Opus files (RFC 7845) with pion's pure-Go
// Opus decoder, frame-exactly: the encoder's pre-skip is dropped and the
// end trimmed to the last page's granule position, so every decoder of a
// file gives the same frames at the same positions.
package oggopus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gopxl/beep/v2"
	"github.com/pion/opus"
)

var tagsMagic = []byte("OpusTags")

// SampleRate is the rate Opus decodes at.
const SampleRate = 48000

const (
	// prerollFrames are decoded and dropped before a seek's target. RFC
	// 7845 section 4.6 asks for at least 80 ms; CELT's energy prediction
	// still differed from a decode from the start by -27 dB after 80 ms
	// here, by -60 dB or less after 200 ms.
	prerollFrames = SampleRate * 200 / 1000
	// maxPacketBytes bounds a packet spread over pages: above the largest
	// an encoder makes (48 frames of 1275 bytes, 120 ms at 510 kbit/s).
	maxPacketBytes = 1 << 17
	// seekWindow is where a seek's bisection stops and walks pages: a few
	// pages of audio at any bitrate.
	seekWindow = 64 << 10
)

// Decoder plays an Ogg Opus stream in 48 kHz stereo frames (mono doubled).
// Over an io.ReadSeeker it knows its length and seeks; over a plain
// io.Reader (a file still downloading) it plays from the start only. It
// implements beep.StreamSeekCloser.
type Decoder struct {
	src    io.Reader
	seeker io.ReadSeeker // src, when it can seek
	br     *bufio.Reader
	at     int64 // offset in src of br's next byte, while reading pages in turn
	head   header
	serial uint32
	// audioStart is where the first page after the headers starts.
	audioStart int64
	length     int64 // frames; -1 while unknown (a plain reader)
	dec        opus.Decoder

	// Where decoding is. pos is the granule position (48 kHz frames from
	// the stream's start, pre-skip included) of the next packet's first
	// frame. atStart: no audio page read yet since the headers.
	pos      int64
	atStart  bool
	packets  [][]byte // completed packets of the current page, not decoded yet
	limit    int64    // the current page's granule when it ends the stream: no frame from there on plays
	partial  []byte   // a packet continuing onto the next page
	ended    bool
	pcm      []float32 // decoded, interleaved, not handed out yet
	pcmStart int64     // output frame of pcm's first frame
	out      []float32 // the decoder's output buffer
	open     bool      // partial holds a packet begun on an earlier page
	resync   bool      // the next page may continue a packet we lack the start of
	// headerOnly: keep only the start of packets (of the comment header).
	headerOnly bool
	// skipBefore: while the decoder is fresh from a seek, packets ending
	// at or before this granule are passed over undecoded (the pre-roll
	// starts after them).
	skipBefore int64
	fresh      bool
	err        error
}

// New reads the Opus headers at the start of r.
func New(r io.Reader) (*Decoder, error) {
	d := &Decoder{src: r, br: bufio.NewReaderSize(r, maxPageBytes), length: -1,
		out: make([]float32, maxPacketFrames*2)}
	if s, ok := r.(io.ReadSeeker); ok {
		d.seeker = s
	}
	first, err := peekPage(d.br)
	if err == nil {
		d.serial = first.serial
		_, err = d.nextPage()
	}
	if err != nil {
		return nil, fmt.Errorf("opus: first page: %w", err)
	}
	if len(d.packets) != 1 || d.open {
		return nil, errors.New("opus: the first page does not hold one whole header")
	}
	if d.head, err = parseHead(d.packets[0]); err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	d.packets = nil
	// The comment header: one packet over any number of pages (pictures
	// make it large: only its start is kept); the audio starts on a page
	// of its own.
	d.headerOnly = true
	for len(d.packets) == 0 {
		if _, err := d.nextPage(); err != nil {
			return nil, fmt.Errorf("opus: comment header: %w", err)
		}
	}
	d.audioStart = d.at
	if !bytes.HasPrefix(d.packets[0], tagsMagic) || len(d.packets) > 1 || d.open {
		return nil, errors.New("opus: no comment header on pages of its own")
	}
	d.packets, d.headerOnly = nil, false
	d.dec, _ = opus.NewDecoderWithOutput(SampleRate, d.head.channels) // both valid
	d.atStart = true
	if d.seeker != nil {
		if d.length, err = d.lastGranule(); err != nil {
			return nil, fmt.Errorf("opus: length: %w", err)
		}
		if d.length -= d.head.preSkip; d.length < 0 {
			return nil, errors.New("opus: the stream ends within its pre-skip")
		}
		if err := d.rewind(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Format is the stream's format as beep describes it.
func (d *Decoder) Format() beep.Format {
	return beep.Format{SampleRate: SampleRate, NumChannels: d.head.channels, Precision: 2}
}

// nextPage reads the next page of the stream and queues the packets that
// end on it; pages of other streams multiplexed in are skipped.
func (d *Decoder) nextPage() (page, error) {
	for {
		p, err := peekPage(d.br)
		if errors.Is(err, errNotPage) {
			return page{}, errors.New("lost the page sync: damaged file")
		}
		if err != nil {
			return page{}, err
		}
		if p.serial != d.serial {
			d.br.Discard(p.size)
			d.at += int64(p.size)
			continue
		}
		switch {
		case p.continued && !d.open && !d.resync:
			return page{}, errors.New("a page continues a packet that never began")
		case !p.continued && d.open:
			return page{}, errors.New("a packet breaks off between pages")
		}
		dropping := p.continued && !d.open // the head of its first packet is not ours
		d.resync = false
		body := p.body
		for _, l := range p.lacing {
			if !dropping {
				keep := body[:l]
				if d.headerOnly {
					keep = keep[:min(len(keep), max(len(tagsMagic)-len(d.partial), 0))]
				}
				d.partial = append(d.partial, keep...)
				d.open = true
			}
			body = body[l:]
			if len(d.partial) > maxPacketBytes {
				return page{}, fmt.Errorf("a packet over %d bytes", maxPacketBytes)
			}
			if l < 255 { // a packet ends
				if !dropping {
					d.packets = append(d.packets, d.partial)
				}
				d.partial, d.open, dropping = nil, false, false
			}
		}
		d.br.Discard(p.size)
		d.at += int64(p.size)
		return p, nil
	}
}

// Stream fills samples with the next frames; false at the end or on an
// error (see Err).
func (d *Decoder) Stream(samples [][2]float64) (int, bool) {
	n := 0
	for n < len(samples) && d.err == nil {
		if len(d.pcm) == 0 {
			if !d.decodeNext() {
				break
			}
			continue
		}
		n += d.take(samples[n:])
	}
	return n, n > 0
}

// take hands out decoded frames.
func (d *Decoder) take(samples [][2]float64) int {
	g := d.head.gain
	n := 0
	if d.head.channels == 1 {
		n = min(len(samples), len(d.pcm))
		for i := range n {
			v := float64(d.pcm[i] * g)
			samples[i] = [2]float64{v, v}
		}
		d.pcm = d.pcm[n:]
	} else {
		n = min(len(samples), len(d.pcm)/2)
		for i := range n {
			samples[i] = [2]float64{float64(d.pcm[2*i] * g), float64(d.pcm[2*i+1] * g)}
		}
		d.pcm = d.pcm[2*n:]
	}
	d.pcmStart += int64(n)
	return n
}

// decodeNext decodes the next packet into pcm, keeping the frames that
// play (none of the pre-skip, none past the end); false at the end of the
// stream or on an error.
func (d *Decoder) decodeNext() bool {
	for len(d.packets) == 0 {
		if d.ended {
			return false
		}
		p, err := d.nextPage()
		if errors.Is(err, io.EOF) && !d.open {
			d.ended = true // a stream cut short of its last page plays what it has
			return false
		}
		if err != nil {
			d.err = err
			return false
		}
		d.ended = p.eos
		d.limit = math.MaxInt64
		if p.eos && p.granule >= 0 {
			d.limit = p.granule
		}
		if d.atStart && len(d.packets) > 0 {
			d.atStart = false
			if err := d.placeFirstPage(p); err != nil {
				d.err = err
				return false
			}
		}
	}
	packet := d.packets[0]
	d.packets = d.packets[1:]
	frames, err := packetFrames(packet)
	if err != nil {
		d.err = err
		return false
	}
	if d.fresh && !d.atStart && d.pos+int64(frames) <= d.skipBefore {
		d.pos += int64(frames)
		return true
	}
	d.fresh = false
	n, err := d.decodePacket(packet)
	if err == nil && n != frames {
		err = fmt.Errorf("an Opus packet of %d frames decoded to %d", frames, n)
	}
	if err != nil {
		d.err = err
		return false
	}
	start := d.pos
	d.pos += int64(n)
	from := max(start, d.head.preSkip)
	to := min(d.pos, d.limit)
	if to <= from {
		return true
	}
	ch := int64(d.head.channels)
	d.pcm = d.out[(from-start)*ch : (to-start)*ch]
	d.pcmStart = from - d.head.preSkip
	return true
}

// placeFirstPage sets where the first audio page's packets start: at 0,
// unless its granule position says the stream began later (a stream cut
// from a longer one).
func (d *Decoder) placeFirstPage(p page) error {
	if p.eos || p.granule < 0 {
		return nil
	}
	total := int64(0)
	for _, packet := range d.packets {
		n, err := packetFrames(packet)
		if err != nil {
			return err
		}
		total += int64(n)
	}
	if p.granule < total {
		return fmt.Errorf("the first audio page ends at granule %d but holds %d frames", p.granule, total)
	}
	d.pos = p.granule - total
	return nil
}

// decodePacket decodes one packet into out; a panic of the decoder on a
// damaged packet is an error.
func (d *Decoder) decodePacket(packet []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opus decoder panic: %v", r)
		}
	}()
	return d.dec.DecodeToFloat32(packet, d.out)
}

// Err is the error that stopped the stream, if any.
func (d *Decoder) Err() error { return d.err }

// Len is the stream's length in frames; 0 when unknown (a plain reader).
func (d *Decoder) Len() int { return int(max(d.length, 0)) }

// Position is the output frame Stream gives next.
func (d *Decoder) Position() int {
	if len(d.pcm) > 0 {
		return int(d.pcmStart)
	}
	at := max(d.pos-d.head.preSkip, 0)
	if d.length >= 0 {
		at = min(at, d.length)
	}
	return int(at)
}

// Close closes the reader when it is a Closer.
func (d *Decoder) Close() error {
	if c, ok := d.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Seek moves to output frame f: it finds the last page ending at least
// prerollFrames before f, decodes from there and drops what comes before f.
func (d *Decoder) Seek(f int) error {
	if d.seeker == nil {
		return errors.New("opus: cannot seek a stream still arriving")
	}
	if f < 0 || int64(f) > d.length {
		return fmt.Errorf("opus: seek to frame %d of %d", f, d.length)
	}
	d.err = nil
	from := int64(f) + d.head.preSkip - prerollFrames
	var err error
	if from <= 0 {
		err = d.rewind()
	} else {
		err = d.land(from)
		d.skipBefore = from
	}
	if err != nil {
		d.err = err
		return err
	}
	return d.skipTo(int64(f))
}

// skipTo decodes and drops frames up to output frame f.
func (d *Decoder) skipTo(f int64) error {
	for {
		if len(d.pcm) > 0 {
			if d.pcmStart > f {
				return fmt.Errorf("opus: seek landed past frame %d", f)
			}
			ch := int64(d.head.channels)
			drop := min(f-d.pcmStart, int64(len(d.pcm))/ch)
			d.pcm = d.pcm[drop*ch:]
			d.pcmStart += drop
			if d.pcmStart == f {
				return nil
			}
			continue
		}
		if !d.decodeNext() {
			return d.err // nil: the end, f was the length
		}
	}
}

// reset empties what the decoder held of the old position.
func (d *Decoder) reset(offset int64) error {
	if _, err := d.seeker.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	d.br.Reset(d.src)
	d.at = offset
	d.packets, d.partial, d.open, d.pcm, d.ended = nil, nil, false, nil, false
	d.fresh, d.skipBefore = true, 0
	d.dec, _ = opus.NewDecoderWithOutput(SampleRate, d.head.channels)
	return nil
}

// rewind goes back to the first audio page.
func (d *Decoder) rewind() error {
	if err := d.reset(d.audioStart); err != nil {
		return err
	}
	d.pos, d.atStart = 0, true
	return nil
}

// land moves to the last page whose granule is at most from and reads it
// (its packets are not decoded: what follows is, from granule on).
func (d *Decoder) land(from int64) error {
	end, err := d.seeker.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	// Bisect over byte offsets: lo is a page known to end at or before
	// from (the headers' end stands for granule 0), hi an offset past it.
	lo, hi := d.audioStart, end
	for hi-lo > seekWindow {
		mid := lo + (hi-lo)/2
		off, granule, err := d.granuleAfter(mid, hi)
		switch {
		case err != nil:
			return err
		case granule >= 0 && granule <= from:
			lo = off
		default:
			hi = mid
		}
	}
	// Walk the pages from lo: the last one ending at or before from.
	if err := d.reset(lo); err != nil {
		return err
	}
	at, best, bestGranule := lo, int64(-1), int64(0)
	for {
		p, err := peekPage(d.br)
		if err != nil || p.serial == d.serial && p.granule > from {
			break
		}
		if p.serial == d.serial && p.granule >= 0 {
			best, bestGranule = at, p.granule
		}
		at += int64(p.size)
		d.br.Discard(p.size)
	}
	if best < 0 {
		return d.rewind()
	}
	if err := d.reset(best); err != nil {
		return err
	}
	d.resync = true
	if _, err := d.nextPage(); err != nil {
		return err
	}
	d.packets = nil
	d.pos, d.atStart = bestGranule, false
	return nil
}

// granuleAfter finds the first page of the stream at or after offset from
// and before hi, and gives its offset and granule (-1 for none).
func (d *Decoder) granuleAfter(from, hi int64) (int64, int64, error) {
	if _, err := d.seeker.Seek(from, io.SeekStart); err != nil {
		return 0, 0, err
	}
	d.br.Reset(d.src)
	at := from
	for at < hi {
		p, skipped, err := findPage(d.br, int(hi-at))
		at += int64(skipped)
		if err != nil { // none: the end, or damage a read will meet again
			return hi, -1, nil
		}
		if p.serial == d.serial && p.granule >= 0 {
			return at, p.granule, nil
		}
		at += int64(p.size)
		d.br.Discard(p.size)
	}
	return hi, -1, nil
}

// lastGranule is the granule position of the stream's last page that has
// one: a page is at most maxPageBytes long, so it starts within the last
// maxPageBytes of the file.
func (d *Decoder) lastGranule() (int64, error) {
	end, err := d.seeker.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	from := max(d.audioStart, end-2*maxPageBytes)
	if _, err := d.seeker.Seek(from, io.SeekStart); err != nil {
		return 0, err
	}
	d.br.Reset(d.src)
	last := int64(-1)
	for at := from; at < end; {
		p, skipped, err := findPage(d.br, int(end-at))
		if err != nil {
			break
		}
		at += int64(skipped) + int64(p.size)
		d.br.Discard(p.size)
		if p.serial == d.serial && p.granule >= 0 {
			last = p.granule
		}
	}
	if last < 0 {
		return 0, errors.New("no page with a granule position")
	}
	return last, nil
}

func dbToLinear(db float64) float64 { return math.Pow(10, db/20) }

// Detect tells whether a file starting with head (at least its first 64
// bytes, when it has them) is Ogg Opus: an Ogg page whose first packet is
// an Opus identification header.
func Detect(head []byte) bool {
	if len(head) < pageHeaderBytes || !bytes.HasPrefix(head, capturePattern) {
		return false
	}
	body := pageHeaderBytes + int(head[26])
	return len(head) >= body+8 && string(head[body:body+8]) == "OpusHead"
}
