package speaker

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// soundT0 is a shared instant the sound tests start at.
var soundT0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano()

// fillFrom pulls blocks of 441 frames from eng, the first heard at shared
// instant soundT0 + frame first, on a local clock offset ns behind the
// shared one, and returns the frames.
func fillFrom(eng *engine, offset time.Duration, first, frames int) [][2]float64 {
	var out [][2]float64
	for k := 0; len(out) < frames; k++ {
		buf := make([][2]float64, 441)
		shared := soundT0 + framesToNsRound(int64(first+k*441), testRate)
		eng.Fill(buf, time.Unix(0, shared-int64(offset)))
		out = append(out, buf...)
	}
	return out[:frames]
}

// TestEngineChimeStartsAtTheSharedInstant: speakers whose local clocks
// differ by minutes and whose blocks fall differently all play chime frame
// j at shared frame at+j, to the frame; one that starts late plays the rest
// of the chime in sync; and the chime is forgotten once it ended.
func TestEngineChimeStartsAtTheSharedInstant(t *testing.T) {
	const atFrame = 1000
	// A hair before frame atFrame's instant: the ns rounding of block
	// instants cannot move the first chime frame.
	at := soundT0 + framesToNsRound(atFrame, testRate) - 2
	for _, sp := range []struct {
		name   string
		offset time.Duration // shared minus local
		first  int           // shared frame of its first block
	}{
		{"on the block grid", 7 * time.Second, 0},
		{"blocks shifted", -3 * time.Minute, 137},
		{"starting mid-chime", 42 * time.Hour, atFrame + 20000},
	} {
		t.Run(sp.name, func(t *testing.T) {
			eng := newEngine(testRate, 100, subframe, &memFiles{}, testLogger(t))
			eng.setClock(trusted(clocksync.Model{Offset: int64(sp.offset)}))
			if err := eng.announce(at); err != nil {
				t.Fatal(err)
			}
			frames := atFrame + len(eng.chime) + 2000 - sp.first
			out := fillFrom(eng, sp.offset, sp.first, frames)
			bad := 0
			for i, f := range out {
				g := sp.first + i // shared frame
				want := 0.0
				if j := g - atFrame; j >= 0 && j < len(eng.chime) {
					want = eng.chime[j]
				}
				if f[0] != want || f[1] != want {
					if bad < 5 {
						t.Errorf("shared frame %d: %v, want %v", g, f, want)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d frames wrong", bad, len(out))
			}
			if len(eng.chimes) != 0 {
				t.Errorf("chime still scheduled after it ended: %v", eng.chimes)
			}
		})
	}
}

// TestEngineDucksMusicUnderAChime: the music drops to duckGain while the
// chime sounds, ramping over duckRamp on both sides, and comes back up;
// the chime sounds at the session's volume.
func TestEngineDucksMusicUnderAChime(t *testing.T) {
	const level = 8192 // music: +level on the left, -level on the right
	frames := int64(2 * testRate)
	path := filepath.Join(t.TempDir(), "flat.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = audiogen.WriteWAV(f, testRate, frames, func(int64) audiogen.Frame { return audiogen.Frame{L: level, R: -level} })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	files := &memFiles{}
	files.put("flat", path)
	eng := newEngine(testRate, 100, subframe, files, testLogger(t))
	t.Cleanup(eng.close)
	eng.setClock(trusted(clocksync.Model{}))
	pl := protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{{ID: "e", Song: "flat", Frames: frames, SampleRate: testRate}}}
	eng.setPlaylist(pl)
	eng.addState(protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 50, PlaylistVersion: 1,
		Anchor: protocol.Anchor{AtNs: soundT0, Entry: "e", Playing: true}})
	const atFrame = 13230 // 300 ms in
	at := soundT0 + framesToNsRound(atFrame, testRate) - 2
	if err := eng.announce(at); err != nil {
		t.Fatal(err)
	}
	out := fillFrom(eng, 0, 0, int(frames)-441)

	sessionGain := volumeGain(50)
	music := float64(level) / 32768 * sessionGain
	ramp := int(nsToFramesRound(int64(duckRamp), testRate))
	end := atFrame + len(eng.chime)
	chimeHeard := 0.0
	for i, f := range out {
		gotMusic, gotChime := (f[0]-f[1])/2, (f[0]+f[1])/2
		var want float64
		switch {
		case i <= atFrame-ramp || i >= end+ramp:
			want = music
		case i >= atFrame && i < end:
			want = music * duckGain
		default: // ramping
			if gotMusic < music*duckGain-1e-6 || gotMusic > music+1e-6 {
				t.Fatalf("frame %d (ramp): music %v outside [%v, %v]", i, gotMusic, music*duckGain, music)
			}
			continue
		}
		if math.Abs(gotMusic-want) > 1e-6 {
			t.Fatalf("frame %d: music %v, want %v (chime at %d-%d)", i, gotMusic, want, atFrame, end)
		}
		wantChime := 0.0
		if i >= atFrame && i < end {
			wantChime = eng.chime[i-atFrame] * sessionGain
		}
		if math.Abs(gotChime-wantChime) > 1e-9 {
			t.Fatalf("frame %d: chime %v, want %v", i, gotChime, wantChime)
		}
		chimeHeard = max(chimeHeard, math.Abs(gotChime))
	}
	if chimeHeard < 0.1*sessionGain {
		t.Errorf("chime peak %v: hardly heard", chimeHeard)
	}
}

// TestEngineIdentifyWhileMuted: the identify tone plays from the next
// block even when the speaker plays nothing (no clock yet), and ends.
func TestEngineIdentifyWhileMuted(t *testing.T) {
	eng := newEngine(testRate, 100, subframe, &memFiles{}, testLogger(t))
	eng.identify()
	tone := eng.identifyTone
	if d := time.Duration(framesToNsRound(int64(len(tone)), testRate)); d < 500*time.Millisecond || d > 700*time.Millisecond {
		t.Errorf("identify tone lasts %v, want about 0.6 s", d)
	}
	out := fillFrom(eng, 0, 0, len(tone)+882)
	peak := 0.0
	for i, f := range out {
		want := 0.0
		if i < len(tone) {
			want = tone[i]
		}
		if f[0] != want || f[1] != want {
			t.Fatalf("frame %d: %v, want %v", i, f, want)
		}
		peak = max(peak, math.Abs(f[0]))
	}
	if peak < 0.1 || peak > 0.5 {
		t.Errorf("identify tone peak %v: want a moderate level", peak)
	}
	if st := eng.status(); st.State != buffering {
		t.Errorf("state %q while identifying without a clock, want %q", st.State, buffering)
	}
}

// TestEngineCalibrationShiftsRendering: a calibration c renders each block
// for its instant plus c: the song is c ahead of an uncalibrated speaker's.
func TestEngineCalibrationShiftsRendering(t *testing.T) {
	const shift = 100 // frames
	plain, calibrated := newFixture(t), newFixture(t)
	calibrated.eng.setCalibration(time.Duration(framesToNsRound(shift, testRate)))
	for _, f := range []*engineFixture{plain, calibrated} {
		f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	}
	want := plain.play(plain.t0, 882)
	got := calibrated.play(calibrated.t0, 882)
	compared := 0
	for i := range want {
		if want[i] < 0 || want[i] >= 1000-shift || got[i] < 0 || inFade(i, 0) {
			continue // silence, past song a, or the fade-in of the calibrated speaker's seek
		}
		if got[i] != want[i]+shift {
			t.Fatalf("frame %d: calibrated speaker heard %d, uncalibrated %d: want %d frames ahead", i, got[i], want[i], shift)
		}
		compared++
	}
	if compared < 500 {
		t.Errorf("only %d frames compared", compared)
	}
}

// TestEngineCalibrationChangeWhilePlaying: a new calibration applies at
// once; a change beyond resyncThreshold seeks (with a fade-in) and the song
// plays on shifted by it.
func TestEngineCalibrationChangeWhilePlaying(t *testing.T) {
	const shift = 100 // frames, over 2 ms
	f := newFixture(t)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	checkHeard(t, f.play(f.t0, 441), func(i int) int64 { return int64(i) })
	f.eng.setCalibration(time.Duration(framesToNsRound(shift, testRate)))
	got := f.play(f.t0+framesToNsRound(441, testRate), 441)
	checkHeard(t, got, func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return int64(441 + shift + i)
	})
}
