package protocol

import "testing"

// ms is a position in ms, in ns.
func ms(n int64) int64 { return n * 1e6 }

// timelineEntries are a (10 s), b (4 s), c (missing) and d (6 s), at a
// rate of 1000 frames a second so that a frame is a millisecond.
func timelineEntries() []Entry {
	return []Entry{
		{ID: "a", Frames: 10000, SampleRate: 1000},
		{ID: "b", Frames: 4000, SampleRate: 1000},
		{ID: "c", Frames: 8000, SampleRate: 1000, Missing: true},
		{ID: "d", Frames: 6000, SampleRate: 1000},
	}
}

func TestTimelineNextAndFade(t *testing.T) {
	cases := []struct {
		name      string
		repeat    string
		fadeMs    int64
		next      []int // Next(i) for each entry
		fadeNsOut []int64
	}{
		{"off gapless", RepeatOff, 0, []int{1, 3, 3, -1}, []int64{0, 0, 0, 0}},
		{"all gapless", RepeatAll, 0, []int{1, 3, 3, 0}, []int64{0, 0, 0, 0}},
		{"one", RepeatOne, 3000, []int{0, 1, 3, 3}, []int64{0, 0, 0, 0}},
		// b is 4 s: its fades are at most 2 s; the missing c fades with nothing.
		{"off crossfade 3 s", RepeatOff, 3000, []int{1, 3, 3, -1}, []int64{ms(2000), ms(2000), 0, 0}},
		{"all crossfade 3 s", RepeatAll, 3000, []int{1, 3, 3, 0}, []int64{ms(2000), ms(2000), 0, ms(3000)}},
		{"all crossfade 1 s", RepeatAll, 1000, []int{1, 3, 3, 0}, []int64{ms(1000), ms(1000), 0, ms(1000)}},
		{"a mode unknown here plays as off", "twice", 0, []int{1, 3, 3, -1}, []int64{0, 0, 0, 0}},
	}
	for _, c := range cases {
		tl := Timeline{Entries: timelineEntries(), Repeat: c.repeat, CrossfadeNs: ms(c.fadeMs)}
		for i := range tl.Entries {
			if got := tl.Next(i); got != c.next[i] {
				t.Errorf("%s: Next(%d) = %d, want %d", c.name, i, got, c.next[i])
			}
			if got := tl.FadeNs(i); got != c.fadeNsOut[i] {
				t.Errorf("%s: FadeNs(%d) = %d, want %d", c.name, i, got, c.fadeNsOut[i])
			}
		}
	}
}

func TestTimelineLocate(t *testing.T) {
	type place struct {
		idx int
		at  int64
		ok  bool
	}
	cases := []struct {
		name   string
		repeat string
		fadeMs int64
		from   int
		pos    int64
		want   place
	}{
		{"off, within a", RepeatOff, 0, 0, ms(9999), place{0, ms(9999), true}},
		{"off, into b", RepeatOff, 0, 0, ms(10000), place{1, 0, true}},
		{"off, missing c skipped", RepeatOff, 0, 0, ms(14500), place{3, ms(500), true}},
		{"off, ends after d", RepeatOff, 0, 0, ms(20000), place{-1, 0, false}},
		{"off, from the missing c", RepeatOff, 0, 2, ms(1), place{3, ms(1), true}},
		{"all, wraps to a", RepeatAll, 0, 3, ms(6000), place{0, 0, true}},
		{"all, one lap on", RepeatAll, 0, 0, ms(20000 + 10500), place{1, ms(500), true}},
		{"all, a thousand laps on", RepeatAll, 0, 1, ms(1000*20000 + 4100), place{3, ms(100), true}},
		{"one, again and again", RepeatOne, 0, 1, ms(3*4000 + 250), place{1, ms(250), true}},
		{"one, from the missing c", RepeatOne, 0, 2, ms(7000), place{3, ms(1000), true}},
		// With a 3 s crossfade a's last 2 s overlap b's first 2 s (b is
		// short): a is still the oldest heard until it ends.
		{"crossfade, a fading out", RepeatOff, 3000, 0, ms(9000), place{0, ms(9000), true}},
		{"crossfade, a ended, b at 2 s", RepeatOff, 3000, 0, ms(10000), place{1, ms(2000), true}},
		// b started at 8 s and ends at 12 s; d began at 10 s, 2 s ago.
		{"crossfade, d after b", RepeatOff, 3000, 0, ms(12000), place{3, ms(2000), true}},
		{"crossfade, off ends after d", RepeatOff, 3000, 0, ms(16000), place{-1, 0, false}},
		// Laps of a(10-2) + b(4-2) + d(6-3) = 13 s under repeat all.
		{"crossfade, all wraps with a fade", RepeatAll, 3000, 3, ms(3500), place{3, ms(3500), true}},
		{"crossfade, all after d", RepeatAll, 3000, 3, ms(6000), place{0, ms(3000), true}},
		{"crossfade, all many laps", RepeatAll, 3000, 0, ms(500*13000 + 9000), place{0, ms(9000), true}},
	}
	for _, c := range cases {
		tl := Timeline{Entries: timelineEntries(), Repeat: c.repeat, CrossfadeNs: ms(c.fadeMs)}
		idx, at, ok := tl.Locate(c.from, c.pos)
		if got := (place{idx, at, ok}); got != c.want {
			t.Errorf("%s: Locate(%d, %d ms) = %v, want %v", c.name, c.from, c.pos/1e6, got, c.want)
		}
	}
}

// TestTimelineLocateLapsMatchWalking: skipping whole laps lands where
// walking entry by entry does.
func TestTimelineLocateLapsMatchWalking(t *testing.T) {
	for _, fadeMs := range []int64{0, 1000, 3000, 12000} {
		tl := Timeline{Entries: timelineEntries(), Repeat: RepeatAll, CrossfadeNs: ms(fadeMs)}
		i, pos := 0, int64(0) // where 977 ms steps from a's start led
		for step := int64(1); step <= 200; step++ {
			var ok bool
			if i, pos, ok = tl.Locate(i, pos+ms(977)); !ok {
				t.Fatal("a repeating timeline ended")
			}
			if idx, at, _ := tl.Locate(0, step*ms(977)); idx != i || at != pos {
				t.Fatalf("crossfade %d ms, %d ms in: Locate gives (%d, %d), steps give (%d, %d)", fadeMs, step*977, idx, at, i, pos)
			}
		}
	}
}

func TestTimelineIncomingAndCurrent(t *testing.T) {
	tl := Timeline{Entries: timelineEntries(), Repeat: RepeatAll, CrossfadeNs: ms(3000)}
	if _, _, _, ok := tl.Incoming(0, ms(7999)); ok {
		t.Error("a at 7.999 s: an entry fading in, want none before a's last 2 s")
	}
	j, at, fade, ok := tl.Incoming(0, ms(8500))
	if !ok || j != 1 || at != ms(500) || fade != ms(2000) {
		t.Errorf("a at 8.5 s: Incoming = (%d, %d, %d, %v), want b at 500 ms of a 2 s fade", j, at, fade, ok)
	}
	if idx, at := tl.Current(3, ms(4000)); idx != 0 || at != ms(1000) {
		t.Errorf("d at 4 s: Current = (%d, %d), want a at 1 s (the wrap fades in)", idx, at)
	}
	if idx, at := tl.Current(3, ms(1000)); idx != 3 || at != ms(1000) {
		t.Errorf("d at 1 s: Current = (%d, %d), want d itself", idx, at)
	}
	gapless := Timeline{Entries: timelineEntries()}
	if _, _, _, ok := gapless.Incoming(0, ms(9999)); ok {
		t.Error("gapless: an entry fading in")
	}
}

func FuzzTimelineLocate(f *testing.F) {
	f.Add(int64(3000), uint8(1), 0, int64(123456789))
	f.Add(int64(0), uint8(2), 3, int64(1e15))
	f.Fuzz(func(t *testing.T, fadeMs int64, repeat uint8, from int, pos int64) {
		tl := Timeline{Entries: timelineEntries(), Repeat: []string{RepeatOff, RepeatAll, RepeatOne}[repeat%3], CrossfadeNs: ms(min(max(fadeMs, 0), MaxCrossfadeMs))}
		idx, at, ok := tl.Locate(from, max(pos, 0))
		if !ok {
			return
		}
		if idx < 0 || idx >= len(tl.Entries) || at < 0 || at >= tl.Entries[idx].DurationNs() {
			t.Errorf("Locate(%d, %d) = (%d, %d): not a place within an entry", from, pos, idx, at)
		}
	})
}
