package speaker

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

const testRate = 44100

// memFiles is a songFiles over files the test wrote, and downloads it
// controls.
type memFiles struct {
	mu       sync.Mutex
	paths    map[string]string
	partials map[string]*download
}

func (m *memFiles) Partial(sha string) (*download, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.partials[sha]
	return d, ok
}

func (m *memFiles) Lookup(sha string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.paths[sha]
	return p, ok
}

// MP3Index indexes the file as the cache does when it verifies one.
func (m *memFiles) MP3Index(sha string) (*mp3Index, error) {
	path, ok := m.Lookup(sha)
	if !ok {
		return nil, errors.New("no such song")
	}
	index, _, err := indexSongFile(path)
	return index, err
}

func (m *memFiles) put(sha, path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paths == nil {
		m.paths = map[string]string{}
	}
	m.paths[sha] = path
}

// writeTimecode writes a timecode WAV whose frame i carries index first+i.
func writeTimecode(t testing.TB, dir string, rate int, frames, first int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "tc-*.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := audiogen.WriteWAV(f, rate, frames, func(i int64) audiogen.Frame { return audiogen.Timecode(first + i) }); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// heard decodes the timecode of each frame; -1 for silence.
func heard(buf [][2]float64) []int64 {
	out := make([]int64, len(buf))
	for i, f := range buf {
		n, ok := audiogen.ReadTimecode(audiogen.Frame{L: toS16(f[0]), R: toS16(f[1])})
		if !ok {
			n = -1
		}
		out[i] = n
	}
	return out
}

// engineFixture has songs "a" (1000 frames, timecodes 0..) and "b" (500
// frames, timecodes 100000..) in a playlist, and an engine whose local
// clock is 7 s behind the shared one.
type engineFixture struct {
	eng   *engine
	files *memFiles
	pl    protocol.Playlist
	t0    int64 // a shared instant
}

const fixtureOffset = 7 * time.Second

// trusted is a clock estimate the engine plays by at once.
func trusted(m clocksync.Model) clocksync.Estimate {
	return clocksync.Estimate{Model: m, Bound: 100 * time.Microsecond, Samples: syncSamples, Trust: clocksync.Trust{Open: true, Opened: true}}
}

func newFixture(t *testing.T) *engineFixture {
	dir := t.TempDir()
	files := &memFiles{}
	files.put("a", writeTimecode(t, dir, testRate, 1000, 0))
	files.put("b", writeTimecode(t, dir, testRate, 500, 100000))
	eng := newEngine(testRate, 100, subframe, files, testLogger(t))
	t.Cleanup(eng.close)
	eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
	pl := protocol.Playlist{V: 1, Session: "home", Version: 3, Entries: []protocol.Entry{
		{ID: "e1", Song: "a", Frames: 1000, SampleRate: testRate},
		{ID: "e2", Song: "b", Frames: 500, SampleRate: testRate},
	}}
	eng.setPlaylist(pl)
	return &engineFixture{eng: eng, files: files, pl: pl, t0: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}
}

func (f *engineFixture) state(atNs int64, index int, posNs int64, playing bool, volume int) protocol.SessionState {
	st := protocol.SessionState{V: 1, Session: "home", State: protocol.Paused, Volume: volume, PlaylistVersion: f.pl.Version,
		Anchor: protocol.Anchor{AtNs: atNs, Index: index, Entry: f.pl.Entries[index].ID, PositionNs: posNs, Playing: playing}}
	if playing {
		st.State = protocol.Playing
	}
	return st
}

// play pulls blocks of 441 frames, the first heard at shared instant start,
// and returns the timecodes heard.
func (f *engineFixture) play(start int64, frames int) []int64 {
	var got []int64
	for k := 0; k*441 < frames; k++ {
		buf := make([][2]float64, 441)
		shared := start + framesToNsRound(int64(k*441), testRate)
		f.eng.Fill(buf, time.Unix(0, shared-int64(fixtureOffset)))
		got = append(got, heard(buf)...)
	}
	return got[:frames]
}

// fading stands for frames a fade-in scales, whose timecode cannot be read.
const fading = -2

// inFade says whether output frame i is within the fade-in that starts at
// frame from.
func inFade(i, from int) bool { return i >= from && i < from+fadeFrames*testRate/1000 }

func checkHeard(t *testing.T, got []int64, want func(i int) int64) {
	t.Helper()
	bad := 0
	for i, g := range got {
		if w := want(i); g != w && w != fading {
			if bad < 5 {
				t.Errorf("frame %d: heard %d, want %d", i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d frames wrong", bad, len(got))
	}
}

func TestEngineGaplessAcrossEntries(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	// Start 100 frames early: silence until the anchor, then a, b, end.
	got := f.play(f.t0-framesToNsRound(100, testRate), 1800)
	checkHeard(t, got, func(i int) int64 {
		g := int64(i - 100)
		switch {
		case g < 0:
			return -1
		case g < 1000:
			return g
		case g < 1500:
			return 100000 + g - 1000
		}
		return -1
	})
	if st := f.eng.status(); st.State != protocol.Stopped {
		t.Errorf("after the playlist: state %q, want stopped", st.State)
	}
}

func TestEngineLateJoin(t *testing.T) {
	f := newFixture(t)
	// The anchor started 10 ms (441 frames) before the first block, 200 frames into a.
	f.eng.addState(f.state(f.t0, 0, framesToNsRound(200, testRate), true, 100))
	got := f.play(f.t0+10*int64(time.Millisecond), 900)
	checkHeard(t, got, func(i int) int64 {
		g := int64(641 + i)
		switch {
		case inFade(i, 0):
			return fading
		case g < 1000:
			return g
		case g < 1500:
			return 100000 + g - 1000
		}
		return -1
	})
}

func TestEngineAnchorSwitchMidBlock(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	// Pause announced ahead, effective 300.4 frames after t0: frames 0..300
	// play, frame 301 (the first at or after the instant) is silent.
	pauseAt := f.t0 + framesToNsRound(300, testRate) + 9000
	pausePos := pauseAt - f.t0
	f.eng.addState(f.state(pauseAt, 0, pausePos, false, 100))
	// Resume 600 frames after t0 by seeking to b's frame 200.
	resumeAt := f.t0 + framesToNsRound(600, testRate)
	f.eng.addState(f.state(resumeAt, 1, framesToNsRound(200, testRate), true, 100))
	got := f.play(f.t0, 1323)
	checkHeard(t, got, func(i int) int64 {
		switch {
		case i <= 300:
			return int64(i)
		case i < 600:
			return -1
		case inFade(i, 600):
			return fading
		case i < 900:
			return 100000 + 200 + int64(i-600)
		}
		return -1
	})
	if st := f.eng.status(); st.State != protocol.Playing || st.Song != "b" {
		t.Errorf("status %+v, want playing b", st)
	}
}

func TestEngineNewStateSupersedesPendingOne(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	f.eng.addState(f.state(f.t0+framesToNsRound(200, testRate), 0, 0, false, 100)) // pause at 200...
	f.eng.addState(f.state(f.t0+framesToNsRound(100, testRate), 1, 0, true, 100))  // ...replaced by a jump at 100
	got := f.play(f.t0, 441)
	checkHeard(t, got, func(i int) int64 {
		if i < 100 {
			return int64(i)
		}
		return 100000 + int64(i-100)
	})
}

func TestEngineVolume(t *testing.T) {
	f := newFixture(t)
	f.eng.ownVolume, f.eng.ownGain = 50, volumeGain(50) // as newEngine sets it
	f.eng.addState(f.state(f.t0, 0, 0, true, 80))
	buf := make([][2]float64, 441)
	f.eng.Fill(buf, time.Unix(0, f.t0-int64(fixtureOffset)))
	checkGain(t, buf, 0, func(int) float64 { return math.Pow(0.8*0.5, 2) })
}

// checkGain checks that buf holds the timecode from frame first on, each
// frame i scaled by gain(i).
func checkGain(t *testing.T, buf [][2]float64, first int64, gain func(i int) float64) {
	t.Helper()
	for i, fr := range buf {
		want, g := audiogen.Timecode(first+int64(i)), gain(i)
		if math.Abs(fr[0]-float64(want.L)/32768*g) > 1e-12 || math.Abs(fr[1]-float64(want.R)/32768*g) > 1e-12 {
			t.Fatalf("frame %d: %v, want timecode %v times %v", i, fr, want, g)
		}
	}
}

// TestEngineOwnVolumeRamps: a change of the speaker's own volume applies at
// once but ramps over volumeRamp, so that it does not click.
func TestEngineOwnVolumeRamps(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	buf := make([][2]float64, 441)
	f.eng.Fill(buf, time.Unix(0, f.t0-int64(fixtureOffset)))
	checkGain(t, buf, 0, func(int) float64 { return 1 })

	f.eng.setOwnVolume(50) // gain 1 -> 0.25
	f.eng.Fill(buf, time.Unix(0, f.t0+framesToNsRound(441, testRate)-int64(fixtureOffset)))
	step := 1 / (volumeRamp.Seconds() * testRate)
	checkGain(t, buf, 441, func(i int) float64 { return max(0.25, 1-float64(i+1)*step) })
	if rampFrames := int(0.75/step) + 1; rampFrames >= len(buf) {
		t.Fatalf("ramp of %d frames does not end within the block", rampFrames)
	}
}

func TestEngineSongArrivesLate(t *testing.T) {
	f := newFixture(t)
	pathA, _ := f.files.Lookup("a")
	f.files.put("a", filepath.Join(t.TempDir(), "missing"))
	delete(f.files.paths, "a")
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	got := f.play(f.t0, 441)
	checkHeard(t, got, func(int) int64 { return -1 })
	if st := f.eng.status(); st.State != buffering {
		t.Errorf("state %q, want buffering", st.State)
	}
	f.files.put("a", pathA)
	got = f.play(f.t0+framesToNsRound(441, testRate), 441)
	checkHeard(t, got, func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return int64(441 + i)
	})
}

func TestEngineWaitsForMatchingPlaylist(t *testing.T) {
	f := newFixture(t)
	st := f.state(f.t0, 0, 0, true, 100)
	st.PlaylistVersion = 4
	f.eng.addState(st)
	got := f.play(f.t0, 441)
	checkHeard(t, got, func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != buffering {
		t.Errorf("state %q, want buffering", s.State)
	}
	pl := f.pl
	pl.Version = 4
	pl.Entries = []protocol.Entry{pl.Entries[1], pl.Entries[0]}
	f.eng.setPlaylist(pl)
	// Entry id of index 0 is now e2: mismatch, still silent.
	got = f.play(f.t0+framesToNsRound(441, testRate), 441)
	checkHeard(t, got, func(int) int64 { return -1 })
	st.Anchor.Entry = "e2"
	st.Anchor.AtNs = f.t0 + framesToNsRound(882, testRate)
	f.eng.addState(st)
	got = f.play(f.t0+framesToNsRound(882, testRate), 441)
	checkHeard(t, got, func(i int) int64 { return 100000 + int64(i) })
}

func TestEngineResamplesOtherRates(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	f.files.put("slow", writeTimecode(t, dir, testRate/2, 2205, 0)) // 100 ms at 22050 Hz
	pl := protocol.Playlist{V: 1, Version: 9, Entries: []protocol.Entry{
		{ID: "s", Song: "slow", Frames: 2205, SampleRate: testRate / 2},
		{ID: "x", Song: "b", Frames: 500, SampleRate: testRate},
	}}
	f.eng.setPlaylist(pl)
	f.eng.addState(protocol.SessionState{V: 1, State: protocol.Playing, Volume: 100, PlaylistVersion: 9,
		Anchor: protocol.Anchor{AtNs: f.t0, Index: 0, Entry: "s", Playing: true}})
	got := f.play(f.t0, 4410+441)
	for i := 0; i < 4410; i++ {
		if got[i] == -1 && i > 20 && i < 4390 { // resampled timecodes are not exact, but not silent
			t.Fatalf("frame %d silent inside the resampled song", i)
		}
	}
	checkHeard(t, got[4410:], func(i int) int64 { return 100000 + int64(i) })
}

// FuzzEngineFill feeds arbitrary session states and playlists to the engine:
// whatever they say, Fill must neither panic nor hang, and output finite samples.
func FuzzEngineFill(f *testing.F) {
	f.Add([]byte(`{"v":1,"state":"playing","volume":100,"playlist_version":3,"anchor":{"at_ns":0,"index":0,"entry":"e1","position_ns":0,"playing":true}}`),
		[]byte(`{"v":1,"version":3,"entries":[{"id":"e1","song":"a","frames":1000,"sample_rate":44100}]}`), int64(0))
	f.Add([]byte(`{"v":1,"state":"playing","volume":100,"playlist_version":3,"anchor":{"at_ns":-9223372036854775808,"index":0,"entry":"e1","position_ns":9223372036854775807,"playing":true}}`),
		[]byte(`{"v":1,"version":3,"entries":[{"id":"e1","song":"a","frames":9223372036854775807,"sample_rate":1}]}`), int64(1e18))
	f.Add([]byte(`{"v":1,"state":"playing","volume":100,"playlist_version":3,"anchor":{"at_ns":0,"index":1,"entry":"e2","position_ns":900000000000,"playing":true}}`),
		[]byte(`{"v":1,"version":3,"repeat":"all","crossfade_ms":12000,"entries":[{"id":"e1","song":"a","frames":1000,"sample_rate":44100},{"id":"e2","song":"b","frames":1,"sample_rate":8000},{"id":"e3","song":"a","frames":5,"sample_rate":1}]}`), int64(1e9))
	dir := f.TempDir()
	files := &memFiles{}
	files.put("a", writeTimecode(f, dir, testRate, 1000, 0))
	files.put("b", writeTimecode(f, dir, 8000, 500, 0))
	f.Fuzz(func(t *testing.T, stateJSON, playlistJSON []byte, heardNs int64) {
		st, err1 := protocol.Decode[protocol.SessionState](stateJSON)
		pl, err2 := protocol.Decode[protocol.Playlist](playlistJSON)
		if err1 != nil || err2 != nil || st.Volume < 0 || st.Volume > 100 {
			return
		}
		for _, e := range pl.Entries {
			if e.SampleRate <= 0 || e.Frames < 0 {
				return
			}
		}
		eng := newEngine(testRate, 100, subframe, files, testLogger(t))
		defer eng.close()
		eng.setClock(trusted(clocksync.Model{Offset: heardNs % int64(time.Hour)}))
		eng.setPlaylist(pl)
		eng.addState(st)
		buf := make([][2]float64, 441)
		for k := range 3 {
			eng.Fill(buf, time.Unix(0, heardNs).Add(time.Duration(k)*10*time.Millisecond))
			for _, fr := range buf {
				if math.IsNaN(fr[0]) || math.IsInf(fr[0], 0) || math.IsNaN(fr[1]) || math.IsInf(fr[1], 0) {
					t.Fatalf("non-finite sample %v", fr)
				}
			}
		}
	})
}

// TestEnginePauseStopsAtThePausePosition: a speaker whose clock estimate
// moved by less than the seek tolerance after it started plays on from its
// decoder, some frames ahead of or behind the timeline. A pause must still
// stop it at the pause position to the frame, as on every other speaker.
func TestEnginePauseStopsAtThePausePosition(t *testing.T) {
	for _, shift := range []time.Duration{-300 * time.Microsecond, 300 * time.Microsecond, 0} {
		f := newFixture(t)
		f.eng.addState(f.state(f.t0, 0, 0, true, 100))
		first := f.play(f.t0, 441) // decoder positioned with the first estimate
		f.eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset + shift)}))
		pauseAt := f.t0 + framesToNsRound(700, testRate) + 9000
		f.eng.addState(f.state(pauseAt, 0, pauseAt-f.t0, false, 100))
		rest := f.play(f.t0+framesToNsRound(441, testRate), 441*2)
		got := append(first, rest...)
		last := int64(-1)
		for _, g := range got {
			if g >= 0 {
				if g != last+1 {
					t.Errorf("shift %v: frame %d after %d: playback not continuous", shift, g, last)
				}
				last = g
			}
		}
		if last != 700 {
			t.Errorf("shift %v: stopped after frame %d, the pause position is after frame 700", shift, last)
		}
	}
}

// TestEngineFadesInAfterASeek: entering a song mid-way ramps the gain up
// over the fade, from silence to full, instead of a click.
func TestEngineFadesInAfterASeek(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, framesToNsRound(300, testRate), true, 100))
	buf := make([][2]float64, 441)
	f.eng.Fill(buf, time.Unix(0, f.t0-int64(fixtureOffset)))
	fade := fadeFrames * testRate / 1000
	for _, i := range []int{0, fade / 2, fade, 400} {
		full := audiogen.Timecode(int64(300 + i))
		wantGain := min(1, float64(i)/float64(fade))
		if got := buf[i][1] * 32768; math.Abs(got-float64(full.R)*wantGain) > 1e-6 {
			t.Errorf("frame %d: right channel %v, want %v (gain %.2f)", i, got, float64(full.R)*wantGain, wantGain)
		}
	}
}

// TestEngineCorrectsDrift plays through a device whose oscillator runs
// 100 ppm fast (and one 100 ppm slow) for a simulated minute: the engine
// must steer its speed so that each block's first frame stays on the
// timeline, without seeking (which would fade and show as unreadable frames).
func TestEngineCorrectsDrift(t *testing.T) {
	for _, ppm := range []float64{100, -100, 350} {
		f := newFixture(t)
		dir := t.TempDir()
		f.files.put("long", writeTimecode(t, dir, testRate, 70*testRate, 0))
		pl := protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "l1", Song: "long", Frames: 70 * testRate, SampleRate: testRate}}}
		f.eng.setPlaylist(pl)
		f.pl = pl
		f.eng.addState(f.state(f.t0, 0, 0, true, 100))
		buf := make([][2]float64, 441)
		var worst float64
		for k := 0; k < 60*100; k++ {
			// The device takes block k at its own pace: 441 frames per
			// 10 ms of its oscillator, that is 10 ms/(1+ppm) of real time.
			heard := f.t0 + int64(float64(k)*1e7/(1+ppm/1e6))
			f.eng.Fill(buf, time.Unix(0, heard-int64(fixtureOffset)))
			fr := audiogen.Frame{L: int16(math.Round(buf[0][0] * 32768)), R: int16(math.Round(buf[0][1] * 32768))}
			got, ok := audiogen.ReadTimecode(fr)
			if !ok && !nearWrapFrame(heard-f.t0) {
				t.Fatalf("ppm %v block %d: unreadable first frame %v (a seek?)", ppm, k, fr)
			}
			want := float64(heard-f.t0) * testRate / 1e9
			if k >= 3*100 && !nearWrapFrame(heard-f.t0) { // three seconds to converge
				worst = max(worst, math.Abs(float64(got)-want))
			}
		}
		t.Logf("ppm %+.0f: worst error after 3 s: %.2f frames (%.1f µs)", ppm, worst, worst/testRate*1e6)
		if worst > 2 {
			t.Errorf("ppm %+.0f: first frames off the timeline by up to %.2f frames", ppm, worst)
		}
	}
}

// nearWrapFrame says whether the frame heard ns into the song is next to a
// jump of the timecode signal (its left channel wraps at every 2^15 frames):
// interpolating across a jump gives samples that read as other frames.
func nearWrapFrame(ns int64) bool {
	return math.Abs(math.Remainder(float64(ns)*testRate/1e9, 1<<15)) < 2*resampleQuality
}

// partialFixture plays song "p", 2 s of timecode, from a download whose
// progress the test sets: the WAV's frame i is at byte 44+4i.
func partialFixture(t *testing.T) (*engineFixture, *download) {
	f := newFixture(t)
	path := writeTimecode(t, t.TempDir(), testRate, 2*testRate, 0)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	dl := &download{path: path, size: st.Size()}
	f.files.mu.Lock()
	f.files.partials = map[string]*download{"p": dl}
	f.files.mu.Unlock()
	f.pl = protocol.Playlist{V: 1, Session: "home", Version: 5, Entries: []protocol.Entry{{ID: "p1", Song: "p", Frames: 2 * testRate, SampleRate: testRate}}}
	f.eng.setPlaylist(f.pl)
	return f, dl
}

func wavBytes(frames int64) int64 { return 44 + 4*frames }

// TestEnginePlaysWhileDownloading: playback starts once the head of the
// song is there, outputs silence (buffering) rather than wrong audio when
// it overtakes the download, and resumes at the right frame when more
// arrives.
func TestEnginePlaysWhileDownloading(t *testing.T) {
	f, dl := partialFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	block := framesToNsRound(441, testRate)

	got := f.play(f.t0, 441) // nothing there yet
	checkHeard(t, got, func(int) int64 { return -1 })
	if st := f.eng.status(); st.State != buffering || st.Error != stillDownloading {
		t.Errorf("status %+v, want buffering: %s", st, stillDownloading)
	}

	dl.setHead(wavBytes(50000))
	got = f.play(f.t0+block, 441*99)
	lastHeard := int64(-1)
	for i, g := range got {
		switch {
		case inFade(i, 0): // scaled: unreadable
		case g >= 0 && g != int64(441+i):
			t.Fatalf("frame %d: heard %d, want %d or silence", i, g, 441+i)
		case g >= 0:
			lastHeard = g
		case lastHeard < 0:
			t.Fatalf("frame %d silent though its bytes are there", i)
		}
	}
	if lastHeard < 30000 || lastHeard >= 50000 {
		t.Errorf("played up to frame %d of the 50000 downloaded", lastHeard)
	}
	if st := f.eng.status(); st.State != buffering {
		t.Errorf("past the download: state %q, want buffering", st.State)
	}

	// The rest arrives: playback goes on at the frame due, after a fade-in.
	dl.setHead(dl.size)
	start := int64(441 * 100)
	got = f.play(f.t0+framesToNsRound(start, testRate), 441*10)
	checkHeard(t, got, func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return start + int64(i)
	})
	if st := f.eng.status(); st.State != protocol.Playing {
		t.Errorf("after the download: state %q, want playing", st.State)
	}
}

// TestEngineStopsWhenADownloadFails: bytes played before the hash check
// must stop as soon as the download turns out bad, and the engine must not
// mark the song undecodable (it is fetched again).
func TestEngineStopsWhenADownloadFails(t *testing.T) {
	f, dl := partialFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	dl.setHead(dl.size)
	got := f.play(f.t0, 441*2)
	checkHeard(t, got, func(i int) int64 { return int64(i) })

	dl.finish(downloadFailed)
	got = f.play(f.t0+framesToNsRound(441*2, testRate), 441)
	checkHeard(t, got, func(int) int64 { return -1 })
	f.eng.mu.Lock()
	_, bad := f.eng.bad["p"]
	_, open := f.eng.players[playerKey{song: "p", entry: "p1"}]
	f.eng.mu.Unlock()
	if bad || open {
		t.Errorf("after a failed download: marked bad %v, player open %v; want neither", bad, open)
	}

	// Fetched again and verified: it plays on from the frame due.
	f.files.mu.Lock()
	delete(f.files.partials, "p")
	f.files.mu.Unlock()
	f.files.put("p", dl.path)
	got = f.play(f.t0+framesToNsRound(441*3, testRate), 441)
	checkHeard(t, got, func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return int64(441*3 + i)
	})
}

// TestEngineWaitsForCompleteCompressedSong: a partial download that no
// decoder can start on (here bytes an mp3 decoder finds no frame in) waits
// for the complete file, and is not marked bad for it.
func TestEngineWaitsForCompleteCompressedSong(t *testing.T) {
	f, dl := partialFixture(t)
	junk := filepath.Join(t.TempDir(), "mp3")
	if err := os.WriteFile(junk, make([]byte, 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dl.path, dl.size = junk, 200<<10
	dl.setHead(dl.size)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	got := f.play(f.t0, 441*3)
	checkHeard(t, got, func(int) int64 { return -1 })
	f.eng.mu.Lock()
	defer f.eng.mu.Unlock()
	if _, bad := f.eng.bad["p"]; bad || !f.eng.notYet[dl] {
		t.Errorf("marked bad %v, waiting for the whole file %v; want false, true", bad, f.eng.notYet[dl])
	}
}

// TestEngineSilentWhenOutOfTouch: past the grace period without hearing the
// time master the engine plays nothing, and when contact is back it plays
// on at the timeline's position.
func TestEngineSilentWhenOutOfTouch(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	f.files.put("long", writeTimecode(t, dir, testRate, 10*testRate, 0))
	pl := protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "l1", Song: "long", Frames: 10 * testRate, SampleRate: testRate}}}
	f.eng.setPlaylist(pl)
	f.pl = pl
	f.eng.grace = time.Second
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	local := func(shared int64) clocksync.LocalNs { return clocksync.LocalNs(shared - int64(fixtureOffset)) }
	f.eng.heard(local(f.t0))

	at := func(sec float64) int64 { return f.t0 + int64(sec*1e9) }
	if got := f.play(at(0.5), 441); got[440] != int64(0.5*testRate)+440 { // past the fade-in
		t.Fatalf("in touch: heard frame %d, want %d", got[440], int64(0.5*testRate)+440)
	}
	got := f.play(at(1.5), 441)
	for i, g := range got {
		if g != -1 {
			t.Fatalf("out of touch for 1.5 s: frame %d heard %d, want silence", i, g)
		}
	}
	if st := f.eng.status(); st.State != silent || !strings.Contains(st.Error, "time master") {
		t.Errorf("status %+v, want silent with the reason", st)
	}
	f.eng.heard(local(at(2)))
	got = f.play(at(2.01), 882)
	want := int64(2.01 * testRate)
	if g := got[len(got)-1]; g != want+881 { // past the fade-in
		t.Errorf("back in touch: last frame %d, want %d", g, want+881)
	}
}

// TestEngineMoveFadesOutAndJoinsMidSong: on a move the old session fades
// out over moveFade and is never heard again; the new one starts where its
// timeline is, as for a late joiner. Moved to no session, the speaker is
// silent and says it is unassigned.
func TestEngineMoveFadesOutAndJoinsMidSong(t *testing.T) {
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	checkHeard(t, f.play(f.t0, 441), func(i int) int64 { return int64(i) })

	f.eng.follow(true)
	buf := make([][2]float64, 441)
	f.eng.Fill(buf, time.Unix(0, f.t0+framesToNsRound(441, testRate)-int64(fixtureOffset)))
	fade := int(nsToFramesRound(int64(moveFade), testRate))
	checkGain(t, buf, 441, func(i int) float64 { return max(0, float64(fade-i)/float64(fade+1)) })
	if st := f.eng.status(); st.State != protocol.Stopped || st.Song != "" {
		t.Errorf("moved, before the new session's state: status %+v, want stopped", st)
	}

	// The new session plays song c (timecodes 200000..) from t0: joining at
	// frame 882, the speaker starts 882 frames into it.
	f.files.put("c", writeTimecode(t, t.TempDir(), testRate, 2000, 200000))
	pl := protocol.Playlist{V: 1, Session: "den", Version: 1, Entries: []protocol.Entry{{ID: "x", Song: "c", Frames: 2000, SampleRate: testRate}}}
	f.eng.setPlaylist(pl)
	f.eng.addState(protocol.SessionState{V: 1, Session: "den", State: protocol.Playing, Volume: 100, PlaylistVersion: 1,
		Anchor: protocol.Anchor{AtNs: f.t0, Index: 0, Entry: "x", Playing: true}})
	if !f.eng.holdsPlaylist(1, pl.Hash()) || f.eng.holdsPlaylist(3, "") {
		t.Error("the engine holds the old session's playlist, or not the new one's")
	}
	checkHeard(t, f.play(f.t0+framesToNsRound(882, testRate), 441), func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return 200882 + int64(i)
	})
	if st := f.eng.status(); st.State != protocol.Playing || st.Song != "c" {
		t.Errorf("status %+v, want playing c", st)
	}

	f.eng.follow(false)
	f.eng.Fill(buf, time.Unix(0, f.t0+framesToNsRound(1323, testRate)-int64(fixtureOffset)))
	checkGain(t, buf, 201323, func(i int) float64 { return max(0, float64(fade-i)/float64(fade+1)) })
	checkHeard(t, f.play(f.t0+framesToNsRound(1764, testRate), 441), func(int) int64 { return -1 })
	if st := f.eng.status(); st.State != unassigned {
		t.Errorf("moved to no session: status %+v, want %s", st, unassigned)
	}
}

// TestEngineSignalsChangesNotBlocks: the engine wakes the status loop when
// what plays changes (state, song, error) and the fetch loop when the song
// changes or the first clock estimate arrives; blocks that only move the
// position wake no one, so the loops sleep while a song plays.
func TestEngineSignalsChangesNotBlocks(t *testing.T) {
	f := newFixture(t)
	status, fetch := make(chan struct{}, 1), make(chan struct{}, 1)
	f.eng.statusWake, f.eng.fetchWake = status, fetch
	signalled := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	// Blocks of 441 frames: song a (1000 frames) in blocks 0-2, b from block 3.
	want := []struct {
		song          string
		status, fetch bool
	}{{"a", true, true}, {"a", false, false}, {"a", false, false}, {"b", true, true}}
	for k, w := range want {
		f.play(f.t0+framesToNsRound(int64(k*441), testRate), 441)
		pb := f.eng.status()
		if pb.Song != w.song || pb.State != protocol.Playing {
			t.Fatalf("block %d: %+v, want song %s playing", k, pb, w.song)
		}
		if got := signalled(status); got != w.status {
			t.Errorf("block %d: status loop woken %v, want %v", k, got, w.status)
		}
		if got := signalled(fetch); got != w.fetch {
			t.Errorf("block %d: fetch loop woken %v, want %v", k, got, w.fetch)
		}
	}

	eng := newEngine(testRate, 100, subframe, f.files, testLogger(t))
	t.Cleanup(eng.close)
	eng.fetchWake = fetch
	eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset)}))
	if !signalled(fetch) {
		t.Error("the first clock estimate did not wake the fetch loop")
	}
	eng.setClock(trusted(clocksync.Model{Offset: int64(fixtureOffset) + 1000}))
	if signalled(fetch) {
		t.Error("a later clock estimate woke the fetch loop")
	}
}
