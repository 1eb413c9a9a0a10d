package oggopus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// encode makes an Ogg Opus file of seconds of the demo tune at rate with
// opusenc and the given options, and returns its path.
func encode(t testing.TB, rate int, seconds float64, channels int, opts ...string) string {
	t.Helper()
	if _, err := exec.LookPath("opusenc"); err != nil {
		t.Fatal("opusenc is missing: install opus-tools (scripts/deps.sh)")
	}
	dir := t.TempDir()
	wav := filepath.Join(dir, "in.wav")
	f, err := os.Create(wav)
	if err != nil {
		t.Fatal(err)
	}
	if err := audiogen.WriteWAV(f, rate, int64(seconds*float64(rate)), audiogen.Tune(3, rate)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "song.opus")
	args := append([]string{"--quiet"}, opts...)
	if channels == 1 {
		args = append(args, "--downmix-mono")
	}
	if b, err := exec.Command("opusenc", append(args, wav, out)...).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v: %s", err, b)
	}
	return out
}

// reference decodes path with opusdec to 48 kHz float frames, as stereo.
func reference(t testing.TB, path string) [][2]float64 {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "ref.raw") // .raw: no WAV header
	if b, err := exec.Command("opusdec", "--quiet", "--float", "--rate", "48000", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("opusdec: %v: %s", err, b)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	channels := channelsOf(t, path)
	var out [][2]float64
	for len(b) >= 4*channels {
		l := float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		r := l
		if channels == 2 {
			r = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4:])))
		}
		out = append(out, [2]float64{l, r})
		b = b[4*channels:]
	}
	return out
}

func channelsOf(t testing.TB, path string) int {
	d := open(t, path)
	return d.head.channels
}

func open(t testing.TB, path string) *Decoder {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readAll streams d to its end.
func readAll(t testing.TB, d *Decoder) [][2]float64 {
	t.Helper()
	var all [][2]float64
	buf := make([][2]float64, 1000)
	for {
		n, ok := d.Stream(buf)
		all = append(all, buf[:n]...)
		if !ok {
			break
		}
	}
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}

// snr is the signal-to-noise ratio of got against want, in dB.
func snr(want, got [][2]float64) float64 {
	var signal, noise float64
	for i := range want {
		for c := range 2 {
			signal += want[i][c] * want[i][c]
			e := want[i][c] - got[i][c]
			noise += e * e
		}
	}
	return 10 * math.Log10(signal/noise)
}

// TestMatchesOpusdec decodes files of every Opus mode (CELT at music
// bitrates, SILK and hybrid at speech bitrates, mono) and compares them
// with opusdec's decode: the same frame count (pre-skip dropped, end
// trimmed by the last granule) and the same samples within the bar.
func TestMatchesOpusdec(t *testing.T) {
	cases := []struct {
		name     string
		rate     int
		seconds  float64
		channels int
		opts     []string
		minSNR   float64 // dB
	}{
		{"celt 128k stereo", 44100, 3.3, 2, []string{"--bitrate", "128"}, 100},
		{"hybrid 24k", 48000, 2.1, 2, []string{"--bitrate", "24"}, 100},
		{"silk wideband 12k mono", 48000, 2.7, 1, []string{"--bitrate", "12"}, 100},
		{"celt 5ms frames", 48000, 1.05, 2, []string{"--bitrate", "96", "--framesize", "5"}, 100},
		// Narrowband SILK (8 kHz inside) differs from libopus by more:
		// 42-56 dB per 60 ms here, far below what 8 kbit/s coding
		// itself changes, so inaudible; the frames still match exactly.
		{"silk narrowband 8k mono 60ms", 16000, 2.7, 1, []string{"--bitrate", "8", "--framesize", "60"}, 40},
		{"silk narrowband 8k stereo", 16000, 2.7, 2, []string{"--bitrate", "8"}, 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := encode(t, c.rate, c.seconds, c.channels, c.opts...)
			want := reference(t, path)
			d := open(t, path)
			if d.Len() != len(want) {
				t.Errorf("Len %d, opusdec gives %d frames", d.Len(), len(want))
			}
			got := readAll(t, d)
			if len(got) != len(want) {
				t.Fatalf("decoded %d frames, opusdec %d", len(got), len(want))
			}
			if s := snr(want, got); s < c.minSNR {
				t.Errorf("SNR against opusdec %.1f dB, want at least %.0f", s, c.minSNR)
			} else {
				t.Logf("SNR against opusdec %.1f dB over %d frames", s, len(got))
			}
		})
	}
}

// TestSeek seeks a 40-second file (so seeks bisect) to frames across it:
// each lands exactly (Position), gives what a decode from the start gives
// there within the bar (the decoder converges over the pre-roll), and the
// same samples each time (every speaker seeking gets the same).
func TestSeek(t *testing.T) {
	path := encode(t, 48000, 40, 2, "--bitrate", "128")
	whole := readAll(t, open(t, path))
	d := open(t, path)
	const span = 4800
	for _, f := range []int{0, 1, 311, 3840, 3841, 48000*7 + 13, 48000 * 20, len(whole) - span, len(whole) - 1} {
		var first [][2]float64
		for try := range 2 {
			if err := d.Seek(f); err != nil {
				t.Fatalf("seek to %d: %v", f, err)
			}
			if d.Position() != f {
				t.Fatalf("seek to %d: position %d", f, d.Position())
			}
			n := min(span, len(whole)-f)
			got := make([][2]float64, n)
			if m, _ := d.Stream(got); m != n {
				t.Fatalf("after a seek to %d: %d frames, want %d", f, m, n)
			}
			if try == 0 {
				first = got
				if s := snr(whole[f:f+n], got); s < 50 {
					t.Errorf("seek to %d: SNR %.1f dB against a decode from the start, want 50", f, s)
				}
				continue
			}
			for i := range got {
				if got[i] != first[i] {
					t.Fatalf("seek to %d: frame %d differs between two seeks", f, f+i)
				}
			}
		}
	}
	if err := d.Seek(len(whole)); err != nil {
		t.Fatalf("seek to the end: %v", err)
	}
	if n, ok := d.Stream(make([][2]float64, 10)); n != 0 || ok {
		t.Errorf("at the end Stream gave %d frames", n)
	}
	if err := d.Seek(len(whole) + 1); err == nil {
		t.Error("a seek past the end succeeded")
	}
}

// TestStreamWithoutSeeking decodes from a plain reader (a song still
// downloading): the same frames as from a seekable file; seeking is refused.
func TestStreamWithoutSeeking(t *testing.T) {
	path := encode(t, 48000, 3, 2, "--bitrate", "64")
	want := readAll(t, open(t, path))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(struct{ io.Reader }{bytes.NewReader(b)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 0 {
		t.Errorf("a plain reader's Len is %d, want 0 (unknown)", d.Len())
	}
	got := readAll(t, d)
	if len(got) != len(want) {
		t.Fatalf("%d frames from a stream, %d from the file", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("frame %d differs", i)
		}
	}
	if err := d.Seek(0); err == nil {
		t.Error("a plain reader seeked")
	}
}

// TestRefusesDamage: a flipped byte fails a page's checksum and stops the
// stream with an error (not a panic, not garbage); other formats and
// surround files are refused at New.
func TestRefusesDamage(t *testing.T) {
	path := encode(t, 48000, 2, 2, "--bitrate", "64")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(b)
	damaged[len(b)/2] ^= 0x40
	d, err := New(bytes.NewReader(damaged))
	if err == nil {
		buf := make([][2]float64, 1024)
		for {
			if _, ok := d.Stream(buf); !ok {
				break
			}
		}
		err = d.Err()
	}
	if err == nil {
		t.Error("a damaged file decoded without an error")
	}
	surround := encode(t, 48000, 1, 2, "--bitrate", "64")
	b, _ = os.ReadFile(surround)
	i := bytes.Index(b, []byte("OpusHead"))
	b[i+18] = 1 // mapping family 1
	if _, err := New(bytes.NewReader(b)); err == nil {
		t.Error("mapping family 1 accepted (and the page checksum not checked)")
	}
	if _, err := New(bytes.NewReader([]byte("fLaC\x00\x00\x00\x22"))); err == nil {
		t.Error("a FLAC header accepted")
	}
}

// BenchmarkSeek seeks a 5-minute file at 128 kbit/s to spread-out frames
// and reads 10 ms: a speaker's seek on its audio goroutine.
func BenchmarkSeek(b *testing.B) {
	d := open(b, encode(b, 48000, 300, 2, "--bitrate", "128"))
	buf := make([][2]float64, 480)
	step := d.Len() / 97
	i := 0
	for b.Loop() {
		i++
		if err := d.Seek(i * step % d.Len()); err != nil {
			b.Fatal(err)
		}
		d.Stream(buf)
	}
}

// BenchmarkDecode decodes 10 ms blocks of 128 kbit/s stereo music.
func BenchmarkDecode(b *testing.B) {
	d := open(b, encode(b, 48000, 60, 2, "--bitrate", "128"))
	buf := make([][2]float64, 480)
	for b.Loop() {
		if _, ok := d.Stream(buf); !ok {
			d.Seek(0)
		}
	}
}

// TestPageCRC: the eight-byte steps give what the bytewise definition
// gives, at every length and alignment.
func TestPageCRC(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i*7 + i/3)
	}
	for n := range len(data) {
		want := uint32(0)
		for _, v := range data[:n] {
			want ^= uint32(v) << 24
			for range 8 {
				if want&0x80000000 != 0 {
					want = want<<1 ^ 0x04c11db7
				} else {
					want <<= 1
				}
			}
		}
		if got := crcUpdate(0, data[:n]); got != want {
			t.Fatalf("%d bytes: %08x, want %08x", n, got, want)
		}
	}
}

// TestSkipsOtherStreams: pages of another logical stream multiplexed in
// (after the headers, and amid the audio) change nothing: the same frames,
// the same length, the same seeks.
func TestSkipsOtherStreams(t *testing.T) {
	path := encode(t, 48000, 20, 2, "--bitrate", "96")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pages [][]byte
	br := bufio.NewReaderSize(bytes.NewReader(b), maxPageBytes)
	for {
		p, err := peekPage(br)
		if err != nil {
			break
		}
		raw := make([]byte, p.size)
		io.ReadFull(br, raw)
		pages = append(pages, raw)
	}
	foreign := func(page []byte) []byte {
		f := bytes.Clone(page)
		f[14]++ // another serial number
		binary.LittleEndian.PutUint32(f[22:], pageCRC(f))
		return f
	}
	var muxed []byte
	for i, p := range pages {
		muxed = append(muxed, p...)
		if i == 1 || i == len(pages)/2 {
			muxed = append(muxed, foreign(pages[i+1])...)
		}
	}
	want := readAll(t, open(t, path))
	d, err := New(bytes.NewReader(muxed))
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != len(want) {
		t.Errorf("Len %d, want %d", d.Len(), len(want))
	}
	got := readAll(t, d)
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("frame %d differs", i)
		}
	}
	for _, f := range []int{0, len(want) / 2, len(want) - 1000} {
		if err := d.Seek(f); err != nil || d.Position() != f {
			t.Fatalf("seek to %d: %v, at %d", f, err, d.Position())
		}
	}
}
