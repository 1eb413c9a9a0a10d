package audiogen

import (
	"bytes"
	"testing"

	"github.com/gopxl/beep/v2/flac"
)

// TestWriteBlockFLAC: a decoder reads back every block's timecode, in
// blocks whose frame numbers take one to four bytes to code.
func TestWriteBlockFLAC(t *testing.T) {
	const blocks, blockSize = 70000, 16
	var b bytes.Buffer
	if err := WriteBlockFLAC(&b, 44100, blocks, blockSize); err != nil {
		t.Fatal(err)
	}
	s, format, err := flac.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if format.SampleRate != 44100 || format.NumChannels != 2 || s.Len() != blocks*blockSize {
		t.Fatalf("format %+v, %d frames", format, s.Len())
	}
	buf := make([][2]float64, blockSize)
	for i := range blocks {
		n, ok := s.Stream(buf)
		if n != blockSize || !ok {
			t.Fatalf("block %d: %d frames, %v (%v)", i, n, ok, s.Err())
		}
		f := Frame{L: int16(buf[0][0] * 32768), R: int16(buf[blockSize-1][1] * 32768)}
		if got, ok := ReadTimecode(f); !ok || got != int64(i) {
			t.Fatalf("block %d reads as %d", i, got)
		}
	}
	if n, _ := s.Stream(buf); n != 0 {
		t.Fatalf("%d frames past the end", n)
	}
}
