// Package bits provides bit access operations and binary decoding algorithms.
package bits

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mewkiz/flac/internal/hashutil/crc16"
	"github.com/mewkiz/flac/internal/hashutil/crc8"
)

// A Source is a buffered reader whose buffered bytes can be looked at before
// they are consumed; *bufio.Reader is one. A Reader over a Source loads its
// bits ahead, 64 at a time, from the buffered bytes, and discards only the
// bytes whose bits it has consumed (Release), so the source stays where an
// exact reader would have left it.
type Source interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
}

// A Reader handles bit reading operations, and the CRC-8 and CRC-16 of the
// bytes it reads.
type Reader struct {
	src    Source
	buf    []byte // bytes peeked from src and not yet discarded
	pos    int    // bytes of buf loaded into cache
	summed int    // bytes of buf already added to the checksums
	// The next n bits, left-aligned; the bits below them are zero.
	cache uint64
	n     uint
	crc16 uint16
	crc8  uint8
	crc8s bool // whether crc8 is still being computed
}

// NewReader returns a new Reader that reads bits from r, reading r a byte at
// a time when it needs one: r is read no further than the last byte used.
func NewReader(r io.Reader) *Reader {
	br := &Reader{}
	br.reset(&oneByte{r: r})
	return br
}

// Reset makes br read bits from r from its next byte on, with the checksums
// cleared. If r is a Source, bits are read ahead from its buffer: Release
// leaves r after the last byte used. Otherwise r is read a byte at a time.
func (br *Reader) Reset(r io.Reader) {
	src, ok := r.(Source)
	if !ok {
		src = &oneByte{r: r}
	}
	br.reset(src)
}

func (br *Reader) reset(src Source) {
	*br = Reader{src: src, crc8s: true}
}

// Read reads and returns the next n bits, at most 64.
func (br *Reader) Read(n uint) (x uint64, err error) {
	if n > maxRead {
		if n > 64 {
			return 0, fmt.Errorf("bit.Reader.Read: invalid number of bits; n (%d) exceeds 64", n)
		}
		hi, err := br.Read(n - 32)
		if err != nil {
			return 0, err
		}
		lo, err := br.Read(32)
		if err != nil {
			return 0, unexpected(err)
		}
		return hi<<32 | lo, nil
	}
	if br.n < n {
		if err := br.refill(n); err != nil {
			return 0, err
		}
	}
	x = br.cache >> (64 - n) // 0 for n == 0: a shift by 64 is zero
	br.cache <<= n
	br.n -= n
	return x, nil
}

// maxRead is the most bits the cache holds after a refill from any number of
// bits: whole bytes are loaded while they fit, so at least 57.
const maxRead = 57

// ReadByte reads and returns the next 8 bits.
func (br *Reader) ReadByte() (byte, error) {
	x, err := br.Read(8)
	return byte(x), err
}

// SkipToByte skips the bits up to the next byte boundary.
func (br *Reader) SkipToByte() {
	skip := br.n % 8
	br.cache <<= skip
	br.n -= skip
}

// CRC8 returns the CRC-8 of the bytes read since Reset and stops computing
// it; br must be at a byte boundary.
func (br *Reader) CRC8() uint8 {
	br.sum(br.consumed())
	br.crc8s = false
	return br.crc8
}

// CRC16 returns the CRC-16 of the bytes read since Reset; br must be at a
// byte boundary.
func (br *Reader) CRC16() uint16 {
	br.sum(br.consumed())
	return br.crc16
}

// Release discards from the source the bytes read, and forgets the bits
// read ahead of them; br must be at a byte boundary. Reads go on from the
// source's next byte, with the checksums kept.
func (br *Reader) Release() error {
	used := br.consumed()
	br.sum(used)
	_, err := br.src.Discard(used)
	br.buf, br.pos, br.summed, br.cache, br.n = nil, 0, 0, 0, 0
	return err
}

// consumed is how many bytes of buf have been read, at a byte boundary.
func (br *Reader) consumed() int {
	return br.pos - int(br.n/8)
}

// sum adds the bytes of buf up to end to the checksums.
func (br *Reader) sum(end int) {
	b := br.buf[br.summed:end]
	br.crc16 = crc16.Update(br.crc16, crc16.IBMTable, b)
	if br.crc8s {
		br.crc8 = crc8.Update(br.crc8, crc8.ATMTable, b)
	}
	br.summed = end
}

// refill loads bytes into the cache until it holds need bits (at most
// maxRead). Bytes are fetched from the source only while they are needed.
func (br *Reader) refill(need uint) error {
	for br.n < need {
		switch {
		case br.pos+8 <= len(br.buf):
			br.cache, br.n, br.pos = load(br.cache, br.n, br.buf, br.pos)
		case br.pos < len(br.buf):
			br.cache |= uint64(br.buf[br.pos]) << (56 - br.n)
			br.n += 8
			br.pos++
		default:
			if err := br.next(); err != nil {
				if err == io.EOF && br.n > 0 {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
	}
	return nil
}

// load loads the whole bytes of b from pos on that fit into a cache of n
// bits (n <= 56; b holds 8 bytes from pos).
func load(cache uint64, n uint, b []byte, pos int) (uint64, uint, int) {
	w := binary.BigEndian.Uint64(b[pos:])
	bytes := (64 - n) / 8
	w &^= 1<<((64-8*bytes)&63) - 1 // the masks change nothing: shifts by one instruction
	return cache | w>>(n&63), n + 8*bytes, pos + int(bytes)
}

// next replaces buf, all of it loaded, by the source's next buffered bytes.
// The bytes loaded are all read by the request that needs more, so they are
// the reader's: they are added to the checksums and discarded.
func (br *Reader) next() error {
	br.sum(br.pos)
	if _, err := br.src.Discard(br.pos); err != nil {
		return err
	}
	br.buf, br.pos, br.summed = nil, 0, 0
	n := br.src.Buffered()
	if n == 0 {
		n = 1 // the source reads what it can
	}
	b, err := br.src.Peek(n)
	if len(b) == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	if n == 1 {
		b, _ = br.src.Peek(br.src.Buffered())
	}
	br.buf = b
	return nil
}

// unexpected returns io.ErrUnexpectedEOF if err is io.EOF, and err
// otherwise.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// oneByte is the Source of an io.Reader that is not one: it reads a byte at
// a time, so nothing is read ahead.
type oneByte struct {
	r   io.Reader
	b   [1]byte
	has bool
}

func (s *oneByte) Buffered() int {
	if s.has {
		return 1
	}
	return 0
}

func (s *oneByte) Peek(int) ([]byte, error) {
	if !s.has {
		if _, err := io.ReadFull(s.r, s.b[:]); err != nil {
			return nil, err
		}
		s.has = true
	}
	return s.b[:], nil
}

func (s *oneByte) Discard(n int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	if !s.has || n > 1 {
		return 0, errors.New("bits: discard of bytes not peeked")
	}
	s.has = false
	return 1, nil
}
