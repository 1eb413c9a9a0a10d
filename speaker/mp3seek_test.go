package speaker

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/tutti-audio/tutti/audiogen"
)

// encodeMP3 encodes seconds of a tune with noise (so that the encoder
// leans on the bit reservoir) with lame and the given options, and returns
// the file's path.
func encodeMP3(t testing.TB, seconds int, opts ...string) string {
	t.Helper()
	tune := audiogen.Tune(3, 44100)
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := func(i int64) audiogen.Frame {
		fr := tune(i)
		if i/44100%3 == 1 { // every third second loud noise
			fr.L += int16(rng.IntN(16000) - 8000)
			fr.R -= int16(rng.IntN(16000) - 8000)
		}
		return fr
	}
	return encodeTune(t, seconds, noisy, "mp3", func(wav, out string) []string {
		return append(append([]string{"lame", "--quiet"}, opts...), wav, out)
	})
}

// decodeAll is what go-mp3 decodes of path from its start.
func decodeAll(t testing.TB, path string) [][2]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	dec, _, err := mp3.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	all := make([][2]float64, 0, dec.Len())
	buf := make([][2]float64, 4096)
	for {
		n, ok := dec.Stream(buf)
		all = append(all, buf[:n]...)
		if !ok {
			break
		}
	}
	if err := dec.Err(); err != nil {
		t.Fatal(err)
	}
	if len(all) != dec.Len() {
		t.Fatalf("go-mp3 decoded %d samples of the %d it reports", len(all), dec.Len())
	}
	return all
}

// openMP3Seeker indexes path and returns a seeker over it, reading through
// counted.
func openMP3Seeker(t testing.TB, path string, counted *atomic.Int64) *mp3Seeker {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	idx, err := indexMP3(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		t.Fatal(err)
	}
	size, err := fileSize(f)
	if err != nil {
		t.Fatal(err)
	}
	return &mp3Seeker{f: countingReaderAt{f, counted}, size: size, index: idx}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// A decoder from the seeker delivers, from any sample, exactly what a
// decode from the start delivers there: the same samples, bit for bit,
// and the same length, over CBR, VBR, mono, low-rate (deep reservoir) and
// MPEG-2 files.
func TestMP3SeekMatchesDecodeFromStart(t *testing.T) {
	for name, opts := range map[string][]string{
		"cbr128":   {"-b", "128"},
		"vbr":      {"-V", "2"},
		"mono32":   {"-m", "m", "-b", "32"},
		"mpeg2":    {"--resample", "22.05", "-b", "24"},
		"crc":      {"-p", "-b", "128"},
		"crcmpeg2": {"-p", "-b", "64"},
		"id3":      {"--tt", "a title", "--add-id3v2", "-b", "96"},
		"stereo48": {"-m", "s", "--resample", "48", "-b", "48"},
	} {
		t.Run(name, func(t *testing.T) {
			path := encodeMP3(t, 12, opts...)
			all := decodeAll(t, path)
			var counted atomic.Int64
			s := openMP3Seeker(t, path, &counted)
			if s.index.samples != int64(len(all)) {
				t.Fatalf("index says %d samples, go-mp3 decodes %d", s.index.samples, len(all))
			}
			targets := []int64{0, 1, 1151, 1152, 1153, 2257, 5000, 44100, 44100*4 + 577, int64(len(all)) / 2,
				int64(len(all)) - 5000, int64(len(all)) - 1, int64(len(all))}
			for i := 0; i < 20; i++ {
				targets = append(targets, rand.Int64N(int64(len(all))))
			}
			for _, at := range targets {
				dec, format, err := s.decoderAt(at)
				if err != nil {
					t.Fatalf("decoder at %d: %v", at, err)
				}
				if format.SampleRate == 0 || dec.Len() != len(all) {
					t.Fatalf("decoder at %d: rate %d, length %d of %d", at, format.SampleRate, dec.Len(), len(all))
				}
				want := all[at:min(at+3000, int64(len(all)))]
				got := make([][2]float64, 3000)
				n := streamFull(dec, got)
				if err := dec.Err(); err != nil {
					t.Fatalf("decoder at %d: %v", at, err)
				}
				if n != len(want) {
					t.Fatalf("decoder at %d: %d samples, want %d", at, n, len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("decoder at %d: sample %d is %v, from the start it is %v", at, at+int64(i), got[i], want[i])
					}
				}
			}
		})
	}
}

// streamFull streams into buf until it is full or the stream ends.
func streamFull(s beep.Streamer, buf [][2]float64) int {
	total := 0
	for total < len(buf) {
		n, ok := s.Stream(buf[total:])
		total += n
		if !ok {
			break
		}
	}
	return total
}

// repeatMP3 writes a long MP3 file: the frames of a short one (its first,
// an info frame, aside), copies times over. Each copy's first frame takes
// no bits from before it, so the stream is as valid as the short one.
func repeatMP3(t testing.TB, short string, copies int) string {
	t.Helper()
	data, err := os.ReadFile(short)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := indexMP3(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var counted atomic.Int64
	s := &mp3Seeker{f: countingReaderAt{bytes.NewReader(data), &counted}, size: int64(len(data)), index: idx}
	frames, err := s.walk(idx.marks[0], 2*1152) // the info frame and the first two of audio
	if err != nil {
		t.Fatal(err)
	}
	head, body := data[:frames[1].off], data[frames[1].off:]
	out := filepath.Join(t.TempDir(), "long.mp3")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(head); err != nil {
		t.Fatal(err)
	}
	for range copies {
		if _, err := f.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Opening an hour-long MP3 at its start and seeking near its end read a
// bounded number of bytes, whatever the file's length; and what a seek
// delivers is what streaming on from an earlier seek delivers there.
func TestMP3SeekReadsBoundedBytes(t *testing.T) {
	long := repeatMP3(t, encodeMP3(t, 60, "-b", "32"), 60)
	var counted atomic.Int64
	s := openMP3Seeker(t, long, &counted)
	info, err := os.Stat(long)
	if err != nil {
		t.Fatal(err)
	}
	end := s.index.samples
	// A seek walks at most mp3IndexStride frames from a mark (a mark
	// further back when those hold too little of the bit reservoir), then
	// decodes a made-up frame and mp3PrerollFrames+1 frames, read in
	// go-mp3's and bufio's chunks: 128 KiB, a hundredth of this file.
	const bound = 128 << 10
	for _, at := range []int64{0, end / 2, end - 44100, end - 1} {
		counted.Store(0)
		dec, _, err := s.decoderAt(at)
		if err != nil {
			t.Fatal(err)
		}
		got := make([][2]float64, 1000)
		n := streamFull(dec, got)
		if read := counted.Load(); read > bound || read*100 > info.Size() {
			t.Errorf("decoder at %d of %d read %d bytes of %d", at, end, read, info.Size())
		}
		if at == 0 {
			continue
		}
		from := max(at-5*44100, 0)
		earlier, _, err := s.decoderAt(from)
		if err != nil {
			t.Fatal(err)
		}
		want := make([][2]float64, at-from+int64(n))
		if streamFull(earlier, want) != len(want) {
			t.Fatalf("decoder at %d ends early", from)
		}
		for i := range n {
			if got[i] != want[at-from+int64(i)] {
				t.Fatalf("decoder at %d: sample %d differs from the decoder at %d", at, at+int64(i), from)
			}
		}
	}
}

// A player over a verified MP3 (as the engine opens it) seeks through the
// index: asked for the audio 2 s before the end, it plays what a decode
// from the start plays there (after the fade-in).
func TestMP3PlayerSeeksThroughTheIndex(t *testing.T) {
	path := encodeMP3(t, 12, "-b", "128")
	all := decodeAll(t, path)
	files := &memFiles{}
	files.put("song", path)
	p, err := openSong("song", path, nil, files.MP3Index, 44100, 0, subframe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.mp3 == nil || p.dec.Len() != len(all) {
		t.Fatalf("player: indexed %v, length %d, want %d", p.mp3 != nil, p.dec.Len(), len(all))
	}
	want := int64(len(all)) - 2*44100
	out := make([][2]float64, 1024)
	if err := p.read(out, float64(want), 44100/10, int64(len(all))); err != nil {
		t.Fatal(err)
	}
	for i := fadeFrames * 44100 / 1000; i < len(out); i++ {
		if out[i] != all[want+int64(i)] {
			t.Fatalf("sample %d: %v, from the start %v", want+int64(i), out[i], all[want+int64(i)])
		}
	}
}

// The cache indexes an MP3 when it verifies it, not other songs, and
// forgets the index with the song.
func TestCacheIndexesMP3(t *testing.T) {
	c, err := newCache(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(encodeMP3(t, 3, "-b", "64"))
	if err != nil {
		t.Fatal(err)
	}
	mp3Sha, wavSha := fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)
	if err := os.WriteFile(c.path(mp3Sha), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path(wavSha), []byte("RIFF and the rest"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.markVerified(mp3Sha)
	c.markVerified(wavSha)
	index, err := c.MP3Index(mp3Sha)
	if want, _ := goMP3Length(data); err != nil || index.samples != want {
		t.Fatalf("mp3 index: %v, %v; go-mp3 counts %d samples", index, err, want)
	}
	if _, err := c.MP3Index(wavSha); err == nil {
		t.Error("a WAV song has an mp3 index")
	}
	if err := c.drop(mp3Sha); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MP3Index(mp3Sha); err == nil {
		t.Error("a dropped song still has its index")
	}
}

// FuzzMP3Index: indexing any bytes ends, with an index or an error; where
// go-mp3 opens the same bytes, the index counts the samples it counts; and
// a seek anywhere in an indexed file ends, with a decoder or an error
// (decoder panics are recovered by the player, as here).
func FuzzMP3Index(f *testing.F) {
	short, err := os.ReadFile(encodeMP3(f, 1, "-b", "32"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(short, uint32(3000))
	f.Add(short[:300], uint32(5))
	f.Add(append([]byte("ID3\x03\x00\x00\x00\x00\x00\x10"), short...), uint32(20000))
	f.Fuzz(func(t *testing.T, data []byte, target uint32) {
		index, err := indexMP3(bytes.NewReader(data))
		if err != nil {
			return
		}
		// go-mp3 reads an ID3 tag into memory, up to 256 MiB of it.
		if !bytes.HasPrefix(data, []byte("ID3")) {
			if want, ok := goMP3Length(data); ok && want != index.samples {
				t.Fatalf("index counts %d samples, go-mp3 %d", index.samples, want)
			}
		}
		defer func() { recover() }()
		s := &mp3Seeker{f: bytes.NewReader(data), size: int64(len(data)), index: index}
		if dec, _, err := s.decoderAt(int64(target) % (index.samples + 1)); err == nil {
			dec.Stream(make([][2]float64, 16))
		}
	})
}

// goMP3Length is the length go-mp3 reports for data, if it opens it.
func goMP3Length(data []byte) (n int64, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	seekable := struct {
		*bytes.Reader
		io.Closer
	}{bytes.NewReader(data), io.NopCloser(nil)}
	dec, _, err := mp3.Decode(seekable) // it indexes what it can seek
	if err != nil {
		return 0, false
	}
	return int64(dec.Len()), true
}
