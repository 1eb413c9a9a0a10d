package musicfolder

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// seedSongs adds a small song of every format to f's corpus.
func seedSongs(f *testing.F) {
	dir := f.TempDir()
	for _, format := range musicgen.AllFormats {
		path := filepath.Join(dir, "seed-"+format+musicgen.Ext(format))
		if err := musicgen.Encode(path, format, fullTags, 0.1, "", nil); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzReadTags: any bytes give bounded tags, never a panic.
func FuzzReadTags(f *testing.F) {
	seedSongs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tags := ReadTags(bytes.NewReader(data))
		if tags.Song != protocol.CleanSong(tags.Song) {
			t.Fatalf("tags not clean: %+v", tags.Song)
		}
	})
}

// FuzzHeaderLength: any bytes give a length or an error, never a panic,
// and a length is never negative.
func FuzzHeaderLength(f *testing.F) {
	seedSongs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		format := DetectFormat(data[:min(len(data), HeadSize)])
		if format == "" {
			return
		}
		l, err := HeaderLength(bytes.NewReader(data), int64(len(data)), format)
		if err == nil && (l.Frames < 0 || l.SampleRate < 0) {
			t.Fatalf("%s: length %+v", format, l)
		}
	})
}

// FuzzGains: gain and peak texts parse to finite values within bounds, or
// fail.
func FuzzGains(f *testing.F) {
	for _, s := range []string{"-6.50 dB", "+2.1dB", "0.912345", "NaN", "1e400", "-1792", "inf dB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseGain(s); err == nil && (math.IsNaN(v) || math.Abs(v) > protocol.MaxGainDb) {
			t.Fatalf("gain %q = %v", s, v)
		}
		if v, err := ParsePeak(s); err == nil && (math.IsNaN(v) || math.Abs(v) > maxPeak) {
			t.Fatalf("peak %q = %v", s, v)
		}
		if v, err := ParseR128(s); err == nil && math.Abs(v) > 128 {
			t.Fatalf("r128 %q = %v", s, v)
		}
	})
}

// FuzzBufferedSeeker: reads and seeks through the buffer give what the
// file holds, wherever they go.
func FuzzBufferedSeeker(f *testing.F) {
	f.Add([]byte("0123456789abcdefghij"), []byte{3, 200, 7, 1, 255, 9})
	f.Fuzz(func(t *testing.T, data, ops []byte) {
		want := bytes.NewReader(data)
		got := newBufferedSeeker(bytes.NewReader(data), make([]byte, 7))
		for i := 0; i+1 < len(ops); i += 2 {
			if ops[i]%3 == 0 { // seek
				off, whence := int64(ops[i+1])-64, int(ops[i]/3)%3
				w, werr := want.Seek(off, whence)
				g, gerr := got.Seek(off, whence)
				if (werr == nil) != (gerr == nil) || werr == nil && w != g {
					t.Fatalf("seek %d/%d: %d %v, want %d %v", off, whence, g, gerr, w, werr)
				}
				continue
			}
			n := int(ops[i+1]) % 16
			w := make([]byte, n)
			g := make([]byte, n)
			wn, _ := io.ReadFull(want, w)
			gn, _ := io.ReadFull(got, g)
			if wn != gn || !bytes.Equal(w[:wn], g[:gn]) {
				t.Fatalf("read %d: %q, want %q", n, g[:gn], w[:wn])
			}
		}
	})
}
