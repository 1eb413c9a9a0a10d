package audiogen

import (
	"bufio"
	"encoding/binary"
	"io"
)

// WriteBlockFLAC writes a 16-bit stereo FLAC of blocks blocks of blockSize
// frames each (16-65535), without a seek table. Each block is constant, the
// sample of every frame in block i being Timecode(i): constant blocks are
// what an encoder makes of silence, and, at the largest block size, what an
// audio bomb is made of (18 bytes decode to 65535 frames). The stream
// info's MD5 is left zero ("unknown").
func WriteBlockFLAC(w io.Writer, rate, blocks, blockSize int) error {
	bw := bufio.NewWriter(w)
	info := make([]byte, 8+34)
	copy(info, "fLaC")
	info[4] = 0x80 // the last metadata block, STREAMINFO
	info[7] = 34   // its length
	body := info[8:]
	binary.BigEndian.PutUint16(body[0:], uint16(blockSize))
	binary.BigEndian.PutUint16(body[2:], uint16(blockSize))
	// Sample rate (20 bits), channels-1 (3), bits per sample-1 (5), then
	// the 36-bit total number of frames.
	total := uint64(blocks) * uint64(blockSize)
	packed := uint64(rate)<<44 | 1<<41 | 15<<36 | total&(1<<36-1)
	binary.BigEndian.PutUint64(body[10:], packed)
	if _, err := bw.Write(info); err != nil {
		return err
	}
	for i := range blocks {
		if _, err := bw.Write(constantFrame(uint64(i), blockSize, Timecode(int64(i)))); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// constantFrame encodes frame number num: blockSize frames of f, each
// channel a constant subframe.
func constantFrame(num uint64, blockSize int, f Frame) []byte {
	b := []byte{
		0xFF, 0xF8, // sync code, fixed block size
		0x70, // block size: 16 bits at the header's end; sample rate: the stream info's
		0x18, // left and right channels, 16 bits per sample
	}
	b = append(b, utf8Number(num)...)
	b = binary.BigEndian.AppendUint16(b, uint16(blockSize-1))
	b = append(b, crc8(b))
	for _, v := range []int16{f.L, f.R} {
		b = append(b, 0x00) // constant subframe, no wasted bits
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	return binary.BigEndian.AppendUint16(b, crc16(b))
}

// utf8Number is FLAC's "UTF-8" coding of a frame number (up to 36 bits).
func utf8Number(n uint64) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	// Continuation bytes carry 6 bits each; the lead byte says how many.
	var tail []byte
	lead := byte(0x80)   // grows a 1 bit per continuation byte
	room := uint64(0x3F) // the most the lead byte can hold
	for n > room {
		tail = append([]byte{0x80 | byte(n&0x3F)}, tail...)
		n >>= 6
		lead = lead>>1 | 0x80
		room >>= 1
	}
	return append([]byte{lead | byte(n)}, tail...)
}

// crc8 is FLAC's frame header CRC (polynomial x^8+x^2+x+1, from 0).
func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// crc16 is FLAC's frame CRC (polynomial x^16+x^15+x^2+1, from 0).
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x8005
			} else {
				c <<= 1
			}
		}
	}
	return c
}
