package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// squareFLAC writes seconds of a 110 Hz square wave of amplitude amp (full
// scale 1) as a FLAC with ReplayGain tags; every spikeEvery frames (0:
// never) one frame is a spike of 0.5 instead. Its samples are ±level.
func squareFLAC(t *testing.T, dir, name string, seconds int, amp float64, spikeEvery int64, tags ...string) (path string, level int16) {
	t.Helper()
	level = int16(math.Round(amp * 32767))
	var b bytes.Buffer
	err := audiogen.WriteWAV(&b, rate, int64(seconds*rate), func(i int64) audiogen.Frame {
		v := level
		if (i/200)%2 == 1 {
			v = -level
		}
		if spikeEvery > 0 && i%spikeEvery == spikeEvery/2 {
			v = 16384
		}
		return audiogen.Frame{L: v, R: v}
	})
	if err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(dir, name+".wav")
	if err := os.WriteFile(wav, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name+".flac")
	for _, cmd := range [][]string{
		{"flac", "--silent", "-o", path, wav},
		append([]string{"metaflac"}, append(tags, path)...),
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", strings.Join(cmd, " "), err, out)
		}
	}
	return path, level
}

// levels counts each absolute sample value of the left channel in a
// speaker's PCM output (s16le stereo).
func levels(t *testing.T, path string) (count map[int]int, peak int) {
	t.Helper()
	pcm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	count = map[int]int{}
	for i := 0; i+4 <= len(pcm); i += 4 {
		l := int(int16(binary.LittleEndian.Uint16(pcm[i:])))
		r := int(int16(binary.LittleEndian.Uint16(pcm[i+2:])))
		if l != r {
			t.Fatalf("%s: frame %d: left %d, right %d; the songs are the same on both", path, i/4, l, r)
		}
		a := max(l, -l)
		count[a]++
		peak = max(peak, a)
	}
	return count, peak
}

// TestReplayGainAtTheOutputs plays, in ReplayGain track mode, a song whose
// tags say -6 dB and a quiet one with spikes that a gain pushes past full
// scale, on three speakers whose outputs are recorded sample by sample:
// the first comes out 6 dB lower, the second louder by its gain with no
// sample clipped, and every speaker's output is the same.
func TestReplayGainAtTheOutputs(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	speakers := []string{"s1", "s2", "s3"}
	for _, name := range speakers {
		s.startSpeaker(name, "--output", "pipe", "--pipe", filepath.Join(s.dir, name+".pcm"), "--bit-exact")
	}
	const seconds = 4
	dir := t.TempDir()
	// The tags match what the controller measures of these files when it
	// reads none: the test holds with either.
	minus6, loudLevel := squareFLAC(t, dir, "minus6", seconds, 0.2042, 0,
		"--set-tag=REPLAYGAIN_TRACK_GAIN=-6.00 dB", "--set-tag=REPLAYGAIN_TRACK_PEAK=0.204200")
	plus, quietLevel := squareFLAC(t, dir, "plus", seconds, 0.02, rate/2,
		"--set-tag=REPLAYGAIN_TRACK_GAIN=+12.00 dB")
	s.load(minus6, plus)
	r := newRemote(t, s.brokerPort)
	var shas []string
	for _, path := range []string{minus6, plus} {
		sha, _, err := hashOf(path)
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, sha)
		if rep := r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha)); !rep.OK {
			t.Fatalf("enqueue: %s", rep.Error)
		}
	}
	if rep := r.cmd(`"cmd":"replaygain","mode":"track"`); !rep.OK {
		t.Fatalf("replaygain: %s", rep.Error)
	}
	var pl protocol.Playlist
	testwait.For(t, "the playlist in track mode", 10*time.Second, func() bool {
		pl = protocol.Playlist{}
		return json.Unmarshal(r.retained(protocol.PlaylistTopic(protocol.DefaultSession)), &pl) == nil &&
			pl.ReplayGain == protocol.GainTrack && len(pl.Entries) == 2
	})
	gains := []float64{pl.Entries[0].GainDb, pl.Entries[1].GainDb}
	t.Logf("entry gains %v dB", gains)
	if math.Abs(gains[0]+6) > 0.2 || gains[1] <= 3 {
		t.Fatalf("entry gains %v dB, want about -6 and well above 0", gains)
	}
	testwait.For(t, "the speakers to cache both songs", 20*time.Second, func() bool {
		for _, name := range speakers {
			if !cached(s, name, shas[0]) || !cached(s, name, shas[1]) {
				return false
			}
		}
		return true
	})
	stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(2*seconds*time.Second + time.Second) // both songs, to the end
	for _, name := range speakers {
		s.speakers[name].stop(syscallTERM)
	}

	// Each song's square wave comes out at its level times its gain (to
	// the rounding of a 16-bit sample), for at least most of its length.
	want := []int{
		int(math.Round(float64(loudLevel) * math.Pow(10, gains[0]/20))),
		int(math.Round(float64(quietLevel) * math.Pow(10, gains[1]/20))),
	}
	var first []int
	firstPeak := 0
	for _, name := range speakers {
		count, peak := levels(t, filepath.Join(s.dir, name+".pcm"))
		for i, w := range want {
			if n := count[w]; n < seconds*rate/2 {
				t.Errorf("%s: song %d: %d frames at %d (its %d times %.2f dB), want %d", name, i+1, n, w, []int16{loudLevel, quietLevel}[i], gains[i], seconds*rate/2)
			}
		}
		heard := 20 * math.Log10(float64(want[0])/float64(loudLevel))
		t.Logf("%s: the -6 dB song heard %.2f dB from its file; peak %d (%.2f dBFS)", name, heard, peak, 20*math.Log10(float64(peak)/32768))
		// The spikes: 0.5 of full scale times the gain would clip; the
		// controller's peak cap or the limiter holds them under it.
		if peak >= 32767 || peak < int(0.5*32768) {
			t.Errorf("%s: peak %d: clipped, or the spikes were not heard", name, peak)
		}
		// What each speaker played: the levels it held for 10 ms or more
		// (a resync under load may skip or repeat a few frames, and fades
		// in; the levels stay), and its peak.
		var held []int
		for v, n := range count {
			if n >= rate/100 {
				held = append(held, v)
			}
		}
		slices.Sort(held)
		if first == nil {
			first, firstPeak = held, peak
			continue
		}
		if peak != firstPeak || !slices.Equal(held, first) {
			t.Errorf("%s: levels %v, peak %d; %s: levels %v, peak %d", name, held, peak, speakers[0], first, firstPeak)
		}
	}
}
