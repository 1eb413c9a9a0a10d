package cli

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// TestSkewMeter feeds the meter the log lines of two speakers playing a
// demo tune, one of them late by 0.5 ms, and reads the skew back.
func TestSkewMeter(t *testing.T) {
	const rate = 44100
	tune := audiogen.Tune(2, rate)
	m := newSkewMeter(rate)
	m.addSong("sha1", tune)
	t0 := time.Now().UnixNano()
	m.setTimeline(
		protocol.SessionState{V: 1, State: protocol.Playing, Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}},
		protocol.Playlist{V: 1, Entries: []protocol.Entry{{ID: "e1", Song: "sha1", Frames: 30 * rate, SampleRate: rate}}})
	if _, n := m.skew(); n != 0 {
		t.Fatalf("skew measured with no blocks: %d speakers", n)
	}
	late := int64(500 * time.Microsecond)
	for block := int64(0); block < 20; block++ {
		frame := 44100 + block*441
		heard := t0 + protocol.FramesToNs(frame, rate)
		for name, delay := range map[string]int64{"a": 0, "b": late} {
			f := tune(frame)
			line := fmt.Sprintf(`{"t_ns":%d,"frames":441,"l":%d,"r":%d,"n_sound":441}`, heard+delay, f.L, f.R)
			m.logFor(name).Write([]byte(line))
		}
	}
	skew, n := m.skew()
	if n != 2 || math.Abs(float64(skew-time.Duration(late))) > float64(50*time.Microsecond) {
		t.Errorf("skew %v over %d speakers, want %v over 2", skew, n, time.Duration(late))
	}
}

// TestSkewMeterBetweenFrames: a speaker steering its speed plays between
// frames; its log's unrounded sample still places it, to the sub-frame.
func TestSkewMeterBetweenFrames(t *testing.T) {
	const rate = 44100
	tune := audiogen.Tune(2, rate)
	m := newSkewMeter(rate)
	m.addSong("sha1", tune)
	t0 := time.Now().UnixNano()
	m.setTimeline(
		protocol.SessionState{V: 1, State: protocol.Playing, Anchor: protocol.Anchor{AtNs: t0, Index: 0, Entry: "e1", Playing: true}},
		protocol.Playlist{V: 1, Entries: []protocol.Entry{{ID: "e1", Song: "sha1", Frames: 30 * rate, SampleRate: rate}}})
	const frac = 0.4 // "b" plays 0.4 frame ahead of "a": heard 9.07 µs earlier
	for block := int64(0); block < 20; block++ {
		frame := 44100 + block*441
		heard := t0 + protocol.FramesToNs(frame, rate)
		a, next := tune(frame), tune(frame+1)
		lx := float64(a.L) + frac*float64(next.L-a.L)
		r := math.Round(float64(a.R) + frac*float64(next.R-a.R))
		m.logFor("a").Write([]byte(fmt.Sprintf(`{"t_ns":%d,"frames":441,"l":%d,"r":%d,"n_sound":441}`, heard, a.L, a.R)))
		m.logFor("b").Write([]byte(fmt.Sprintf(`{"t_ns":%d,"frames":441,"l":%d,"r":%d,"n_sound":441,"lx":%f,"rate":%d}`,
			heard, int(math.Round(lx)), int(r), lx, rate)))
	}
	skew, n := m.skew()
	want := time.Duration(math.Round(frac * 1e9 / rate))
	if n != 2 || math.Abs(float64(skew-want)) > float64(2*time.Microsecond) {
		t.Errorf("skew %v over %d speakers, want %v over 2", skew, n, want)
	}
}
