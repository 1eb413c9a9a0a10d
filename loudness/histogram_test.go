package loudness

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// meterOf measures seconds of a stereo signal at rate.
func meterOf(t *testing.T, rate int, seconds float64, s signal) *Meter {
	t.Helper()
	m, err := New(rate, 2)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][2]float64, int(seconds*float64(rate)))
	for i := range frames {
		frames[i] = [2]float64{s(i, 0), s(i, 1)}
	}
	m.Write(frames)
	return m
}

// sineLUFS is the loudness of a 1 kHz sine of amplitude amp in both
// channels (EBU Tech 3341: -23 dBFS reads -23 LUFS).
func sineLUFS(amp float64) float64 { return 20 * math.Log10(amp) }

// TestAlbumLoudnessFromHistograms: the integrated loudness of songs taken
// together, from their histograms, is the gated mean of all their blocks:
// a quiet song between the gates pulls it down by what its share of the
// blocks says, one under the relative gate does not count; a single
// song's histogram gives what its meter says.
func TestAlbumLoudnessFromHistograms(t *testing.T) {
	const rate = 48000
	blocks := func(seconds float64) float64 { return seconds*stepsPerSecond - (blockSteps - 1) }
	for _, tc := range []struct {
		name              string
		loudAmp, quietAmp float64
		loudS, quietS     float64 // seconds
		want              float64 // LUFS
	}{
		{name: "both counted", loudAmp: 0.2, quietAmp: 0.05, loudS: 10, quietS: 30,
			want: 10 * math.Log10((blocks(10)*math.Pow(0.2, 2)+blocks(30)*math.Pow(0.05, 2))/(blocks(10)+blocks(30)))},
		{name: "quiet one gated out", loudAmp: 0.2, quietAmp: 0.01, loudS: 10, quietS: 30, want: sineLUFS(0.2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := meterOf(t, rate, tc.loudS, tone(1000, tc.loudAmp, rate))
			b := meterOf(t, rate, tc.quietS, tone(1000, tc.quietAmp, rate))
			got := Integrated(a.Histogram(), b.Histogram())
			t.Logf("album loudness %.4f LUFS, expected %.4f", got, tc.want)
			if math.Abs(got-tc.want) > 0.1 {
				t.Errorf("album loudness %.3f LUFS, want %.3f within 0.1", got, tc.want)
			}
			for _, m := range []*Meter{a, b} {
				if one, exact := Integrated(m.Histogram()), m.Result().Integrated; math.Abs(one-exact) > 0.0051 {
					t.Errorf("one song's histogram gives %.4f LUFS, its meter %.4f", one, exact)
				}
			}
			if n := a.Histogram().Blocks(); n != int64(blocks(tc.loudS)) {
				t.Errorf("%d blocks in %v s", n, tc.loudS)
			}
		})
	}
	if l := Integrated(); !math.IsInf(l, -1) {
		t.Errorf("no histograms: %v", l)
	}
	silent := meterOf(t, rate, 5, func(int, int) float64 { return 0 })
	if l := Integrated(silent.Histogram()); !math.IsInf(l, -1) || silent.Histogram().Blocks() != 0 {
		t.Errorf("silence: %v", l)
	}
}

func TestHistogramEncoding(t *testing.T) {
	m := meterOf(t, 44100, 20, parts(44100, []float64{5, 5, 10}, []signal{noise(0.5, 7), tone(300, 0.05, 44100), noise(0.02, 8)}))
	h := m.Histogram()
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseHistogram(b)
	if err != nil || Integrated(back) != Integrated(h) || back.Blocks() != h.Blocks() || len(back.bins) != len(h.bins) {
		t.Fatalf("round trip: %v, %d blocks in %d bins, want %d in %d", err, back.Blocks(), len(back.bins), h.Blocks(), len(h.bins))
	}
	t.Logf("20 s of audio: %d blocks in %d bins, %d bytes", h.Blocks(), len(h.bins), len(b))
	for _, bad := range []struct {
		name, errPart string
		data          []byte
	}{
		{"empty", "not an encoded", nil},
		{"other format", "not an encoded", []byte{2, 0}},
		{"cut short", "cut short", b[:len(b)-1]},
		{"left over", "after", append(bytes.Clone(b), 0)},
		{"too many bins", "over", []byte{1, 0xff, 0xff, 0x03}},
		{"bin out of range", "out of range", []byte{1, 1, 0xc1, 0x3e, 1}}, // gap 8001
		{"empty bin", "of 0 blocks", []byte{1, 1, 0, 0}},
	} {
		if _, err := ParseHistogram(bad.data); err == nil || !strings.Contains(err.Error(), bad.errPart) {
			t.Errorf("%s: %v, want an error with %q", bad.name, err, bad.errPart)
		}
	}
}

func FuzzParseHistogram(f *testing.F) {
	for _, seed := range [][]byte{{1, 0}, {1, 2, 0, 5, 3, 1}, {1, 1, 0xc0, 0x3e, 1}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHistogram(data)
		if err != nil {
			return
		}
		again, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%x parsed, encodes as %x (%v)", data, again, err)
		}
		if l := Integrated(h, h); math.IsNaN(l) || l > histogramTop+1 {
			t.Fatalf("loudness %v", l)
		}
	})
}
