package oggopus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Ogg pages (RFC 3533): a 27-byte header, a table of segment lengths (the
// lacing values), then the segments. A packet is a run of segments ending
// with one shorter than 255 bytes; it may continue onto the next page.
const (
	pageHeaderBytes = 27
	// maxPageBytes is the largest page the format allows: 255 segments of
	// 255 bytes after the header and its lacing table.
	maxPageBytes = pageHeaderBytes + 255 + 255*255

	flagContinued = 0x01 // the first packet began on an earlier page
	flagEOS       = 0x04 // the stream's last page
)

var capturePattern = []byte("OggS")

// page is one parsed Ogg page. Its lacing and body point into the reader's
// buffer and hold only until the next read.
type page struct {
	granule   int64 // -1: no packet ends on this page
	serial    uint32
	continued bool
	eos       bool
	lacing    []byte
	body      []byte
	size      int // bytes the page takes in the stream
}

// errNotPage is parsePage's answer for bytes that are not a valid page
// (no capture pattern, a wrong version or checksum).
var errNotPage = errors.New("not an Ogg page")

// peekPage parses the page at the start of br without consuming it.
func peekPage(br *bufio.Reader) (page, error) {
	head, err := br.Peek(pageHeaderBytes)
	if err != nil {
		return page{}, eofIsUnexpected(err, len(head))
	}
	if !bytes.Equal(head[:4], capturePattern) || head[4] != 0 {
		return page{}, errNotPage
	}
	segments := int(head[26])
	withLacing, err := br.Peek(pageHeaderBytes + segments)
	if err != nil {
		return page{}, eofIsUnexpected(err, 1)
	}
	bodyLen := 0
	for _, l := range withLacing[pageHeaderBytes:] {
		bodyLen += int(l)
	}
	raw, err := br.Peek(pageHeaderBytes + segments + bodyLen)
	if err != nil {
		return page{}, eofIsUnexpected(err, 1)
	}
	if binary.LittleEndian.Uint32(raw[22:26]) != pageCRC(raw) {
		return page{}, errNotPage
	}
	return page{
		granule:   int64(binary.LittleEndian.Uint64(raw[6:14])),
		serial:    binary.LittleEndian.Uint32(raw[14:18]),
		continued: raw[5]&flagContinued != 0,
		eos:       raw[5]&flagEOS != 0,
		lacing:    raw[pageHeaderBytes : pageHeaderBytes+segments],
		body:      raw[pageHeaderBytes+segments:],
		size:      len(raw),
	}, nil
}

// eofIsUnexpected turns an EOF after some bytes of a page into
// io.ErrUnexpectedEOF: the stream ends inside a page.
func eofIsUnexpected(err error, read int) error {
	if errors.Is(err, io.EOF) && read > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// findPage moves br to the first valid page within limit bytes of where it
// is and returns it (not consumed) with how many bytes it skipped.
func findPage(br *bufio.Reader, limit int) (page, int, error) {
	for skipped := 0; skipped < limit; {
		p, err := peekPage(br)
		switch {
		case err == nil:
			return p, skipped, nil
		case !errors.Is(err, errNotPage):
			return page{}, skipped, err
		}
		// On to the next capture pattern.
		buf, _ := br.Peek(min(br.Buffered(), limit-skipped))
		i := bytes.Index(buf[1:], capturePattern)
		step := len(buf) - 3 // the pattern may straddle what is buffered
		if i >= 0 {
			step = i + 1
		}
		step = max(step, 1)
		n, err := br.Discard(step)
		skipped += n
		if err != nil {
			return page{}, skipped, err
		}
	}
	return page{}, limit, fmt.Errorf("no Ogg page within %d bytes", limit)
}

// pageCRC is the page's checksum: CRC-32 with polynomial 0x04c11db7, not
// reflected, over the page with its checksum field taken as zero.
func pageCRC(raw []byte) uint32 {
	crc := crcUpdate(0, raw[:22])
	crc = crcUpdate(crc, []byte{0, 0, 0, 0})
	return crcUpdate(crc, raw[26:])
}

// crcUpdate runs the checksum over b, eight bytes a step (slicing by 8:
// a seek checks tens of kilobytes of pages on the audio goroutine).
func crcUpdate(crc uint32, b []byte) uint32 {
	t := &crcTables
	for len(b) >= 8 {
		crc ^= uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		crc = t[7][crc>>24] ^ t[6][crc>>16&0xFF] ^ t[5][crc>>8&0xFF] ^ t[4][crc&0xFF] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	for _, v := range b {
		crc = crc<<8 ^ t[0][byte(crc>>24)^v]
	}
	return crc
}

// crcTables[0] is the bytewise table; crcTables[k] advances a byte's
// effect by k more bytes.
var crcTables = func() (t [8][256]uint32) {
	for i := range t[0] {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[0][i] = r
	}
	for k := 1; k < 8; k++ {
		for i := range t[k] {
			prev := t[k-1][i]
			t[k][i] = prev<<8 ^ t[0][prev>>24]
		}
	}
	return t
}()
