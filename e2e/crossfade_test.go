package e2e

import (
	"bytes"
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

// The crossfade songs hold one constant level each, in one channel: song A
// in the right, song B in the left. Through a fade the two channels are the
// two curves, cos and sin of where in the fade a frame is, so the left
// sample a speaker's device logged for a block's first frame (unrounded)
// tells which frame of the fade it was, and when it was heard tells how far
// from the timeline that speaker played.
const (
	xfLevel   = 16000.0 // each song's constant sample
	xfSeconds = 6       // each song
	xfFade    = 2       // the crossfade, s
)

func constantSong(t *testing.T, name string, f audiogen.Frame) (path, sha string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	if err := audiogen.WriteWAV(&buf, rate, xfSeconds*rate, func(int64) audiogen.Frame { return f }); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sha, _, err := hashOf(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sha
}

// tutti runs a tutti client command against the system's broker.
func (s *system) tutti(args ...string) string {
	s.t.Helper()
	args = slices.Insert(args, 1, "--broker", s.brokerURL())
	out, err := exec.Command(tuttiBin, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tutti %s: %v %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCrossfadeInSync plays song A then song B with a 2 s crossfade under
// repeat all on three speakers: through both fades (A into B, and B into A
// again, where the playlist wraps) every speaker's curves are where the
// timeline puts them, within the skew bar of it and of each other; after
// the wrap, A plays alone again.
func TestCrossfadeInSync(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	names := []string{"s1", "s2", "s3"}
	for _, n := range names {
		s.startSpeaker(n)
	}
	pathA, shaA := constantSong(t, "a.wav", audiogen.Frame{R: xfLevel})
	pathB, shaB := constantSong(t, "b.wav", audiogen.Frame{L: xfLevel})
	s.load(pathA, pathB)
	r := newRemote(t, s.brokerPort)
	for _, sha := range []string{shaA, shaB} {
		if rep := r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha)); !rep.OK {
			t.Fatalf("enqueue: %s", rep.Error)
		}
	}
	s.tutti("crossfade", fmt.Sprint(xfFade))
	s.tutti("repeat", "all")
	if status := s.tutti("status"); !strings.Contains(status, "repeat all, shuffle off, crossfade 2 s") {
		t.Errorf("status does not show the play modes:\n%s", status)
	}
	testwait.For(t, "speakers to fetch both songs", 20*time.Second, func() bool {
		for _, n := range names {
			if !cached(s, n, shaA) || !cached(s, n, shaB) {
				return false
			}
		}
		return true
	})
	play := stateOf(t, r.cmd(`"cmd":"play","index":0`))
	t0 := play.Anchor.AtNs
	const fadeFrames = xfFade * rate
	step := int64(xfSeconds*rate - fadeFrames) // frames from one song's start to the next's
	wrapEnd := t0 + protocol.FramesToNs(2*step+fadeFrames, rate)
	testwait.For(t, "the playlist to wrap and A to play alone again", 30*time.Second, func() bool {
		return time.Now().UnixNano() > wrapEnd+int64(1500*time.Millisecond)
	})
	for _, n := range names {
		s.speakers[n].stop(syscallTERM)
	}

	// Where each speaker's blocks fell against the timeline, through each fade.
	fades := []struct {
		what  string
		start int64                    // output frame where the fade begins
		x     func(lx float64) float64 // the fade's angle a block's left sample says
	}{
		{"A into B", step, func(lx float64) float64 { return math.Asin(lx / xfLevel) }},
		{"B into A, the wrap", 2 * step, func(lx float64) float64 { return math.Acos(lx / xfLevel) }},
	}
	for _, fade := range fades {
		offsets := map[string][]int64{}
		for _, n := range names {
			for _, l := range readLines(t, s.logs[n]) {
				if l.Underrun || l.Sound == 0 {
					continue
				}
				x := fade.x(l.LX)
				from, to := fade.start*1e9/rate, (fade.start+fadeFrames)*1e9/rate
				if at := l.TNs - t0; at < from || at > to || math.IsNaN(x) || x < 0.15*math.Pi/2 || x > 0.85*math.Pi/2 {
					continue // outside the fade, or where a curve is too flat to read
				}
				frame := float64(fade.start) + x*2*fadeFrames/math.Pi - 0.5
				offsets[n] = append(offsets[n], l.TNs-t0-int64(math.Round(frame*1e9/rate)))
			}
		}
		var medians []int64
		for _, n := range names {
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

	// After the wrap, A alone: right channel at its level, left silent.
	for _, n := range names {
		alone := 0
		for _, l := range readLines(t, s.logs[n]) {
			if l.TNs > wrapEnd+int64(200*time.Millisecond) && l.TNs < wrapEnd+int64(time.Second) && l.R == xfLevel && l.L == 0 {
				alone++
			}
		}
		if alone < 30 {
			t.Errorf("%s: %d blocks of A alone after the wrap, want 0.8 s of them", n, alone)
		}
	}
}
