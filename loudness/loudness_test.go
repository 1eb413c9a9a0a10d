package loudness

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// signal is a test signal: its sample at frame i of channel c.
type signal func(i int, c int) float64

func tone(freq, amp float64, rate int) signal {
	return func(i, c int) float64 { return amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)) }
}

func noise(amp float64, seed uint64) signal {
	r := rand.New(rand.NewPCG(seed, seed))
	var last [2]float64
	lastFrame := -1
	return func(i, c int) float64 {
		if i != lastFrame { // one draw per channel and frame, in order
			last = [2]float64{r.Float64()*2 - 1, r.Float64()*2 - 1}
			lastFrame = i
		}
		return amp * last[c]
	}
}

// parts plays signals one after the other, each for its seconds.
func parts(rate int, seconds []float64, signals []signal) signal {
	return func(i, c int) float64 {
		start := 0
		for k, s := range seconds {
			n := int(s * float64(rate))
			if i < start+n {
				return signals[k](i-start, c)
			}
			start += n
		}
		return 0
	}
}

// loudnessCase is a file to measure with both the Meter and ffmpeg.
type loudnessCase struct {
	name     string
	rate     int
	channels int
	seconds  float64
	signal   signal
}

func loudnessCases() []loudnessCase {
	return []loudnessCase{
		{"sine 1 kHz 48 kHz", 48000, 2, 10, tone(1000, 0.1, 48000)},
		{"sine 100 Hz 44.1 kHz", 44100, 2, 10, tone(100, 0.5, 44100)},
		{"sine 10 kHz 96 kHz", 96000, 2, 6, tone(10000, 0.3, 96000)},
		{"noise 44.1 kHz", 44100, 2, 10, noise(0.3, 1)},
		{"noise 96 kHz", 96000, 2, 5, noise(0.9, 2)},
		{"mono sine 440 Hz 48 kHz", 48000, 1, 8, tone(440, 0.25, 48000)},
		// Silence (under the absolute gate), a tone, then one 40 dB
		// quieter (under the relative gate): only the first tone counts.
		{"gates 48 kHz", 48000, 2, 12, parts(48000, []float64{3, 5, 4},
			[]signal{func(int, int) float64 { return 0 }, tone(1000, 0.5, 48000), tone(1000, 0.005, 48000)})},
		{"gates 44.1 kHz", 44100, 2, 12, parts(44100, []float64{4, 4, 4},
			[]signal{tone(500, 0.002, 44100), noise(0.4, 3), func(int, int) float64 { return 0 }})},
		// Between the gates: a quieter part 6 dB down still counts.
		{"steps 96 kHz", 96000, 2, 8, parts(96000, []float64{4, 4},
			[]signal{tone(2000, 0.4, 96000), tone(2000, 0.2, 96000)})},
	}
}

// samples renders a case as 16-bit PCM, as the WAV file holds it.
func (lc loudnessCase) samples() []int16 {
	frames := int(lc.seconds * float64(lc.rate))
	out := make([]int16, 0, frames*lc.channels)
	for i := range frames {
		for c := range lc.channels {
			v := math.Round(lc.signal(i, c) * 32767)
			out = append(out, int16(max(-32768, min(32767, v))))
		}
	}
	return out
}

func writeWAV(t *testing.T, path string, rate, channels int, pcm []int16) {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	data := uint32(len(pcm) * 2)
	for _, field := range []any{
		[4]byte{'R', 'I', 'F', 'F'}, 36 + data, [4]byte{'W', 'A', 'V', 'E'},
		[4]byte{'f', 'm', 't', ' '}, uint32(16), uint16(1), uint16(channels),
		uint32(rate), uint32(rate * channels * 2), uint16(channels * 2), uint16(16),
		[4]byte{'d', 'a', 't', 'a'}, data, pcm,
	} {
		if err := binary.Write(w, binary.LittleEndian, field); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	ffmpegIntegrated = regexp.MustCompile(`lavfi\.r128\.I=(-?[0-9.]+|-inf)`)
	ffmpegPeak       = regexp.MustCompile(`Peak:\s+(-?[0-9.]+|-inf) dBFS`)
)

// ffmpegLoudness is what ffmpeg's ebur128 filter measures of a file: the
// integrated loudness after its last frame (to 0.001 LU, from the frame
// metadata; its summary rounds to 0.1) and the sample peak in dBFS.
func ffmpegLoudness(t *testing.T, path string) (integrated, peakDb float64) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed to check loudness against (scripts/deps.sh installs it)")
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-i", path,
		"-af", "ebur128=peak=sample:metadata=1,ametadata=print:key=lavfi.r128.I:file=-",
		"-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	all := ffmpegIntegrated.FindAllSubmatch(out, -1)
	peak := ffmpegPeak.FindSubmatch(out)
	if len(all) == 0 || peak == nil {
		t.Fatalf("no loudness in ffmpeg's output:\n%s", out)
	}
	return parseDb(t, all[len(all)-1][1]), parseDb(t, peak[1])
}

func parseDb(t *testing.T, b []byte) float64 {
	if string(b) == "-inf" {
		return math.Inf(-1)
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// measure runs a Meter over pcm in uneven blocks, as a decoder hands them.
func measure(t *testing.T, rate, channels int, pcm []int16) Result {
	t.Helper()
	m, err := New(rate, channels)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][2]float64, len(pcm)/channels)
	for i := range frames {
		for c := range 2 {
			frames[i][c] = float64(pcm[i*channels+min(c, channels-1)]) / 32768
		}
	}
	for len(frames) > 0 {
		n := min(len(frames), 1000+len(frames)%3001)
		m.Write(frames[:n])
		frames = frames[n:]
	}
	return m.Result()
}

// TestMatchesFFmpeg measures generated files (tones, noise, gated parts;
// 44.1, 48 and 96 kHz; mono and stereo) with the Meter and with ffmpeg's
// ebur128 filter: integrated loudness within 0.1 LU, sample peak within 0.1 dB.
func TestMatchesFFmpeg(t *testing.T) {
	dir := t.TempDir()
	for _, lc := range loudnessCases() {
		t.Run(lc.name, func(t *testing.T) {
			pcm := lc.samples()
			path := filepath.Join(dir, lc.name+".wav")
			writeWAV(t, path, lc.rate, lc.channels, pcm)
			wantI, wantPeak := ffmpegLoudness(t, path)
			got := measure(t, lc.rate, lc.channels, pcm)
			gotPeak := 20 * math.Log10(got.Peak)
			t.Logf("integrated %.3f LUFS (ffmpeg %.3f), peak %.2f dBFS (ffmpeg %.1f)", got.Integrated, wantI, gotPeak, wantPeak)
			if math.Abs(got.Integrated-wantI) > 0.1 {
				t.Errorf("integrated loudness %.3f LUFS, ffmpeg %.3f", got.Integrated, wantI)
			}
			if math.Abs(gotPeak-wantPeak) > 0.1 {
				t.Errorf("sample peak %.2f dBFS, ffmpeg %.1f", gotPeak, wantPeak)
			}
		})
	}
}

// TestSilenceAndShortAudioHaveNoLoudness: nothing passes the absolute gate
// in silence, and audio shorter than one 400 ms block makes no block.
func TestSilenceAndShortAudioHaveNoLoudness(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames int
		amp    float64
	}{{"10 s of silence", 480000, 0}, {"399 ms of a loud tone", 19152, 0.5}} {
		m, err := New(48000, 2)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([][2]float64, tc.frames)
		for i := range buf {
			v := tc.amp * math.Sin(2*math.Pi*1000*float64(i)/48000)
			buf[i] = [2]float64{v, v}
		}
		m.Write(buf)
		if r := m.Result(); !math.IsInf(r.Integrated, -1) {
			t.Errorf("%s: integrated %v LUFS, want -Inf", tc.name, r.Integrated)
		}
	}
}

func TestNewRefusesWhatItCannotMeasure(t *testing.T) {
	for _, tc := range []struct{ rate, channels int }{{48000, 0}, {48000, 3}, {5, 2}} {
		if _, err := New(tc.rate, tc.channels); err == nil {
			t.Errorf("New(%d, %d) accepted", tc.rate, tc.channels)
		}
	}
}

// TestWriteAllocatesNothing: the Meter's memory is fixed at New, however
// long the audio.
func TestWriteAllocatesNothing(t *testing.T) {
	m, err := New(44100, 2)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([][2]float64, 4096)
	noiseSig := noise(0.5, 4)
	for i := range buf {
		buf[i] = [2]float64{noiseSig(i, 0), noiseSig(i, 1)}
	}
	if n := testing.AllocsPerRun(100, func() { m.Write(buf) }); n != 0 {
		t.Errorf("Write allocates %v times a call", n)
	}
}

// BenchmarkMeter measures a second of 44.1 kHz stereo per iteration.
func BenchmarkMeter(b *testing.B) {
	m, err := New(44100, 2)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([][2]float64, 44100)
	sig := noise(0.5, 5)
	for i := range buf {
		buf[i] = [2]float64{sig(i, 0), sig(i, 1)}
	}
	b.ResetTimer()
	for b.Loop() {
		m.Write(buf)
	}
}

// FuzzMeter: whatever samples it is given, in whatever blocks, the Meter
// neither panics nor reports a NaN: a loudness is a number or -Inf, and
// the peak is the largest finite absolute sample.
func FuzzMeter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, uint16(1), true)
	f.Add(bytes.Repeat([]byte{0x7f, 0xff, 0x80, 0x00}, 5000), uint16(333), false)
	f.Fuzz(func(t *testing.T, data []byte, block uint16, stereo bool) {
		channels := 1
		if stereo {
			channels = 2
		}
		m, err := New(8000, channels)
		if err != nil {
			t.Fatal(err)
		}
		frames := make([][2]float64, len(data)/4)
		var peak float64
		for i := range frames {
			for c := range 2 {
				v := float64(int16(binary.LittleEndian.Uint16(data[4*i+2*c:]))) / 32768
				frames[i][c] = v
				if c < channels {
					peak = max(peak, math.Abs(v))
				}
			}
		}
		for n := int(block%4096) + 1; len(frames) > 0; frames = frames[min(n, len(frames)):] {
			m.Write(frames[:min(n, len(frames))])
		}
		r := m.Result()
		if math.IsNaN(r.Integrated) || math.IsInf(r.Integrated, 1) || r.Peak != peak {
			t.Fatalf("integrated %v, peak %v (want %v)", r.Integrated, r.Peak, peak)
		}
	})
}
