package mp3

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// A frame decoded after the first few allocates only the few bytes its
// header and CRC are read into (through the source's interface): its
// main data, side information and PCM reuse the previous frame's.
func TestFramesReuseBuffers(t *testing.T) {
	data, err := os.ReadFile("testdata/cbr128_joint_crc.mp3")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 4*1152)
	for range 4 {
		if _, err := io.ReadFull(d, frame); err != nil {
			t.Fatal(err)
		}
	}
	const headerAndCRC = 2
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := io.ReadFull(d, frame); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > headerAndCRC {
		t.Errorf("decoding a frame allocates %v times, want at most %d", allocs, headerAndCRC)
	}
}
