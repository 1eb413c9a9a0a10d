package e2e

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// The playback checks of TestMusicLibrary: the albums of every format,
// shuffled, and a saved playlist with a missing song, in sync; ReplayGain
// at the outputs; a crossfade in sync.

// shuffledAlbums are the albums queued and shuffled; the WAV songs, which
// make no album, join them. Kind of Blue (FLAC) follows them, in its
// order, through a saved playlist that holds the song whose file is
// deleted.
var shuffledAlbums = []string{"Milestones", "Night Lights", "Pastel Blues", "Jazz Moods", "I Put a Spell on You"}

// albumLink is the link of album, made from its first song's tags as a
// client makes it.
func (lib *musicLibrary) albumLink(t *testing.T, album string) string {
	t.Helper()
	first := lib.firstOf(t, album)
	return protocol.AlbumURI(protocol.AlbumID(cmp.Or(first.tags.AlbumArtist, first.tags.Artist), album))
}

// queueAlbums queues the shuffled albums and songs in session home, and
// after them the saved playlist of Kind of Blue, before its file is
// deleted.
func (run *libraryRun) queueAlbums() {
	t, r, lib := run.t, run.r, run.lib
	for _, album := range shuffledAlbums {
		r.enqueue(lib.albumLink(t, album))
	}
	for _, g := range lib.songs {
		if g.format == musicgen.WAV {
			r.enqueue(g.sha)
		}
	}
	if st := stateOf(t, r.cmd(`"cmd":"shuffle","on":true`)); st.State != protocol.Stopped {
		t.Fatalf("state %s after shuffle", st.State)
	}
	mix := resultOf[protocol.SavedPlaylistInfo](t, r.library(`"cmd":"playlist_create","title":"Kind of Blue"`))
	resultOf[protocol.SavedPlaylistInfo](t, r.library(fmt.Sprintf(`"cmd":"playlist_add","playlist":%q,"song":%q`, mix.ID, lib.albumLink(t, "Kind of Blue"))))
	r.enqueue(mix.URI)
	run.mix = mix.ID
}

// playedSong is the library song an entry plays (M4A songs through their
// FLAC conversion): the song of that title, or the WAV of that name.
func (lib *musicLibrary) playedSong(t *testing.T, e protocol.Entry) *libSong {
	t.Helper()
	for _, g := range lib.songs {
		if g.number != 0 && (g.tags.Title == e.Title && g.format != musicgen.WAV || g.format == musicgen.WAV && g.name == e.Title) {
			return g
		}
	}
	t.Fatalf("entry %+v: no such burst song in the library", e)
	return nil
}

// playAlbums plays the queue to its end on the three speakers. The song
// whose file was deleted shows as missing in the saved playlist and in the
// session's; every speaker skips it and never fetches it. Each format's
// bursts are heard within the skew bar by all three; the lossless songs
// carry timecode, which shows every speaker heard the shuffled order and
// began each song where the timeline puts it (the one after the missing
// entry too, with no gap for it).
func (run *libraryRun) playAlbums() {
	t, r, s, lib := run.t, run.r, run.s, run.lib
	deleted := lib.song(t, deletedTitle)
	page := resultOf[protocol.SavedPlaylistPage](t, r.library(fmt.Sprintf(`"cmd":"playlist","playlist":%q`, run.mix)))
	if len(page.Songs) != 3 || page.Songs[1].SHA256 != deleted.sha || !page.Songs[1].Missing || page.Songs[0].Missing || page.Songs[2].Missing {
		t.Errorf("saved playlist %+v: want its second song missing", page.Songs)
	}
	var pl protocol.Playlist
	testwait.For(t, "the deleted song's entry missing in the session's playlist", 10*time.Second, func() bool {
		pl = r.playlist()
		i := slices.IndexFunc(pl.Entries, func(e protocol.Entry) bool { return e.Song == deleted.sha })
		return i >= 0 && pl.Entries[i].Missing
	})
	// Each entry's song; speakers decode M4A songs as the FLAC the
	// controller made of them, and Opus at its own 48 kHz.
	played := make([]*libSong, len(pl.Entries))
	for i, e := range pl.Entries {
		g := lib.playedSong(t, e)
		played[i] = g
		m4a := g.format == musicgen.AAC || g.format == musicgen.ALAC
		if m4a == (e.Song == g.sha) || e.SampleRate != g.indexed().SampleRate {
			t.Errorf("entry %d, %s (%s): song %s at %d Hz", i, e.Title, g.format, e.Song, e.SampleRate)
		}
	}
	s.waitCached(speakerNames, pl.Entries[0].Song, pl.Entries[1].Song)
	play := stateOf(t, r.cmd(`"cmd":"play"`))
	starts := make([]int64, len(pl.Entries)+1) // each entry's start on the timeline; the last, the end
	starts[0] = play.Anchor.AtNs
	for i, e := range pl.Entries {
		starts[i+1] = starts[i] + e.DurationNs()
	}
	end := starts[len(pl.Entries)]
	waitUntil(t, "the queue to play", end)
	r.waitStopped(play, 10*time.Second)

	heard := map[string][]int64{}
	for _, n := range speakerNames {
		heard[n] = s.onsets(n, starts[0], end)
	}
	// An entry's bursts are the onsets from half a burst period before it
	// starts: its first may be heard a frame early, and bursts begin a
	// period apart from the song's start (an MP3's a little later: its
	// decoder's delay).
	spreads, bursts := map[string][]int64{}, map[string]int{}
	for i, e := range pl.Entries {
		if e.Missing {
			continue
		}
		from, to := starts[i]-int64(burstPeriod/2), starts[i+1]-int64(burstPeriod/2)
		if i == 0 {
			from = starts[0] + int64(playStartBurst)
		}
		format := played[i].format
		spreads[format] = append(spreads[format], onsetSpreads(t, s, speakerNames, heard, from, to)...)
		bursts[format] += int(math.Ceil(burstSeconds / burstPeriod.Seconds()))
	}
	for _, format := range musicgen.AllFormats {
		sp := spreads[format]
		// Half the bursts at least: on a loaded machine a speaker's
		// process may stall (logged as an underrun) at a few of them.
		if len(sp) < bursts[format]/2 || len(sp) == 0 {
			t.Errorf("%s: %d of its %d bursts heard by all three speakers, want half at least (onsets %v)", format, len(sp), bursts[format], heard)
			continue
		}
		worst := slices.Max(sp)
		t.Logf("%s: %d of %d bursts heard by all three; worst spread %.3f ms (each: %v ns)", format, len(sp), bursts[format], float64(worst)/1e6, sp)
		if worst > int64(skewBar) {
			t.Errorf("%s: speakers %.3f ms apart, over the %v bar", format, float64(worst)/1e6, skewBar)
		}
	}

	var want []int // the lossless songs, by number, in the shuffled order
	for i, e := range pl.Entries {
		if !e.Missing && lossless(played[i].format) {
			want = append(want, played[i].number)
		}
	}
	for _, n := range speakerNames {
		if cached(s, n, deleted.sha) {
			t.Errorf("%s fetched the missing song", n)
		}
		var order []int
		for _, b := range s.blocks(n) {
			number := int(b.Frame / songBFirst)
			if b.TNs >= starts[0] && b.TNs < end && (len(order) == 0 || order[len(order)-1] != number) {
				order = append(order, number)
			}
		}
		if !slices.Equal(order, want) {
			t.Errorf("%s heard the lossless songs %v, the shuffled playlist has them %v (song %d is the missing one)", n, order, want, deleted.number)
		}
		run.checkStarts(n, pl, played, starts)
	}
	t.Logf("shuffled order of the lossless songs %v", want)
}

// checkStarts checks that speaker n began each lossless entry but the
// first (how soon a speaker starts is the start benchmark's) where the
// timeline puts it, within the skew bar, unless its process stalled there
// (its device underran), which is logged.
func (run *libraryRun) checkStarts(n string, pl protocol.Playlist, played []*libSong, starts []int64) {
	t := run.t
	blocks := run.s.blocks(n)
	for i, e := range pl.Entries {
		g := played[i]
		if i == 0 || e.Missing || !lossless(g.format) {
			continue
		}
		first := int64(g.number) * songBFirst
		k := slices.IndexFunc(blocks, func(b playlog.Block) bool { return b.Frame >= first && b.Frame < first+e.Frames })
		if k < 0 {
			t.Errorf("%s never played %s", n, e.Title)
			continue
		}
		b := blocks[k]
		off := b.TNs - protocol.FramesToNs(b.Frame-first, rate) - starts[i]
		after := ""
		if pl.Entries[i-1].Missing {
			after = " (after the missing entry)"
		}
		switch _, stall := stalled(t, run.s, []string{n}, starts[i]); {
		case abs(off) <= int64(skewBar):
		case stall:
			t.Logf("%s began %s%s %.3f ms off the timeline: its process stalled (its device underran), not counted", n, e.Title, after, float64(off)/1e6)
		default:
			t.Errorf("%s began %s%s %.3f ms off the timeline", n, e.Title, after, float64(off)/1e6)
		}
	}
}

// waitUntil waits until the real clock passes ns (Unix).
func waitUntil(t *testing.T, what string, ns int64) {
	t.Helper()
	testwait.For(t, what, time.Duration(ns-time.Now().UnixNano())+10*time.Second, func() bool { return time.Now().UnixNano() > ns })
}

// The level test tones: square waves at 110 Hz, one whose tags say -6 dB,
// and a quiet one with spikes, which its +12 dB would push past full
// scale.
const (
	levelSeconds = 2
	loudAmp      = 0.2042
	quietAmp     = 0.02
)

// squareWave is a 110 Hz square wave of amplitude amp (full scale 1);
// every spikeEvery frames (0: never) one frame is a spike of 0.5 instead.
func squareWave(amp float64, spikeEvery int64) func(i int64) audiogen.Frame {
	level := levelOf(amp)
	return func(i int64) audiogen.Frame {
		v := level
		if (i/200)%2 == 1 {
			v = -level
		}
		if spikeEvery > 0 && i%spikeEvery == spikeEvery/2 {
			v = 16384
		}
		return audiogen.Frame{L: v, R: v}
	}
}

// levelOf is the sample a square wave of amplitude amp holds.
func levelOf(amp float64) int16 { return int16(math.Round(amp * 32767)) }

// playReplayGain plays the level test tones in ReplayGain track mode on the
// three speakers, whose outputs record every sample: the first comes out
// 6 dB lower, the second louder by its gain with no sample clipped, and
// every speaker's output is the same.
func (run *libraryRun) playReplayGain() {
	t, r, s := run.t, run.r, run.s
	stateOf(t, r.cmd(`"cmd":"shuffle","on":false`))
	stateOf(t, r.cmd(`"cmd":"clear"`))
	r.enqueue(run.lib.albumLink(t, "Levels"))
	stateOf(t, r.cmd(`"cmd":"replaygain","mode":"track"`))
	var pl protocol.Playlist
	testwait.For(t, "the playlist in track mode", 10*time.Second, func() bool {
		pl = r.playlist()
		return pl.ReplayGain == protocol.GainTrack && len(pl.Entries) == 2
	})
	gains := []float64{pl.Entries[0].GainDb, pl.Entries[1].GainDb}
	t.Logf("entry gains %v dB", gains)
	if math.Abs(gains[0]+6) > 0.2 || gains[1] <= 3 {
		t.Fatalf("entry gains %v dB, want about -6 and well above 0", gains)
	}
	s.waitCached(speakerNames, pl.Entries[0].Song, pl.Entries[1].Song)
	play := stateOf(t, r.cmd(`"cmd":"play"`))
	end := play.Anchor.AtNs + pl.Entries[0].DurationNs() + pl.Entries[1].DurationNs()
	waitUntil(t, "the level tones to play", end)
	r.waitStopped(play, 10*time.Second)
	stateOf(t, r.cmd(`"cmd":"replaygain","mode":"off"`))

	// Each song's square wave comes out at its level times its gain (to
	// the rounding of a 16-bit sample), for at least most of its length.
	sources := []int16{levelOf(loudAmp), levelOf(quietAmp)}
	want := []int{
		int(math.Round(float64(sources[0]) * math.Pow(10, gains[0]/20))),
		int(math.Round(float64(sources[1]) * math.Pow(10, gains[1]/20))),
	}
	var first []int
	firstPeak := 0
	for _, name := range speakerNames {
		count, peak := levels(t, s.pcmHeard(name, play.Anchor.AtNs, end))
		for i, w := range want {
			if n := count[w]; n < levelSeconds*rate/2 {
				t.Errorf("%s: song %d: %d frames at %d (its %d times %.2f dB), want %d", name, i+1, n, w, sources[i], gains[i], levelSeconds*rate/2)
			}
		}
		heard := 20 * math.Log10(float64(want[0])/float64(sources[0]))
		t.Logf("%s: the -6 dB song heard %.2f dB from its file; peak %d (%.2f dBFS)", name, heard, peak, 20*math.Log10(float64(peak)/32768))
		// The spikes: 0.5 of full scale times the gain would clip; the
		// controller's peak cap or the limiter holds them under it.
		if peak >= 32767 || peak < int(0.5*32768) {
			t.Errorf("%s: peak %d: clipped, or the spikes were not heard", name, peak)
		}
		// What each speaker played: the levels it held for 10 ms or more
		// (a resync under load may skip or repeat a few frames, and fades
		// in; the levels stay), silence aside (a speaker may start a few
		// ms after another), and its peak.
		var held []int
		for v, n := range count {
			if n >= rate/100 && v != 0 {
				held = append(held, v)
			}
		}
		slices.Sort(held)
		if first == nil {
			first, firstPeak = held, peak
			continue
		}
		if peak != firstPeak || !slices.Equal(held, first) {
			t.Errorf("%s: levels %v, peak %d; %s: levels %v, peak %d", name, held, peak, speakerNames[0], first, firstPeak)
		}
	}
}

// The crossfade test tones hold one constant level each, in one channel:
// Right in the right, Left in the left. Through a fade the two channels
// are the two curves, cos and sin of where in the fade a frame is, so the
// left sample a speaker's device logged for a block's first frame
// (unrounded) tells which frame of the fade it was, and when it was heard
// tells how far from the timeline that speaker played.
const (
	xfLevel   = 16000.0 // each song's constant sample
	xfSeconds = 6       // each song
	xfFade    = 2       // the crossfade, s
)

// constant is a song's frames that are all f.
func constant(f audiogen.Frame) func(int64) audiogen.Frame {
	return func(int64) audiogen.Frame { return f }
}

// playCrossfade plays Right then Left with a 2 s crossfade under repeat
// all, set with the CLI, on three speakers: through both fades (Right into
// Left, and Left into Right again, where the playlist wraps) every
// speaker's curves are where the timeline puts them, within the skew bar
// of it and of each other; after the wrap, Right plays alone again.
func (run *libraryRun) playCrossfade() {
	t, r, s := run.t, run.r, run.s
	stateOf(t, r.cmd(`"cmd":"clear"`))
	r.enqueue(run.lib.albumLink(t, "Crossfades"))
	s.cli("crossfade", fmt.Sprint(xfFade))
	s.cli("repeat", "all")
	if status := s.cli("status"); !strings.Contains(status, "repeat all, shuffle off, crossfade 2 s") {
		t.Errorf("status does not show the play modes:\n%s", status)
	}
	pl := r.playlist()
	s.waitCached(speakerNames, pl.Entries[0].Song, pl.Entries[1].Song)
	play := stateOf(t, r.cmd(`"cmd":"play","index":0`))
	t0 := play.Anchor.AtNs
	const fadeFrames = xfFade * rate
	step := int64(xfSeconds*rate - fadeFrames) // frames from one song's start to the next's
	wrapEnd := t0 + protocol.FramesToNs(2*step+fadeFrames, rate)
	waitUntil(t, "the playlist to wrap and Right to play alone again", wrapEnd+int64(1500*time.Millisecond))
	stateOf(t, r.cmd(`"cmd":"pause"`))

	// Where each speaker's blocks fell against the timeline, through each fade.
	fades := []struct {
		what  string
		start int64                    // output frame where the fade begins
		x     func(lx float64) float64 // the fade's angle a block's left sample says
	}{
		{"Right into Left", step, func(lx float64) float64 { return math.Asin(lx / xfLevel) }},
		{"Left into Right, the wrap", 2 * step, func(lx float64) float64 { return math.Acos(lx / xfLevel) }},
	}
	for _, fade := range fades {
		offsets := map[string][]int64{}
		for _, n := range speakerNames {
			for _, l := range readLines(t, s.logs[n]) {
				if l.Underrun || l.Sound == 0 {
					continue
				}
				x := fade.x(l.LX)
				from, to := t0+fade.start*1e9/rate, t0+(fade.start+fadeFrames)*1e9/rate
				if l.TNs < from || l.TNs > to || math.IsNaN(x) || x < 0.15*math.Pi/2 || x > 0.85*math.Pi/2 {
					continue // outside the fade, or where a curve is too flat to read
				}
				frame := float64(fade.start) + x*2*fadeFrames/math.Pi - 0.5
				offsets[n] = append(offsets[n], l.TNs-t0-int64(math.Round(frame*1e9/rate)))
			}
		}
		var medians []int64
		for _, n := range speakerNames {
			o := offsets[n]
			if len(o) < 50 { // 1.4 s of the fade: 70 to 140 blocks
				t.Fatalf("%s: %s: only %d blocks of the fade read", fade.what, n, len(o))
			}
			slices.Sort(o)
			med, worst := o[len(o)/2], max(abs(o[0]), abs(o[len(o)-1]))
			t.Logf("%s: %s: %d blocks, offset from the timeline median %.3f ms, worst %.3f ms", fade.what, n, len(o), float64(med)/1e6, float64(worst)/1e6)
			if worst > int64(skewBar) {
				t.Errorf("%s: %s played a block %.3f ms off the timeline, bar %v", fade.what, n, float64(worst)/1e6, skewBar)
			}
			medians = append(medians, med)
		}
		spread := slices.Max(medians) - slices.Min(medians)
		t.Logf("%s: skew between the speakers' medians %.3f ms", fade.what, float64(spread)/1e6)
		if spread > int64(skewBar) {
			t.Errorf("%s: speakers %.3f ms apart, bar %v", fade.what, float64(spread)/1e6, skewBar)
		}
	}

	// After the wrap, Right alone: right channel at its level, left silent.
	for _, n := range speakerNames {
		alone := 0
		for _, l := range readLines(t, s.logs[n]) {
			if l.TNs > wrapEnd+int64(200*time.Millisecond) && l.TNs < wrapEnd+int64(time.Second) && l.R == xfLevel && l.L == 0 {
				alone++
			}
		}
		if alone < 30 {
			t.Errorf("%s: %d blocks of Right alone after the wrap, want 0.8 s of them", n, alone)
		}
	}
}
