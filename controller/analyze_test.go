package controller

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// blockFLAC returns a FLAC of constant blocks (audiogen.WriteBlockFLAC); a
// lying one claims an unknown length in its header, so that only decoding
// tells.
func blockFLAC(t testing.TB, rate, blocks, blockSize int, lying bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := audiogen.WriteBlockFLAC(&b, rate, blocks, blockSize); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if lying {
		// The 36-bit sample count ends the stream info's 8 bytes at 18:
		// "fLaC", block header (4), block sizes (4), frame sizes (6).
		data[21] &= 0xF0
		clear(data[22:26])
	}
	return data
}

// analyzeBytes writes data to a file and analyzes it.
func analyzeBytes(t *testing.T, data []byte) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "song")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = analyze(f)
	return err
}

// wavWith rewrites makeWAV's header to say rate and channels.
func wavWith(rate, channels int) []byte {
	data := makeWAV(8000, 8000, 1)
	binary.LittleEndian.PutUint16(data[22:], uint16(channels))
	binary.LittleEndian.PutUint32(data[24:], uint32(rate))
	binary.LittleEndian.PutUint32(data[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(data[32:], uint16(channels*2))
	return data
}

// TestAnalyzeRefusesAudioBombs: files that decode to far more audio than
// their size, or to more than the limits, are refused, and refused early;
// silence, the most compressible real audio, is accepted.
func TestAnalyzeRefusesAudioBombs(t *testing.T) {
	const rate = 44100
	// A header that says 12.4 h (as a 537 KB bomb's does) is refused before
	// any decoding.
	claims12h := blockFLAC(t, rate, 10, 65535, false)
	binary.BigEndian.PutUint32(claims12h[22:], 30000*65535)
	if err := analyzeBytes(t, claims12h); !errors.Is(err, errNotAudio) || !strings.Contains(err.Error(), "longer than 6h") {
		t.Errorf("12 h bomb: %v", err)
	}
	// 25 minutes in 18 KB, its header silent about its length: refused for
	// its frames per byte. Its tail is garbage, which a decoder reaching it
	// would fail on: the refusal comes before.
	bomb := blockFLAC(t, rate, 1000, 65535, true)
	tail := len(bomb) / 2
	copy(bomb[tail:], bytes.Repeat([]byte{0xA5}, len(bomb)-tail))
	if err := analyzeBytes(t, bomb); !errors.Is(err, errNotAudio) || !strings.Contains(err.Error(), "frames per byte") {
		t.Errorf("lying bomb: %v", err)
	}
	// Two minutes of silence as an encoder writes it (4096-frame blocks).
	silence := blockFLAC(t, rate, 2*60*rate/4096, 4096, true)
	f := filepath.Join(t.TempDir(), "silence.flac")
	os.WriteFile(f, silence, 0o644)
	file, _ := os.Open(f)
	defer file.Close()
	song, err := analyze(file)
	if err != nil || song.Frames != int64(2*60*rate/4096*4096) {
		t.Errorf("silence: %+v, %v", song, err)
	}

	for _, tc := range []struct {
		name           string
		rate, channels int
		want           string
	}{
		{"4 kHz", 4000, 2, "outside 8000-192000 Hz"},
		{"384 kHz", 384000, 2, "outside 8000-192000 Hz"},
		{"5.1", 48000, 6, "mono and stereo"},
	} {
		if err := analyzeBytes(t, wavWith(tc.rate, tc.channels)); !errors.Is(err, errNotAudio) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := analyzeBytes(t, wavWith(8000, 1)); err != nil {
		t.Errorf("8 kHz mono: %v", err)
	}

	// Length fields that decoders would allocate before reading: 34 bytes
	// of WAV whose first chunk claims 2 GB (the decoder took 8 GB), a FLAC
	// comment claiming 4 billion tags, a FLAC picture claiming 4 GB.
	wavClaim := []byte("RIFF\xb4\x01\x00\x00WAVE#\x00@\x1f\x00\x00\x00}\x00\x00\x04\x00\x10\x00data\x90\x01\x00\x00")
	flac := blockFLAC(t, 8000, 10, 4096, false)
	comment := []byte{0x04, 0, 0, 8, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF} // vendor "", 2^32-1 tags
	picture := append([]byte{0x06, 0, 0, 32}, make([]byte, 32)...)
	copy(picture[4+28:], []byte{0xFF, 0xFF, 0xFF, 0xFF}) // after type, MIME, description and 16 bytes: the data's length
	for name, data := range map[string][]byte{
		"wav chunk":    wavClaim,
		"flac comment": withBlock(flac, comment),
		"flac picture": withBlock(flac, picture),
	} {
		if err := analyzeBytes(t, data); !errors.Is(err, errNotAudio) || !strings.Contains(err.Error(), "past") && !strings.Contains(err.Error(), "claims") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// withBlock inserts a metadata block after a FLAC's stream info, which is
// then no longer the last.
func withBlock(flac, block []byte) []byte {
	out := append([]byte(nil), flac[:8+34]...)
	out[4] &^= 0x80
	block = append([]byte(nil), block...)
	block[0] |= 0x80
	return append(append(out, block...), flac[8+34:]...)
}
