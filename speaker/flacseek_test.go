package speaker

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopxl/beep/v2/flac"

	"github.com/tutti-audio/tutti/audiogen"
)

// countingFile counts the bytes read from a file.
type countingFile struct {
	f *os.File
	n *atomic.Int64
}

func (c countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func (c countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

// longFLAC writes a FLAC of the given length without a seek table, of
// 4096-frame blocks, each constant at its block's timecode.
func longFLAC(t *testing.T, length time.Duration) (path string, frames int64) {
	t.Helper()
	const rate, blockSize = 44100, 4096
	blocks := int(length.Seconds()) * rate / blockSize
	path = filepath.Join(t.TempDir(), "long.flac")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := audiogen.WriteBlockFLAC(f, rate, blocks, blockSize); err != nil {
		t.Fatal(err)
	}
	return path, int64(blocks * blockSize)
}

// blockAt reads which block the frame in buf came from.
func blockAt(t *testing.T, frame [2]float64) int64 {
	t.Helper()
	f := audiogen.Frame{L: int16(math.Round(frame[0] * 32768)), R: int16(math.Round(frame[1] * 32768))}
	block, ok := audiogen.ReadTimecode(f)
	if !ok {
		t.Fatalf("frame %v carries no timecode", frame)
	}
	return block
}

// TestFLACSeekBisects: seeks in a 6-hour FLAC without a seek table land on
// the exact frame, and one near the end reads a small part of the file,
// where the decoder's own seek reads all of it.
func TestFLACSeekBisects(t *testing.T) {
	path, frames := longFLAC(t, 6*time.Hour)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	var read atomic.Int64
	seeker, err := newFLACSeeker(countingFile{f, &read}, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{0, 1, 4095, 4096, 12345678, frames / 2, frames - 10*44100, frames - 1} {
		read.Store(0)
		dec, err := seeker.decoderAt(at)
		if err != nil {
			t.Fatalf("seek to %d: %v", at, err)
		}
		buf := make([][2]float64, 1)
		if n, _ := dec.Stream(buf); n != 1 {
			t.Fatalf("seek to %d: nothing to play", at)
		}
		if got := blockAt(t, buf[0]); got != at/4096 {
			t.Errorf("seek to %d played block %d, want %d", at, got, at/4096)
		}
		if at == frames-10*44100 {
			t.Logf("seek to 10 s before the end read %d of %d bytes", read.Load(), info.Size())
			if read.Load() > info.Size()/8 {
				t.Errorf("seek near the end read %d of %d bytes", read.Load(), info.Size())
			}
		}
	}

	// The decoder's own seek, for contrast (in 10 minutes: it decodes every
	// frame before the target).
	path, frames = longFLAC(t, 10*time.Minute)
	short, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	info, _ = short.Stat()
	read.Store(0)
	dec, _, err := flac.Decode(countingFile{short, &read})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Seek(int(frames - 10*44100)); err != nil {
		t.Fatal(err)
	}
	if read.Load() < info.Size()*9/10 {
		t.Errorf("the decoder's own seek read only %d of %d bytes", read.Load(), info.Size())
	}
}

// TestSeekNearTheEndOfALongSong: a player over a 6-hour FLAC asked for
// the audio 10 s before its end plays it at once, on the playback path.
func TestSeekNearTheEndOfALongSong(t *testing.T) {
	path, frames := longFLAC(t, 6*time.Hour)
	p, err := openSong("long", path, nil, nil, 44100, 0, subframe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	want := frames - 10*44100
	out := make([][2]float64, 512)
	start := time.Now()
	if err := p.read(out, float64(want), 44100/10, frames); err != nil {
		t.Fatal(err)
	}
	t.Logf("seek 10 s before the end of a 6-hour FLAC and the first block took %v", time.Since(start))
	// The fade-in scales the first frames; the last is whole.
	if got := blockAt(t, out[len(out)-1]); got != (want+int64(len(out))-1)/4096 {
		t.Errorf("played block %d, want %d", got, (want+int64(len(out))-1)/4096)
	}
}

// FuzzFLACSeeker: a seek in any file starting like a FLAC ends, and either
// fails or gives a decoder; decoder panics are recovered by the player
// (songPlayer.read), as here.
func FuzzFLACSeeker(f *testing.F) {
	var b bytes.Buffer
	audiogen.WriteBlockFLAC(&b, 8000, 40, 16)
	f.Add(b.Bytes(), uint32(300))
	f.Add(b.Bytes()[:100], uint32(5))
	f.Fuzz(func(t *testing.T, data []byte, target uint32) {
		seeker, err := newFLACSeeker(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		defer func() { recover() }()
		if dec, err := seeker.decoderAt(int64(target % 1000)); err == nil {
			dec.Stream(make([][2]float64, 16))
		}
	})
}
