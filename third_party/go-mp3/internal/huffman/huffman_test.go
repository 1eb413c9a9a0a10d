package huffman

import (
	"fmt"
	"testing"

	"github.com/hajimehoshi/go-mp3/internal/bits"
)

// upstreamDecode is Decode as go-mp3 v0.3.4 has it: the tree walked a bit
// at a time. Decode must read the same values and bits, and fail alike.
func upstreamDecode(m *bits.Bits, table_num int) (x, y, v, w int, err error) {
	point := 0
	error := 1
	bitsleft := 32
	treelen := huffmanMain[table_num].treelen
	linbits := huffmanMain[table_num].linbits
	if treelen == 0 {
		return 0, 0, 0, 0, nil
	}
	htptr := huffmanMain[table_num].hufftable
	for {
		if (htptr[point] & 0xff00) == 0 {
			error = 0
			x = int((htptr[point] >> 4) & 0xf)
			y = int(htptr[point] & 0xf)
			break
		}
		if m.Bit() != 0 {
			for (htptr[point] & 0xff) >= 250 {
				point += int(htptr[point]) & 0xff
			}
			point += int(htptr[point]) & 0xff
		} else {
			for (htptr[point] >> 8) >= 250 {
				point += int(htptr[point]) >> 8
			}
			point += int(htptr[point]) >> 8
		}
		bitsleft--
		if bitsleft <= 0 || point >= treelen {
			break
		}
	}
	if error != 0 {
		err := fmt.Errorf("mp3: illegal Huff code in data. bleft = %d, point = %d. tab = %d.",
			bitsleft, point, table_num)
		return 0, 0, 0, 0, err
	}
	if table_num > 31 {
		v = (y >> 3) & 1
		w = (y >> 2) & 1
		x = (y >> 1) & 1
		y = y & 1
		if (v != 0) && (m.Bit() == 1) {
			v = -v
		}
		if (w != 0) && (m.Bit() == 1) {
			w = -w
		}
		if (x != 0) && (m.Bit() == 1) {
			x = -x
		}
		if (y != 0) && (m.Bit() == 1) {
			y = -y
		}
	} else {
		if (linbits != 0) && (x == 15) {
			x += m.Bits(linbits)
		}
		if (x != 0) && (m.Bit() == 1) {
			x = -x
		}
		if (linbits != 0) && (y == 15) {
			y += m.Bits(linbits)
		}
		if (y != 0) && (m.Bit() == 1) {
			y = -y
		}
	}
	return x, y, v, w, nil
}

// decodesAsUpstream decodes data with table until both stop, and fails
// t at the first value, position or error that differs.
func decodesAsUpstream(t *testing.T, data []byte, table int) {
	got, want := bits.New(data), bits.New(data)
	for want.BitPos() < 8*len(data) {
		x, y, v, w, err := Decode(got, table)
		wx, wy, wv, ww, werr := upstreamDecode(want, table)
		if x != wx || y != wy || v != wv || w != ww || fmt.Sprint(err) != fmt.Sprint(werr) || got.BitPos() != want.BitPos() {
			t.Fatalf("table %d at bit %d: %d %d %d %d (%v) at bit %d; upstream %d %d %d %d (%v) at bit %d",
				table, want.BitPos(), x, y, v, w, err, got.BitPos(), wx, wy, wv, ww, werr, want.BitPos())
		}
		if err != nil || huffmanMain[table].treelen == 0 {
			return
		}
	}
}

// Every table, over every 16-bit prefix (so every code word of up to 16
// bits, and the first bits of the longer ones) followed by patterns.
func TestDecodeAsUpstream(t *testing.T) {
	for table := range huffmanMain {
		for prefix := 0; prefix < 1<<16; prefix += 7 {
			data := []byte{byte(prefix >> 8), byte(prefix), 0x5a, 0xc3, 0xff, 0x00, 0x96, 0x3c}
			decodesAsUpstream(t, data, table)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}, uint8(15))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(24))
	f.Add([]byte{0x00, 0x01}, uint8(32))
	f.Fuzz(func(t *testing.T, data []byte, table uint8) {
		decodesAsUpstream(t, data, int(table)%len(huffmanMain))
	})
}
