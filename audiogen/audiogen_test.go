package audiogen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopxl/beep/v2/wav"
)

func TestTimecodeRoundTrip(t *testing.T) {
	for _, i := range []int64{0, 1, 65535, 65536, 1 << 20, 44100 * 600} {
		got, ok := ReadTimecode(Timecode(i))
		if !ok || got != i {
			t.Errorf("frame %d: read back %d, %v", i, got, ok)
		}
	}
	if _, ok := ReadTimecode(Frame{}); ok {
		t.Error("silence read as a timecode")
	}
}

// TestWAVDecodesWithBeep checks that beep's decoder, the one speakers use,
// gives back the exact samples written.
func TestWAVDecodesWithBeep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tc.wav")
	var buf bytes.Buffer
	if err := WriteWAV(&buf, 44100, 70000, Timecode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, format, err := wav.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if format.SampleRate != 44100 || s.Len() != 70000 {
		t.Fatalf("rate %d len %d", format.SampleRate, s.Len())
	}
	samples := make([][2]float64, 70000)
	n, _ := s.Stream(samples)
	for i := range n {
		fr := Frame{L: int16(samples[i][0] * 32768), R: int16(samples[i][1] * 32768)}
		if got, ok := ReadTimecode(fr); !ok || got != int64(i) {
			t.Fatalf("frame %d decoded as %d", i, got)
		}
	}
}
