package speaker

import (
	"math"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// Crossfade fixture: song "out" has its frame index (plus 1) in the left
// channel and nothing in the right, song "in" the reverse, so that each
// channel of the mix shows one song's frame and its curve's gain.
const (
	xfFrames = 30000                  // each song: 0.68 s at testRate
	xfMs     = 200                    // the crossfade
	xfFade   = xfMs * testRate / 1000 // 8820 frames
	xfStart  = xfFrames - xfFade      // output frame where "in" starts
)

// tolerance is how far from the song's sample a frame placed on the
// timeline's fraction of a frame may be: the subframe placement puts the
// ramps up to a few hundred-thousandths of a frame off their samples
// (1/32768 a frame), and this allows a thousandth.
const tolerance = 1e-3 / 32768

func leftRamp(i int64) audiogen.Frame  { return audiogen.Frame{L: int16(i + 1)} }
func rightRamp(i int64) audiogen.Frame { return audiogen.Frame{R: int16(i + 1)} }

// crossfadeEngine is an engine whose local clock is offset from the shared
// one, playing "out" then "in" with a crossfade of xfMs.
func crossfadeEngine(t *testing.T, files *memFiles, offset time.Duration, repeat string, inRate int) *engine {
	eng := newEngine(testRate, 100, subframe, files, testLogger(t))
	t.Cleanup(eng.close)
	eng.setClock(trusted(clocksync.Model{Offset: int64(offset)}))
	eng.setPlaylist(protocol.Playlist{V: 1, Session: "home", Version: 7, Repeat: repeat, CrossfadeMs: xfMs, Entries: []protocol.Entry{
		{ID: "e1", Song: "out", Frames: xfFrames, SampleRate: testRate},
		{ID: "e2", Song: "in", Frames: xfFrames * int64(inRate) / testRate, SampleRate: inRate},
	}})
	return eng
}

// crossfadeFiles holds "out", and "in" at inRate: at testRate the right
// channel's ramp, at another rate a constant, which resampling keeps.
func crossfadeFiles(t *testing.T, inRate int) *memFiles {
	dir := t.TempDir()
	files := &memFiles{}
	files.put("out", writeSong(t, dir, xfFrames, leftRamp))
	in := rightRamp
	if inRate != testRate {
		in = func(int64) audiogen.Frame { return audiogen.Frame{R: 10000} }
	}
	f, err := os.CreateTemp(dir, "in-*.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := audiogen.WriteWAV(f, inRate, xfFrames*int64(inRate)/testRate, in); err != nil {
		t.Fatal(err)
	}
	files.put("in", f.Name())
	return files
}

// playShared pulls blocks of size frames from eng, the first heard at shared
// instant start, and returns frames output frames.
func playShared(eng *engine, offset time.Duration, start int64, size, frames int) [][2]float64 {
	var got [][2]float64
	for k := 0; len(got) < frames; k++ {
		buf := make([][2]float64, size)
		shared := start + framesToNsRound(int64(k*size), testRate)
		eng.Fill(buf, time.Unix(0, shared-int64(offset)))
		got = append(got, buf...)
	}
	return got[:frames]
}

// wantCrossfade is output frame m of "out" then "in" from frame 0: each
// alone, and through the fade both, "out" along cos and "in" along sin of
// the frame's place in the fade.
func wantCrossfade(m int) [2]float64 {
	const s16 = 1.0 / 32768
	x := (float64(m-xfStart) + 0.5) * math.Pi / 2 / xfFade
	switch {
	case m < xfStart:
		return [2]float64{float64(m+1) * s16, 0}
	case m < xfFrames:
		return [2]float64{float64(m+1) * s16 * math.Cos(x), float64(m-xfStart+1) * s16 * math.Sin(x)}
	case m < xfStart+xfFrames:
		return [2]float64{0, float64(m-xfStart+1) * s16}
	}
	return [2]float64{}
}

func checkFrames(t *testing.T, who string, got [][2]float64, from int, want func(m int) [2]float64, tol float64) {
	t.Helper()
	bad := 0
	for i, g := range got {
		w := want(from + i)
		if math.Abs(g[0]-w[0]) > tol || math.Abs(g[1]-w[1]) > tol {
			if bad < 5 {
				t.Errorf("%s: frame %d: got %v, want %v", who, from+i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d frames wrong", who, bad, len(got))
	}
}

// TestEngineCrossfade: two engines, their clocks 7 s and -3 s off the
// shared one and pulling blocks of different sizes, play the crossfade's
// frames alike: "out" fading along cos while "in" rises along sin, at the
// same shared frames, each song's frames where the timeline puts them.
func TestEngineCrossfade(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	state := protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}}
	total := xfStart + xfFrames + 1000
	var outputs [][][2]float64
	for _, e := range []struct {
		offset time.Duration
		block  int
	}{{7 * time.Second, 441}, {-3 * time.Second, 882}} {
		eng := crossfadeEngine(t, files, e.offset, protocol.RepeatOff, testRate)
		eng.place = wholeFrames // placed on whole frames, the output is the same to the bit
		eng.addState(state)
		got := playShared(eng, e.offset, t0, e.block, total)
		checkFrames(t, e.offset.String(), got, 0, wantCrossfade, tolerance)
		outputs = append(outputs, got)
	}
	for m := range total {
		if outputs[0][m] != outputs[1][m] {
			t.Fatalf("frame %d: %v on one speaker, %v on the other", m, outputs[0][m], outputs[1][m])
		}
	}
}

// TestEngineCrossfadeJoinsMidFade: an engine that starts inside the fade
// (a late joiner, or a seek into it) plays both songs at the frames and
// gains the timeline gives there.
func TestEngineCrossfadeJoinsMidFade(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := crossfadeEngine(t, files, fixtureOffset, protocol.RepeatOff, testRate)
	seekTo := int64(xfStart + 3000) // frame of "out"
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", PositionNs: framesToNsRound(seekTo, testRate), Playing: true}})
	got := playShared(eng, fixtureOffset, t0, 441, 8000)
	// Both decoders seek, so both fade in over their first fadeFrames ms.
	skip := fadeFrames * testRate / 1000
	checkFrames(t, "joined mid-fade", got[skip:], int(seekTo)+skip, wantCrossfade, tolerance)
	if st := eng.status(); st.Song != "in" {
		t.Errorf("status names song %q during the fade's second half, want the one fading in", st.Song)
	}
}

// TestEngineCrossfadeOtherRate: the song fading in has half the output's
// rate; it is resampled to the output rate before it is mixed, so the fade
// runs over output frames as with equal rates.
func TestEngineCrossfadeOtherRate(t *testing.T) {
	files := crossfadeFiles(t, testRate/2)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := crossfadeEngine(t, files, fixtureOffset, protocol.RepeatOff, testRate/2)
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}})
	got := playShared(eng, fixtureOffset, t0, 441, xfFrames+2000)
	const level = 10000.0 / 32768
	checkFrames(t, "other rate", got, 0, func(m int) [2]float64 {
		w := wantCrossfade(m)
		if m >= xfStart {
			x := (float64(m-xfStart) + 0.5) * math.Pi / 2 / xfFade
			w[1] = level * math.Sin(min(x, math.Pi/2))
		}
		return w
	}, 1e-6)
}

// TestEngineRepeatAllWraps: under repeat all, "out" follows "in" again,
// crossfading as before; the timeline wraps without a gap in the frames.
func TestEngineRepeatAllWraps(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := crossfadeEngine(t, files, fixtureOffset, protocol.RepeatAll, testRate)
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}})
	const lap = 2 * xfStart // each song lasts xfFrames, less its fade-out
	got := playShared(eng, fixtureOffset, t0, 441, 2*lap+xfStart)
	checkFrames(t, "first lap", got[:xfStart], 0, wantCrossfade, tolerance)
	// The second lap: "in" fades out into "out", which starts over.
	wrap := func(m int) [2]float64 {
		const s16 = 1.0 / 32768
		x := (float64(m-lap) + 0.5) * math.Pi / 2 / xfFade
		in := float64(m-xfStart+1) * s16
		switch {
		case m < lap:
			return [2]float64{0, in}
		case m < lap+xfFade:
			return [2]float64{float64(m-lap+1) * s16 * math.Sin(x), in * math.Cos(x)}
		}
		return [2]float64{float64(m-lap+1) * s16, 0}
	}
	checkFrames(t, "wrap", got[xfFrames:lap+xfStart], xfFrames, wrap, tolerance)
	checkFrames(t, "second lap", got[lap+xfFade:2*lap], lap+xfFade, func(m int) [2]float64 { return wantCrossfade(m - lap) }, tolerance)
}

// TestEngineCrossfadePauseStopsBoth: a pause during the fade stops both
// songs at the pause position to the frame, and resuming plays the rest of
// the fade.
func TestEngineCrossfadePauseStopsBoth(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := crossfadeEngine(t, files, fixtureOffset, protocol.RepeatOff, testRate)
	play := protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}}
	eng.addState(play)
	pauseAt := int64(xfStart + 4000)
	paused := play
	paused.Seq, paused.State = 2, protocol.Paused
	paused.Anchor = protocol.Anchor{AtNs: t0 + framesToNsRound(pauseAt, testRate), Index: 0, Entry: "e1", PositionNs: framesToNsRound(pauseAt, testRate)}
	eng.addState(paused)
	got := playShared(eng, fixtureOffset, t0, 441, int(pauseAt)+2000)
	checkFrames(t, "until the pause", got, 0, func(m int) [2]float64 {
		if m >= int(pauseAt) {
			return [2]float64{}
		}
		return wantCrossfade(m)
	}, tolerance)
}

// TestEngineGaplessWithoutCrossfade: crossfade 0 leaves one song after the
// other, frame for frame, as before crossfades existed.
func TestEngineGaplessWithoutCrossfade(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := newEngine(testRate, 100, subframe, files, testLogger(t))
	t.Cleanup(eng.close)
	eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
	eng.setPlaylist(protocol.Playlist{V: 1, Session: "home", Version: 7, Entries: []protocol.Entry{
		{ID: "e1", Song: "out", Frames: xfFrames, SampleRate: testRate},
		{ID: "e2", Song: "in", Frames: xfFrames, SampleRate: testRate},
	}})
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}})
	// The last two frames are interpolated towards the silence after.
	got := playShared(eng, fixtureOffset, t0, 441, 2*xfFrames-2)
	checkFrames(t, "gapless", got, 0, func(m int) [2]float64 {
		if m < xfFrames {
			return [2]float64{float64(m+1) / 32768, 0}
		}
		return [2]float64{0, float64(m-xfFrames+1) / 32768}
	}, tolerance)
}

// TestFillAllocatesNothingInACrossfade: mixing two songs costs the engine
// no allocation. beep's WAV decoder makes one buffer per read (a read per
// 1024 frames, about one per two blocks per song: testing.AllocsPerRun
// rounds that down to 0 for one song, not for two), so the bar is what the
// same blocks of one song cost, per decoder playing.
func TestFillAllocatesNothingInACrossfade(t *testing.T) {
	dir := t.TempDir()
	files := &memFiles{}
	files.put("a", writeTimecode(t, dir, testRate, 30*testRate, 0))
	files.put("b", writeTimecode(t, dir, testRate, 30*testRate, 0))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	perBlock := func(crossfadeMs int64) float64 {
		eng := newEngine(testRate, 100, subframe, files, testLogger(t))
		defer eng.close()
		eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
		eng.setPlaylist(protocol.Playlist{V: 1, Session: "home", Version: 7, CrossfadeMs: crossfadeMs, Entries: []protocol.Entry{
			{ID: "e1", Song: "a", Frames: 30 * testRate, SampleRate: testRate},
			{ID: "e2", Song: "b", Frames: 30 * testRate, SampleRate: testRate},
		}})
		// 19 s into a: with a 12 s crossfade, its fade-out began a second ago.
		eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
			Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", PositionNs: 19 * int64(time.Second), Playing: true}})
		buf := make([][2]float64, 441)
		k := 0
		fill := func() {
			eng.Fill(buf, time.Unix(0, t0+framesToNsRound(int64(k*441), testRate)-int64(fixtureOffset)))
			k++
		}
		for range 100 { // the players open, the resamplers settle
			fill()
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const blocks = 1000
		for range blocks {
			fill()
		}
		runtime.ReadMemStats(&after)
		want := "a"
		if crossfadeMs > 0 {
			want = "b" // the one fading in
		}
		if st := eng.status(); st.Song != want {
			t.Errorf("crossfade %d ms: status names song %q, want %q", crossfadeMs, st.Song, want)
		}
		return float64(after.Mallocs-before.Mallocs) / blocks
	}
	one, two := perBlock(0), perBlock(protocol.MaxCrossfadeMs)
	t.Logf("allocations per block: %.3f with one song playing, %.3f with two crossfading", one, two)
	if two > 2*one+0.01 {
		t.Errorf("a crossfade costs %.3f allocations per block, more than its two decoders' %.3f", two, 2*one)
	}
}

// TestEngineFetchesWhatRepeatPlaysNext: the songs a speaker fetches ahead
// follow the repeat mode: after the last entry, the first under repeat all.
func TestEngineFetchesWhatRepeatPlaysNext(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for _, c := range []struct {
		repeat string
		want   []string
	}{{protocol.RepeatOff, []string{"in"}}, {protocol.RepeatAll, []string{"in", "out"}}, {protocol.RepeatOne, []string{"in"}}} {
		eng := crossfadeEngine(t, files, fixtureOffset, c.repeat, testRate)
		eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
			Anchor: protocol.Anchor{AtNs: t0, Index: 1, Entry: "e2", Playing: true}})
		var got []string
		for _, w := range eng.wanted(t0) {
			got = append(got, w.sha)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("repeat %q: fetches %v, want %v", c.repeat, got, c.want)
		}
	}
}

// TestEngineRepeatOneLoops: under repeat one an entry follows itself
// gapless (no crossfade into itself), frame after frame, each time from its
// first frame.
func TestEngineRepeatOneLoops(t *testing.T) {
	f := newFixture(t)
	pl := f.pl
	pl.Version, pl.Repeat, pl.CrossfadeMs = 4, protocol.RepeatOne, 2000
	f.eng.setPlaylist(pl)
	f.pl = pl
	f.eng.addState(f.state(f.t0, 1, 0, true, 100)) // "b": 500 frames, timecodes 100000 on
	got := f.play(f.t0, 1800)
	checkHeard(t, got, func(i int) int64 { return 100000 + int64(i%500) })
	if st := f.eng.status(); st.State != protocol.Playing || st.Song != "b" {
		t.Errorf("after 3.6 loops: %+v, want b playing", st)
	}
}

// BenchmarkFillCrossfade is what a 10 ms block costs the engine with one
// song playing, and in the middle of a crossfade of two.
func BenchmarkFillCrossfade(b *testing.B) {
	dir := b.TempDir()
	files := &memFiles{}
	files.put("a", writeTimecode(b, dir, testRate, 300*testRate, 0))
	files.put("b", writeTimecode(b, dir, testRate, 300*testRate, 0))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for _, c := range []struct {
		name        string
		crossfadeMs int64
	}{{"gapless", 0}, {"crossfade", protocol.MaxCrossfadeMs}} {
		b.Run(c.name, func(b *testing.B) {
			eng := newEngine(testRate, 100, subframe, files, testLogger(b))
			defer eng.close()
			eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
			eng.setPlaylist(protocol.Playlist{V: 1, Session: "home", Version: 7, CrossfadeMs: c.crossfadeMs, Entries: []protocol.Entry{
				{ID: "e1", Song: "a", Frames: 300 * testRate, SampleRate: testRate},
				{ID: "e2", Song: "b", Frames: 300 * testRate, SampleRate: testRate},
			}})
			// 12 s before a ends: with the crossfade, its fade begins now
			// and lasts as long as the benchmark's blocks (at most 12 s).
			eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
				Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", PositionNs: 288 * int64(time.Second), Playing: true}})
			buf := make([][2]float64, 441)
			k := 0
			for b.Loop() {
				// Past 11 s of blocks the timeline starts over (the players
				// seek back once), so every block stays inside the fade.
				eng.Fill(buf, time.Unix(0, t0+framesToNsRound(int64(k%1100*441), testRate)-int64(fixtureOffset)))
				k++
			}
		})
	}
}

// TestEngineCrossfadeGains: through a crossfade each song keeps its own
// ReplayGain: "out" (left) at its gain along cos, "in" (right) at its own
// along sin.
func TestEngineCrossfadeGains(t *testing.T) {
	files := crossfadeFiles(t, testRate)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	eng := crossfadeEngine(t, files, fixtureOffset, protocol.RepeatOff, testRate)
	eng.place = wholeFrames
	eng.setPlaylist(protocol.Playlist{V: 1, Session: "home", Version: 7, CrossfadeMs: xfMs, Entries: []protocol.Entry{
		{ID: "e1", Song: "out", Frames: xfFrames, SampleRate: testRate, GainDb: -6},
		{ID: "e2", Song: "in", Frames: xfFrames, SampleRate: testRate, GainDb: -12},
	}})
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 100, PlaylistVersion: 7,
		Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}})
	outGain, inGain := math.Pow(10, -6.0/20), math.Pow(10, -12.0/20)
	got := playShared(eng, fixtureOffset, t0, 441, xfStart+xfFrames)
	checkFrames(t, "gains", got, 0, func(m int) [2]float64 {
		w := wantCrossfade(m)
		return [2]float64{w[0] * outGain, w[1] * inGain}
	}, tolerance)
}
