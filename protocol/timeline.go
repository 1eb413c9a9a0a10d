package protocol

// Timeline is how a playlist's entries follow one another on the shared
// clock. The controller, the speakers and the CLI all walk it with these
// functions, so they agree to the nanosecond on which entry is heard when.
//
// Entries play in order; after the last one the playlist ends (RepeatOff),
// starts again from the first (RepeatAll), and under RepeatOne an entry
// follows itself. Missing entries last 0 and are skipped. With a crossfade,
// the next entry starts FadeNs before the current one ends, and for that
// overlap both are heard.
type Timeline struct {
	Entries     []Entry
	Repeat      string
	CrossfadeNs int64
}

// Timeline is how the playlist's entries follow one another.
func (p Playlist) Timeline() Timeline {
	return Timeline{Entries: p.Entries, Repeat: p.Repeat, CrossfadeNs: p.CrossfadeMs * 1e6}
}

// Next is the entry that plays after entry i: -1 when the playlist ends
// with it. A missing entry under RepeatOne is skipped as under RepeatAll.
func (t Timeline) Next(i int) int {
	n := len(t.Entries)
	if i < 0 || i >= n {
		return -1
	}
	if t.Repeat == RepeatOne && t.Entries[i].DurationNs() > 0 {
		return i
	}
	for k := 1; k <= n; k++ {
		j := i + k
		if j >= n {
			if t.Repeat != RepeatAll && t.Repeat != RepeatOne {
				return -1 // off, or a mode this version does not know
			}
			j -= n
		}
		if t.Entries[j].DurationNs() > 0 {
			return j
		}
	}
	return -1
}

// FadeNs is how long entry i and the entry after it overlap: the crossfade,
// but at most half of either entry, so that an entry's fade-in and fade-out
// never overlap and at most two entries are heard at once. An entry that
// follows itself (RepeatOne, or RepeatAll of one entry) loops gapless.
func (t Timeline) FadeNs(i int) int64 {
	j := t.Next(i)
	if t.CrossfadeNs <= 0 || j < 0 || j == i {
		return 0
	}
	return min(t.CrossfadeNs, t.Entries[i].DurationNs()/2, t.Entries[j].DurationNs()/2)
}

// Locate walks a playing timeline: from entry i heard at position pos (ns
// since i started; pos >= 0), it returns the oldest entry still heard and
// its position, or ok false when the playlist has ended. An anchor names
// such an oldest entry, so a timeline re-anchored where Locate says plays
// on exactly as before, through a crossfade too.
func (t Timeline) Locate(i int, pos int64) (idx int, at int64, ok bool) {
	if i < 0 || i >= len(t.Entries) {
		return -1, 0, false
	}
	lapFrom, lapPos, lapped := -1, int64(0), false
	for {
		d := t.Entries[i].DurationNs()
		if pos < d {
			return i, pos, true
		}
		j := t.Next(i)
		if j < 0 {
			return -1, 0, false
		}
		if d > 0 && !lapped {
			// A repeating timeline comes back to where it was one lap
			// later: skip whole laps, so a position days ahead costs no
			// more than three laps of walking.
			switch {
			case lapFrom < 0:
				lapFrom, lapPos = i, pos
			case i == lapFrom:
				lapped = true
				// From any position past two laps, a lap leads back to
				// the same entry one lap shorter (an entry ends at most
				// one lap after it starts), so whole laps drop out.
				if lap := lapPos - pos; pos/lap > 2 {
					pos -= (pos/lap - 2) * lap
				}
			}
		}
		pos -= d - t.FadeNs(i)
		i = j
	}
}

// Incoming is the entry fading in while entry i is heard at pos (during
// the last FadeNs(i) of i): its index and position, and the fade's length.
// ok is false outside a crossfade.
func (t Timeline) Incoming(i int, pos int64) (j int, at, fade int64, ok bool) {
	fade = t.FadeNs(i)
	start := t.Entries[i].DurationNs() - fade
	if fade == 0 || pos < start {
		return -1, 0, 0, false
	}
	return t.Next(i), pos - start, fade, true
}

// Current is the entry a person would call current at entry i, position
// pos (as Locate returns them): the one fading in during a crossfade, else
// i itself.
func (t Timeline) Current(i int, pos int64) (idx int, at int64) {
	if j, at, _, ok := t.Incoming(i, pos); ok {
		return j, at
	}
	return i, pos
}
