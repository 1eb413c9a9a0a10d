package controller

import (
	"math"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

func secondsp(s float64) *float64 { return &s }

func TestRepeatCommand(t *testing.T) {
	s := playingAt(newTestSession(t, 10*44100, 20*44100), 0, 0, 0)
	all, c, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdRepeat, Mode: "all"}, nil, nil)
	if err != nil || !c.PlaylistChanged || all.Playlist.Repeat != protocol.RepeatAll || all.Playlist.Version != s.Playlist.Version+1 {
		t.Fatalf("repeat all: %v %+v, repeat %q version %d", err, c, all.Playlist.Repeat, all.Playlist.Version)
	}
	// Re-anchored where the timeline is at the command's instant.
	wantAnchor(t, all, protocol.Anchor{AtNs: sec + int64(lead), Index: 0, PositionNs: sec + int64(lead), Playing: true}, protocol.Playing)
	if all.State.PlaylistVersion != all.Playlist.Version {
		t.Fatalf("state names playlist %d, want %d", all.State.PlaylistVersion, all.Playlist.Version)
	}
	if _, c, _ := apply(2*sec, lead, all, protocol.Request{Cmd: protocol.CmdRepeat, Mode: "all"}, nil, nil); c.PlaylistChanged {
		t.Error("repeat all again changed the playlist")
	}
	for _, bad := range []string{"", "twice", "ALL"} {
		if _, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdRepeat, Mode: bad}, nil, nil); err == nil {
			t.Errorf("repeat mode %q accepted", bad)
		}
	}
	off := mustApply(t, 2*sec, all, protocol.Request{Cmd: protocol.CmdRepeat, Mode: "off"}, nil)
	if off.Playlist.Repeat != protocol.RepeatOff {
		t.Errorf("repeat off: mode %q", off.Playlist.Repeat)
	}
}

// TestAutoAdvanceRepeats: auto-advance wraps to the first entry under
// repeat all, and plays the same entry again under repeat one.
func TestAutoAdvanceRepeats(t *testing.T) {
	s := playingAt(newTestSession(t, 10*44100, 20*44100), 0, 1, 0)
	end := s.Playlist.Entries[1].DurationNs()

	s.Playlist.Repeat = protocol.RepeatAll
	wrapped, changed := advance(s, end)
	if !changed {
		t.Fatal("repeat all: no advance at the last entry's end")
	}
	wantAnchor(t, wrapped, protocol.Anchor{AtNs: end, Index: 0, Playing: true}, protocol.Playing)

	s.Playlist.Repeat = protocol.RepeatOne
	again, _ := advance(s, 3*end+sec)
	wantAnchor(t, again, protocol.Anchor{AtNs: 3 * end, Index: 1, Playing: true}, protocol.Playing)

	// Next moves on under repeat one, and wraps after the last entry.
	next := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdNext}, nil)
	wantAnchor(t, next, protocol.Anchor{AtNs: sec + int64(lead), Index: 0, Playing: true}, protocol.Playing)
	s.Playlist.Repeat = protocol.RepeatOff
	stop := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdNext}, nil)
	wantAnchor(t, stop, protocol.Anchor{AtNs: sec + int64(lead), Index: 0}, protocol.Stopped)
}

func TestCrossfadeCommand(t *testing.T) {
	s := playingAt(newTestSession(t, 10*44100, 20*44100), 0, 0, 0)
	faded, c, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdFade, Seconds: secondsp(2.5)}, nil, nil)
	if err != nil || !c.PlaylistChanged || faded.Playlist.CrossfadeMs != 2500 {
		t.Fatalf("crossfade 2.5: %v %+v, %d ms", err, c, faded.Playlist.CrossfadeMs)
	}
	for _, bad := range []float64{-1, 12.001, math.NaN(), math.Inf(1)} {
		if _, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdFade, Seconds: secondsp(bad)}, nil, nil); err == nil {
			t.Errorf("crossfade %v accepted", bad)
		}
	}
	if _, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdFade, Seconds: secondsp(12)}, nil, nil); err != nil {
		t.Errorf("crossfade 12: %v", err)
	}
}

// TestAutoAdvanceCrossfades: with a crossfade, the second entry starts that
// much before the first ends; the controller re-anchors when the first ends
// (its tail has played out), at the position the second has reached, so
// the timeline is the same before and after.
func TestAutoAdvanceCrossfades(t *testing.T) {
	s := playingAt(newTestSession(t, 10*44100, 20*44100), 0, 0, 0)
	s = mustApply(t, 0, s, protocol.Request{Cmd: protocol.CmdFade, Seconds: secondsp(3)}, nil)
	at := s.State.Anchor.AtNs
	d0 := s.Playlist.Entries[0].DurationNs()

	// 8 s in: the first still fades out; the second is current, 1 s in.
	if idx, pos, _ := s.cursor(at + 8*sec); idx != 0 || pos != 8*sec+int64(lead) {
		t.Errorf("cursor at 8 s: (%d, %d), want entry 0", idx, pos)
	}
	if idx, pos, _ := s.current(at + 8*sec - int64(lead)); idx != 1 || pos != 1*sec {
		t.Errorf("current at 8 s: (%d, %d), want entry 1 at 1 s", idx, pos)
	}
	end := at + d0 - int64(lead)
	next, changed := advance(s, end)
	if !changed {
		t.Fatal("no advance when the first entry ended")
	}
	wantAnchor(t, next, protocol.Anchor{AtNs: end, Index: 1, PositionNs: 3 * sec, Playing: true}, protocol.Playing)
	for _, probe := range []int64{end, end + 5*sec} {
		i1, p1, _ := s.cursor(probe)
		i2, p2, _ := next.cursor(probe)
		if i1 != i2 || p1 != p2 {
			t.Fatalf("at %d: old (%d, %d) new (%d, %d)", probe, i1, p1, i2, p2)
		}
	}

	// Next during the fade cuts to the entry after the one fading in (here,
	// with repeat off, the end); pause keeps both, to resume the fade.
	during := at + 8*sec
	if cut := mustApply(t, during, s, protocol.Request{Cmd: protocol.CmdNext}, nil); cut.State.State != protocol.Stopped {
		t.Errorf("next during the last fade: %s, want stopped", cut.State.State)
	}
	paused := mustApply(t, during, s, protocol.Request{Cmd: protocol.CmdPause}, nil)
	wantAnchor(t, paused, protocol.Anchor{AtNs: during + int64(lead), Index: 0, PositionNs: during + 2*int64(lead) - at}, protocol.Paused)
}

// TestAutoAdvanceShortSongsOnRepeat: a 10 ms song on repeat one is
// re-anchored at most once a second, not at each of its loops, and a
// controller that comes back after an hour re-anchors where the timeline
// is then after a bounded number of steps; the timeline stays the same.
func TestAutoAdvanceShortSongsOnRepeat(t *testing.T) {
	s := playingAt(newTestSession(t, 441), 0, 0, 0)
	s.Playlist.Repeat = protocol.RepeatOne
	if end, _ := s.entryEnd(); end != sec {
		t.Fatalf("next auto-advance at %d, want after a second", end)
	}
	if _, changed := advance(s, sec-1); changed {
		t.Fatal("advanced within the first second")
	}
	hour := 3600 * sec
	later, changed := advance(s, hour+7*int64(time.Millisecond))
	if !changed || later.State.Anchor.AtNs != hour+7*int64(time.Millisecond) {
		t.Fatalf("after an hour: anchor %+v, want one at that instant", later.State.Anchor)
	}
	for _, probe := range []int64{hour + 7*int64(time.Millisecond), hour + sec + 3*int64(time.Millisecond)} {
		i1, p1, st1 := s.cursor(probe)
		i2, p2, st2 := later.cursor(probe)
		if i1 != i2 || p1 != p2 || st1 != st2 {
			t.Fatalf("at %d: old (%d, %d, %s) new (%d, %d, %s)", probe, i1, p1, st1, i2, p2, st2)
		}
	}
}
