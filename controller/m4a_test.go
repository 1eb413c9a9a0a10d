package controller

import (
	"bytes"
	"testing"
)

// TestProbeM4A reads what ffmpeg's M4A headers say of their sound track.
func TestProbeM4A(t *testing.T) {
	for codec, want := range map[string]string{"alac": "alac", "aac": "mp4a"} {
		b, frames := makeM4A(t, codec, 1.5)
		info, err := probeM4A(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		// AAC's header counts the encoder's priming and padding too.
		if info.codec != want || info.sampleRate != 44100 || info.channels != 2 ||
			info.frames < int64(len(frames)) || info.frames > int64(len(frames))+4096 {
			t.Errorf("%s: %+v, want %s, 44100 Hz, 2 channels, about %d frames", codec, info, want, len(frames))
		}
	}
}

// FuzzProbeM4A: any bytes give an error or an answer, within the walk's
// bounds, never a panic.
func FuzzProbeM4A(f *testing.F) {
	for _, codec := range []string{"alac", "aac"} {
		b, _ := makeM4A(f, codec, 0.1)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		probeM4A(bytes.NewReader(b), int64(len(b)))
	})
}
