package speaker

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// noiseAt is white noise within ±amp of full scale.
func noiseAt(seed uint64, amp float64) func(i int64) audiogen.Frame {
	r := rand.New(rand.NewPCG(seed, 3))
	n := int(amp * 32767)
	return func(int64) audiogen.Frame {
		return audiogen.Frame{L: int16(r.IntN(2*n+1) - n), R: int16(r.IntN(2*n+1) - n)}
	}
}

// gainFixture is an engine playing the two-entry playlist entries, both of
// song (frames frames long), from shared instant t0.
func gainFixture(t *testing.T, path string, frames int64, gains ...float64) *engineFixture {
	f := newFixture(t)
	f.files.put("song", path)
	pl := protocol.Playlist{V: 1, Session: "home", Version: 9}
	for i, g := range gains {
		pl.Entries = append(pl.Entries, protocol.Entry{ID: "g" + string(rune('1'+i)), Song: "song", Frames: frames, SampleRate: testRate, GainDb: g})
	}
	f.eng.setPlaylist(pl)
	f.pl = pl
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	return f
}

// render pulls the frames of [from, to) of the timeline in blocks of block
// frames.
func render(f *engineFixture, from, to, block int) [][2]float64 {
	var out [][2]float64
	for i := from; i < to; i += block {
		buf := make([][2]float64, min(block, to-i))
		shared := f.t0 + framesToNsRound(int64(i), testRate)
		f.eng.Fill(buf, time.Unix(0, shared-int64(fixtureOffset)))
		out = append(out, buf...)
	}
	return out
}

// TestEntryGainChangesAtTheEntryBoundary: each entry's frames are its
// song's times its gain, exactly, from its first frame to its last; the
// gain changes between the two frames of the boundary.
func TestEntryGainChangesAtTheEntryBoundary(t *testing.T) {
	const frames = 3000
	path := writeSong(t, t.TempDir(), frames, noiseAt(7, 0.5))
	song := decodeWAV(t, path)
	f := gainFixture(t, path, frames, -6, 1.5)
	got := render(f, 0, 2*frames, 441)
	for i, fr := range got {
		g := math.Pow(10, -6.0/20)
		if i >= frames {
			g = math.Pow(10, 1.5/20) // 0.5*1.19 stays under the knee: a plain product
		}
		want := song[i%frames]
		if fr[0] != want[0]*g || fr[1] != want[1]*g {
			t.Fatalf("frame %d (entry %d): %v, want %v times %.4f", i, i/frames+1, fr, want, g)
		}
	}
}

// TestLimiterKeepsEveryPeakBelowFullScale plays full-scale noise 12 dB up:
// no sample reaches full scale, and every frame is the limiter's function
// of the song's frame alone (the plain product under the knee), so that a
// speaker that renders in other blocks, or joins midway, computes the very
// same frames.
func TestLimiterKeepsEveryPeakBelowFullScale(t *testing.T) {
	const frames = 20000
	path := writeSong(t, t.TempDir(), frames, noiseAt(8, 1))
	song := decodeWAV(t, path)
	g := math.Pow(10, 12.0/20)
	for _, run := range []struct{ from, block int }{{0, 441}, {5000, 256}} {
		f := gainFixture(t, path, frames, 12)
		f.eng.place = wholeFrames // the song's frames verbatim, as TestEngineOutputBitExact
		limited := 0
		for k, fr := range render(f, run.from, frames, run.block) {
			i := run.from + k
			if run.from > 0 && inFade(k, 0) {
				continue // a player that starts mid-song fades in
			}
			for c := range 2 {
				x := song[i][c] * g
				if math.Abs(x) > limiterKnee {
					limited++
				}
				if math.Abs(fr[c]) >= 1 || fr[c] != limit(x) || math.Abs(x) <= limiterKnee && fr[c] != x {
					t.Fatalf("from %d in blocks of %d: frame %d channel %d: %v times %.3f gave %v", run.from, run.block, i, c, song[i][c], g, fr[c])
				}
			}
		}
		if limited < (frames-run.from)/2 {
			t.Fatalf("only %d samples went past the knee: the test does not exercise the limiter", limited)
		}
	}
}

// TestLimitIsSmoothAndBounded: the limiter's curve is continuous with
// slope 1 at the knee, never falls, is odd, and stays under its ceiling
// (full scale) for any finite input, however large.
func TestLimitIsSmoothAndBounded(t *testing.T) {
	const h = 1e-7
	if d := (limit(limiterKnee+h) - limit(limiterKnee)) / h; math.Abs(d-1) > 1e-4 {
		t.Errorf("slope just past the knee %v, want 1", d)
	}
	prev := limit(limiterKnee)
	for x := limiterKnee + 0.01; x < 1000; x *= 1.1 {
		y := limit(x)
		if y < prev || y >= limiterCeiling || limit(-x) != -y {
			t.Fatalf("limit(%v) = %v after %v, limit(-x) = %v", x, y, prev, limit(-x))
		}
		prev = y
	}
}

// TestEntryGainAllocatesNothing: the gain and the limiter keep Fill free of
// allocations (fillalloc_test.go).
func TestEntryGainAllocatesNothing(t *testing.T) {
	buf := make([][2]float64, 441)
	for _, db := range []float64{0, -6, 6} {
		if n := testing.AllocsPerRun(100, func() { applyEntryGain(buf, db) }); n != 0 {
			t.Errorf("%v dB: %v allocations a block", db, n)
		}
	}
}

// BenchmarkEntryGain is the cost of a 10 ms block's gain: nothing at 0 dB,
// a product per sample below, and the limiter above (full-scale noise, so
// most samples pass the knee: the worst case).
func BenchmarkEntryGain(b *testing.B) {
	src := make([][2]float64, 441)
	sig := noiseAt(9, 1)
	for i := range src {
		fr := sig(int64(i))
		src[i] = [2]float64{float64(fr.L) / 32768, float64(fr.R) / 32768}
	}
	buf := make([][2]float64, len(src))
	for _, db := range []float64{0, -6, 6} {
		b.Run(map[float64]string{0: "0dB", -6: "-6dB", 6: "+6dB"}[db], func(b *testing.B) {
			for b.Loop() {
				copy(buf, src)
				applyEntryGain(buf, db)
			}
		})
	}
}

// TestGainChangeMidSongAtTheAnchor: a new mode comes as a new playlist
// version with other gains and a state anchored at a future instant where
// the timeline goes on: the song plays on without a seek, at its old gain
// up to the anchor's frame and at the new one from it.
func TestGainChangeMidSongAtTheAnchor(t *testing.T) {
	const frames, switchAt = 20000, 7000
	path := writeSong(t, t.TempDir(), frames, noiseAt(10, 0.5))
	song := decodeWAV(t, path)
	f := gainFixture(t, path, frames, 0)
	f.eng.place = wholeFrames // the song's frames verbatim, as TestEngineOutputBitExact
	pl := f.pl
	pl.Version++
	pl.Entries = []protocol.Entry{pl.Entries[0]}
	pl.Entries[0].GainDb = -6
	f.eng.setPlaylist(pl)
	f.pl = pl
	at := f.t0 + framesToNsRound(switchAt, testRate)
	f.eng.addState(f.state(at, 0, at-f.t0, true, 100))
	g := math.Pow(10, -6.0/20)
	for i, fr := range render(f, 0, 2*switchAt, 441) {
		want := song[i]
		if i >= switchAt {
			want = [2]float64{want[0] * g, want[1] * g}
		}
		if fr != want {
			t.Fatalf("frame %d: %v, want %v (the gain changes at frame %d)", i, fr, want, switchAt)
		}
	}
}
