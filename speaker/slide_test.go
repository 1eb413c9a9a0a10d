package speaker

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// writeSong writes a WAV of frames frames made by sample into dir.
func writeSong(t *testing.T, dir string, frames int64, sample func(i int64) audiogen.Frame) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "song-*.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := audiogen.WriteWAV(f, testRate, frames, sample); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// decodeWAV is every frame of the WAV at path as its decoder gives them.
func decodeWAV(t *testing.T, path string) [][2]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	dec, _, err := wav.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out := make([][2]float64, dec.Len())
	n, _ := dec.Stream(out)
	return out[:n]
}

func noise(seed uint64) func(i int64) audiogen.Frame {
	r := rand.New(rand.NewPCG(seed, 2))
	return func(int64) audiogen.Frame {
		return audiogen.Frame{L: int16(r.IntN(1 << 16)), R: int16(r.IntN(1 << 16))}
	}
}

// TestEngineOutputBitExact plays white noise through the engine, the
// timeline's position a fraction of a frame off the device's frames. With
// equal clocks every frame out is the decoded song's, bit for bit, and no
// correction is made. With the device 100 ppm (or 350 ppm) off, the output
// is the song's frames verbatim except through the slides, each frame within
// slideThreshold (plus a block's drift) of the timeline, and the slides
// number the frames the clocks drifted apart.
func TestEngineOutputBitExact(t *testing.T) {
	const seconds = 30
	for _, ppm := range []float64{0, 100, -100, 350} {
		f := newFixture(t)
		f.eng.place = wholeFrames
		path := writeSong(t, t.TempDir(), seconds*testRate, noise(uint64(ppm+1000)))
		song := decodeWAV(t, path)
		f.files.put("noise", path)
		pl := protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "n1", Song: "noise", Frames: seconds * testRate, SampleRate: testRate}}}
		f.eng.setPlaylist(pl)
		f.pl = pl
		const fraction = 7000 // ns: the timeline's frames fall 0.31 frame after the device's
		f.eng.addState(f.state(f.t0+fraction, 0, 0, true, 100))
		buf := make([][2]float64, 441)
		var verbatim, other int
		var worst float64
		for k := 1; k < (seconds-1)*100; k++ {
			heard := f.t0 + int64(float64(k)*1e7/(1+ppm/1e6))
			f.eng.Fill(buf, time.Unix(0, heard-int64(fixtureOffset)))
			for i, got := range buf {
				if k == 1 && i < fadeFrames*testRate/1000 {
					continue // fading in: the song starts mid-way
				}
				want := float64(heard-f.t0-fraction)*testRate/1e9 + float64(i)*(1+ppm/1e6)
				j := int(math.Round(want))
				switch {
				case got == song[j]:
				case got == song[j-1]:
					j--
				case got == song[j+1]:
					j++
				default:
					other++
					continue
				}
				verbatim++
				worst = max(worst, math.Abs(float64(j)-want))
			}
		}
		slides := f.eng.players[playerKey{song: "noise", entry: "n1"}].corrections()
		drifted := math.Abs(ppm) * 1e-6 * (seconds - 1) * testRate
		t.Logf("ppm %+4.0f: %d frames verbatim, %d interpolated, %d slides (clocks drifted %.1f frames), worst error %.2f frames (%.1f µs)",
			ppm, verbatim, other, slides, drifted, worst, worst/testRate*1e6)
		if ppm == 0 && (other != 0 || slides != 0) {
			t.Errorf("equal clocks: %d frames not the song's, %d slides; want every frame verbatim", other, slides)
		}
		if math.Abs(float64(slides)-drifted) > 2 {
			t.Errorf("ppm %+.0f: %d slides for %.1f frames of drift", ppm, slides, drifted)
		}
		if other > int(slides)*slideFrames(testRate) {
			t.Errorf("ppm %+.0f: %d frames interpolated, more than %d slides take", ppm, other, slides)
		}
		if bound := slideThreshold + 441*math.Abs(ppm)*1e-6 + 0.05; worst > bound {
			t.Errorf("ppm %+.0f: a verbatim frame %.2f frames off the timeline, want within %.2f", ppm, worst, bound)
		}
	}
}

// TestSlideArtefacts measures what a correction adds to a sine through the
// real decoder path, placing either way: the power more than 500 Hz from
// the tone (a click's broadband splatter, which the tone does not mask) in a
// 186 ms window around the first correction, against the tone's. Whole-frame
// slides, and subframe ones with the change to the timeline's rate that
// follows them, must add no more than the resampler steering continuously at
// the same rate (the player before slides), and far less than dropping a
// frame. The power 20-500 Hz from the tone is logged: any correction of a
// frame within the window puts some there (the phase moves), masked by the
// tone itself.
func TestSlideArtefacts(t *testing.T) {
	const window = 1 << 13
	for _, tc := range []struct {
		place placement
		hz    float64
	}{{wholeFrames, 1000}, {wholeFrames, 10000}, {subframe, 1000}, {subframe, 10000}} {
		hz := tc.hz
		path := writeSong(t, t.TempDir(), 2*testRate, func(i int64) audiogen.Frame {
			v := int16(math.Round(16000 * math.Sin(2*math.Pi*hz*float64(i)/testRate)))
			return audiogen.Frame{L: v, R: v}
		})
		song := decodeWAV(t, path)

		// A player 100 ppm behind the timeline from frame 20000 on
		// slides once in the window.
		p, err := openSong("sine", path, nil, nil, testRate, 0, tc.place)
		if err != nil {
			t.Fatal(err)
		}
		defer p.close()
		out := make([][2]float64, 0, 2*testRate)
		block := make([][2]float64, 441)
		sliding := -1
		for k := 0; len(out)+441 <= cap(out); k++ {
			want := float64(k * 441)
			if k*441 > 20000 {
				want += float64(k*441-20000) * 100e-6
			}
			if err := p.read(block, want, 88, math.MaxInt64); err != nil {
				t.Fatal(err)
			}
			if p.corrections() > 0 && sliding < 0 {
				sliding = len(out)
			}
			out = append(out, block...)
		}
		if sliding < 0 {
			t.Fatal("no slide in 2 s at 100 ppm")
		}
		slid := spurious(out[sliding-window/2 : sliding+window/2])
		slidNear := spuriousBand(out[sliding-window/2:sliding+window/2], 20, 500)

		// The resampler steering at 1+100 ppm throughout.
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		dec, _, err := wav.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		steered := make([][2]float64, window)
		resampler := beep.ResampleRatio(resampleQuality, 1+100e-6, dec)
		resampler.Stream(make([][2]float64, sliding-window/2))
		resampler.Stream(steered)
		dec.Close()
		resampled := spurious(steered)

		// One frame dropped mid-window.
		dropped := append(append([][2]float64{}, song[sliding-window/2:sliding]...), song[sliding+1:sliding+window/2+1]...)
		drop := spurious(dropped)
		dropNear := spuriousBand(dropped, 20, 500)
		clean := spurious(song[sliding-window/2 : sliding+window/2])

		name := map[placement]string{subframe: "subframe", wholeFrames: "whole frames"}[tc.place]
		t.Logf("%-12s %5.0f Hz sine, power over 500 Hz from the tone: song %.1f dB, slide %.1f dB, steering resampler %.1f dB, dropped frame %.1f dB; 20-500 Hz from it: slide %.1f dB, dropped frame %.1f dB",
			name, hz, clean, slid, resampled, drop, slidNear, dropNear)
		if slid > resampled+3 {
			t.Errorf("%.0f Hz: a slide adds %.1f dB, the steering resampler %.1f dB", hz, slid, resampled)
		}
		if drop < slid+20 {
			t.Errorf("%.0f Hz: a dropped frame (%.1f dB) should show far above a slide (%.1f dB)", hz, drop, slid)
		}
	}
}

// TestSubframeResponse measures the filter a player placing to the
// fraction of a frame is between slides: at half a frame, its worst, the
// cubic's gain at each tone's frequency and the power it adds more than
// 500 Hz from the tone (none: a fixed filter makes no new frequencies).
// The high treble is softened: the figures are the price of subframe
// placement, which --bit-exact does not pay.
func TestSubframeResponse(t *testing.T) {
	const frames = 1 << 14
	for _, tc := range []struct {
		hz      float64
		minGain float64 // dB
	}{{1000, -0.01}, {5000, -0.1}, {10000, -0.8}, {15000, -3.6}, {18000, -7.7}} {
		song := make([][2]float64, frames+4)
		for i := range song {
			v := 0.5 * math.Sin(2*math.Pi*tc.hz*float64(i)/testRate)
			song[i] = [2]float64{v, v}
		}
		s := newSlider(&frameSource{frames: song}, testRate, subframe, nil)
		s.land(1.5)
		out := make([][2]float64, frames)
		if n, _ := s.Stream(out); n != frames {
			t.Fatalf("%.0f Hz: %d frames out of %d", tc.hz, n, frames)
		}
		gain := 10 * math.Log10(power(out)/power(song[1:frames+1]))
		added, floor := spurious(out), spurious(song[1:frames+1])
		t.Logf("%5.0f Hz at half a frame: gain %+.2f dB; power over 500 Hz from the tone %.1f dB (the song's %.1f dB)", tc.hz, gain, added, floor)
		if gain < tc.minGain || gain > 0.01 {
			t.Errorf("%.0f Hz: gain %+.2f dB, want within %.2f..0", tc.hz, gain, tc.minGain)
		}
		if added > floor+1 {
			t.Errorf("%.0f Hz: %.1f dB more than 500 Hz from the tone, the song %.1f dB", tc.hz, added, floor)
		}
	}
}

// frameSource streams frames.
type frameSource struct {
	frames [][2]float64
	next   int
}

func (f *frameSource) Stream(out [][2]float64) (int, bool) {
	n := copy(out, f.frames[f.next:])
	f.next += n
	return n, n > 0
}

func (f *frameSource) Err() error { return nil }

// power is the mean power of buf's left channel.
func power(buf [][2]float64) float64 {
	var p float64
	for _, f := range buf {
		p += f[0] * f[0]
	}
	return p / float64(len(buf))
}

// spurious is the power of buf's left channel more than 500 Hz from its
// strongest tone, in dB relative to the tone.
func spurious(buf [][2]float64) float64 { return spuriousBand(buf, 500, testRate) }

// spuriousBand is the power of buf's left channel from 'from' to 'to' Hz
// away from its strongest tone, in dB relative to the tone (its peak bin and
// three either side), through a Blackman-Harris window (sidelobes below
// -92 dB).
func spuriousBand(buf [][2]float64, from, to float64) float64 {
	n := len(buf)
	x := make([]complex128, n)
	for i, f := range buf {
		a := 2 * math.Pi * float64(i) / float64(n)
		w := 0.35875 - 0.48829*math.Cos(a) + 0.14128*math.Cos(2*a) - 0.01168*math.Cos(3*a)
		x[i] = complex(f[0]*w, 0)
	}
	fft(x)
	peak := 0
	for k := 1; k < n/2; k++ {
		if cmplx.Abs(x[k]) > cmplx.Abs(x[peak]) {
			peak = k
		}
	}
	near := int(from * float64(n) / testRate)
	far := int(to * float64(n) / testRate)
	var tone, rest float64
	for k := 1; k < n/2; k++ {
		p := real(x[k])*real(x[k]) + imag(x[k])*imag(x[k])
		d := max(k-peak, peak-k)
		if d <= 3 {
			tone += p
		} else if d > near && d <= far {
			rest += p
		}
	}
	return 10 * math.Log10(rest/tone)
}

// fft is an in-place radix-2 FFT; len(x) is a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j |= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				a, b := x[start+k], x[start+k+size/2]*wk
				x[start+k], x[start+k+size/2] = a+b, a-b
				wk *= w
			}
		}
	}
}

// ramp is a streamer whose frame i is (i, -i), frames long, served in
// chunks of at most chunk frames.
type ramp struct{ next, frames, chunk int }

func (r *ramp) Stream(out [][2]float64) (int, bool) {
	n := min(len(out), r.frames-r.next, r.chunk)
	for i := range n {
		out[i] = [2]float64{float64(r.next + i), -float64(r.next + i)}
	}
	r.next += n
	return n, n > 0
}

func (r *ramp) Err() error { return nil }

// TestSliderFollowsItsPosition: through any corrections, in blocks of any
// size, placing either way, each frame out is the source at the slider's
// position (cubic interpolation reproduces a ramp exactly), positions move
// by at most a frame and a bit per frame, whole frames stay whole, no slide
// crosses hold, and the stream ends with the source's last frame.
func TestSliderFollowsItsPosition(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for run := range 40 {
		place := []placement{subframe, wholeFrames}[run%2]
		src := &ramp{frames: 20000 + r.IntN(20000), chunk: 1 + r.IntN(3000)}
		s := newSlider(src, testRate, place, nil)
		if run%4 >= 2 {
			s.hold = float64(src.frames - 3000)
		}
		// A drift the slider measures and follows, under the noise.
		drift := r.NormFloat64() * 300e-6
		var last float64 = -1
		for {
			s.correct(r.NormFloat64()*3 + drift*float64(s.out))
			block := make([][2]float64, 1+r.IntN(900))
			pos := make([]float64, 0, len(block))
			sliding := make([]bool, 0, len(block))
			c := *s
			for range block {
				c.begin()
				pos, sliding = append(pos, c.position()), append(sliding, c.move != 0)
				c.advance()
			}
			n, ok := s.Stream(block)
			for i, f := range block[:n] {
				// Before the source's start and past its end is silence,
				// which the frames interpolated next to them take in.
				inside := pos[i] == math.Trunc(pos[i]) || pos[i] >= 1 && pos[i] < float64(src.frames-2)
				if inside && math.Abs(f[0]-pos[i]) > 1e-9 || f[1] != -f[0] {
					t.Fatalf("run %d: frame %v at position %v", run, f, pos[i])
				}
				if d := pos[i] - last; math.Abs(d-1) > math.Pi/(2*float64(s.length))+maxSpeed+1e-9 {
					t.Fatalf("run %d: position moved by %v in a frame", run, d)
				}
				if place == wholeFrames && !sliding[i] && pos[i] != math.Trunc(pos[i]) {
					t.Fatalf("run %d: placing by whole frames, at rest at %v", run, pos[i])
				}
				if sliding[i] && pos[i] > s.hold {
					t.Fatalf("run %d: sliding at %v past hold %v", run, pos[i], s.hold)
				}
				last = pos[i]
			}
			if !ok || n < len(block) {
				break
			}
		}
		if last <= float64(src.frames-2) || last >= float64(src.frames) {
			t.Errorf("run %d: stream ended at position %v of %d frames", run, last, src.frames)
		}
	}
}

// BenchmarkEngineFill is the engine's work for one 10 ms block of a
// 44.1 kHz WAV song, placing either way, on a device on time and 100 ppm
// fast: decoding, drift correction, gains. On time the subframe player reads
// at a constant fractional delay (0.3 frame), the whole-frame one copies.
func BenchmarkEngineFill(b *testing.B) {
	for _, place := range []placement{subframe, wholeFrames} {
		for _, ppm := range []float64{0, 100} {
			name := fmt.Sprintf("%s/%+.0fppm", map[placement]string{subframe: "subframe", wholeFrames: "whole"}[place], ppm)
			b.Run(name, func(b *testing.B) { benchmarkEngineFill(b, place, ppm) })
		}
	}
}

func benchmarkEngineFill(b *testing.B, place placement, ppm float64) {
	dir := b.TempDir()
	files := &memFiles{}
	files.put("tc", writeTimecode(b, dir, testRate, 600*testRate, 0))
	eng := newEngine(testRate, 100, place, files, testLogger(b))
	b.Cleanup(eng.close)
	eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
	pl := protocol.Playlist{V: 1, Session: "home", Version: 3, Entries: []protocol.Entry{{ID: "e1", Song: "tc", Frames: 600 * testRate, SampleRate: testRate}}}
	eng.setPlaylist(pl)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	const fraction = 7000 // ns: 0.3 frame
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 3,
		Anchor: protocol.Anchor{AtNs: t0 + fraction, Index: 0, Entry: "e1", Playing: true}})
	buf := make([][2]float64, 441)
	b.ResetTimer()
	for k := range b.N {
		heard := t0 + int64(float64(k%50000)*1e7/(1+ppm/1e6))
		eng.Fill(buf, time.Unix(0, heard-int64(fixtureOffset)))
	}
}

// placementErrors plays a subframe timecode song through an engine placing
// as place, on a device ppm off the local clock, with a clock estimate whose
// offset steps by up to ±3 µs every 500 ms (a wired network's estimate
// updates), and returns, for each 10 ms block after the first second, how
// far (frames) the song position its output tells, read as an outside
// reader reads it, is from where the engine's clock estimate puts the
// timeline: the placement's own error, the clock's left out.
func placementErrors(t *testing.T, place placement, ppm float64, seconds int) []float64 {
	t.Helper()
	f := newFixture(t)
	f.eng.place = place
	frames := int64(seconds+1) * testRate
	f.files.put("subframe", writeSong(t, t.TempDir(), frames, audiogen.SubframeTimecode))
	pl := protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "s1", Song: "subframe", Frames: frames, SampleRate: testRate}}}
	f.eng.setPlaylist(pl)
	f.pl = pl
	const fraction = 7000 // ns: the timeline's frames fall 0.31 frame after the device's
	f.eng.addState(f.state(f.t0+fraction, 0, 0, true, 100))
	r := rand.New(rand.NewPCG(uint64(ppm+1000), uint64(place)))
	var estimate int64 // the clock estimate's error, ns
	buf := make([][2]float64, 441)
	pcm := make([]audiogen.Frame, len(buf))
	var errs []float64
	for k := 1; k < seconds*100; k++ {
		if k%50 == 0 {
			estimate = int64(r.IntN(6001)) - 3000
			f.eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset) + estimate}))
		}
		heard := f.t0 + int64(float64(k)*1e7/(1+ppm/1e6))
		f.eng.Fill(buf, time.Unix(0, heard-int64(fixtureOffset)))
		if k < 100 {
			continue // the first slides after the start
		}
		for i, x := range buf {
			pcm[i] = audiogen.Frame{L: int16(math.Round(x[0] * 32768)), R: int16(math.Round(x[1] * 32768))}
		}
		pos, ok := audiogen.ReadSubframeTimecode(pcm)
		if !ok {
			t.Fatalf("block %d: no timecode in the output", k)
		}
		want := float64(heard+estimate-f.t0-fraction) * testRate / 1e9
		errs = append(errs, pos-want)
	}
	return errs
}

// TestPlacementError measures the placement's own error, as an outside
// reader of the output sees it: placing to the fraction of a frame leaves
// the clock estimate's error alone, on average none and at worst the
// estimate's steps while a slide takes them up, where whole frames leave up
// to slideThreshold, on average the timeline's fraction.
func TestPlacementError(t *testing.T) {
	const seconds = 20
	for _, tc := range []struct {
		place placement
		name  string
		bound float64 // |error| p99, frames
		mean  float64 // |mean error|, frames
	}{
		{subframe, "subframe", 0.2, 0.02},
		{wholeFrames, "whole frames", slideThreshold + 0.05, 0.5},
	} {
		for _, ppm := range []float64{0, 100, -100} {
			errs := placementErrors(t, tc.place, ppm, seconds)
			abs := make([]float64, len(errs))
			var mean float64
			for i, e := range errs {
				abs[i] = math.Abs(e)
				mean += e / float64(len(errs))
			}
			slices.Sort(abs)
			p50, p99 := abs[len(abs)/2], abs[len(abs)*99/100]
			t.Logf("%-12s %+4.0f ppm: |error| p50 %.3f frames (%.2f µs), p99 %.3f (%.2f µs), max %.3f; mean %+.3f",
				tc.name, ppm, p50, p50/testRate*1e6, p99, p99/testRate*1e6, abs[len(abs)-1], mean)
			if p99 > tc.bound {
				t.Errorf("%s, %+.0f ppm: placement error p99 %.3f frames, want within %.2f", tc.name, ppm, p99, tc.bound)
			}
			if math.Abs(mean) > tc.mean {
				t.Errorf("%s, %+.0f ppm: placement off by %+.3f frames on average, want within %.2f", tc.name, ppm, mean, tc.mean)
			}
		}
	}
}
