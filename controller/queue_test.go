package controller

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// entryIDs lists a playlist's entry ids in order.
func entryIDs(s session) []string {
	ids := make([]string, len(s.Playlist.Entries))
	for i, e := range s.Playlist.Entries {
		ids[i] = e.ID
	}
	return ids
}

// album is n songs of a second each, numbered from first.
func album(first, n int) []protocol.Song {
	songs := make([]protocol.Song, n)
	for i := range songs {
		songs[i] = *testSong(first+i, 44100)
	}
	return songs
}

// samePlace fails unless a and b play the same entry at the same position
// at every shared instant of probes.
func samePlace(t *testing.T, a, b session, probes ...int64) {
	t.Helper()
	for _, at := range probes {
		ai, ap, as := a.cursor(at)
		bi, bp, bs := b.cursor(at)
		ae, be := "", ""
		if ai >= 0 {
			ae = a.Playlist.Entries[ai].ID
		}
		if bi >= 0 {
			be = b.Playlist.Entries[bi].ID
		}
		if ae != be || ap != bp || as != bs {
			t.Fatalf("at %d: before %s at %d %s, after %s at %d %s", at, ae, ap, as, be, bp, bs)
		}
	}
}

func TestEnqueueAt(t *testing.T) {
	// Three 10 s entries, the second playing 2 s in from t=0.
	base := playingAt(newTestSession(t, 10*44100, 10*44100, 10*44100), 0, 1, 2*sec)
	now := 3 * sec
	req := func(at string) protocol.Request { return protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x", At: at} }

	// An album goes in with one version and one seq more, in its order.
	next, c, err := apply(now, lead, base, req(protocol.EnqueueNext), album(10, 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.Playlist.Version != base.Playlist.Version+1 || next.State.Seq != base.State.Seq+1 || c.AtNs != 0 {
		t.Fatalf("versions %d/%d, change %+v", next.Playlist.Version, next.State.Seq, c)
	}
	want := []string{"e1", "e2", "e4", "e5", "e6", "e3"}
	if got := entryIDs(next); !slices.Equal(got, want) || next.Playlist.Entries[2].Song != album(10, 1)[0].SHA256 {
		t.Fatalf("next: entries %v, want %v", got, want)
	}
	samePlace(t, base, next, now, now+4*sec) // the entry that plays goes on

	end, _, err := apply(now, lead, base, req(protocol.EnqueueEnd), album(10, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(end); !slices.Equal(got, []string{"e1", "e2", "e3", "e4", "e5"}) {
		t.Fatalf("end: %v", got)
	}
	samePlace(t, base, end, now, now+4*sec)

	// Now: the new songs go before the current entry, and the first plays
	// from the scheduled instant; the interrupted entry follows them.
	played, c, err := apply(now, lead, base, req(protocol.EnqueueNow), album(10, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AtNs != now+int64(lead) || c.Entry != "e4" {
		t.Fatalf("now: change %+v", c)
	}
	if got := entryIDs(played); !slices.Equal(got, []string{"e1", "e4", "e5", "e2", "e3"}) {
		t.Fatalf("now: %v", got)
	}
	wantAnchor(t, played, protocol.Anchor{AtNs: now + int64(lead), Index: 1, Playing: true}, protocol.Playing)

	// Now on an empty or stopped playlist plays at once too.
	empty := newTestSession(t)
	started, _, err := apply(now, lead, empty, req(protocol.EnqueueNow), album(10, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantAnchor(t, started, protocol.Anchor{AtNs: now + int64(lead), Index: 0, Playing: true}, protocol.Playing)
	first, _, err := apply(now, lead, empty, req(protocol.EnqueueNext), album(10, 2), nil)
	if err != nil || !slices.Equal(entryIDs(first), []string{"e1", "e2"}) {
		t.Fatalf("next on an empty playlist: %v %v", entryIDs(first), err)
	}
	wantAnchor(t, first, protocol.Anchor{AtNs: now, Index: 0}, protocol.Stopped)

	// Songs whose file has gone are left out; with none left, nothing changes.
	songs := album(10, 3)
	songs[1].Missing = true
	skipped, _, err := apply(now, lead, base, req(""), songs, nil)
	if err != nil || len(skipped.Playlist.Entries) != 5 || skipped.Playlist.Entries[4].Song != songs[2].SHA256 {
		t.Fatalf("missing song: %v %v", entryIDs(skipped), err)
	}
	songs[0].Missing, songs[2].Missing = true, true
	if got, _, err := apply(now, lead, base, req(""), songs, nil); err == nil || got.Playlist.Version != base.Playlist.Version {
		t.Fatalf("only missing songs: %v", err)
	}

	for _, bad := range []protocol.Request{
		{Cmd: protocol.CmdEnqueue, Song: "x", At: "later"},
		{Cmd: protocol.CmdEnqueue, Song: "x", At: protocol.EnqueueNext, Index: intp(0)},
	} {
		if got, _, err := apply(now, lead, base, bad, album(10, 1), nil); err == nil || got.Playlist.Version != base.Playlist.Version {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestEnqueueBounded(t *testing.T) {
	s := newTestSession(t, 44100)
	if _, _, err := apply(0, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, album(10, maxPlaylistEntries), nil); err == nil ||
		!strings.Contains(err.Error(), "would exceed 1000") {
		t.Fatalf("1 entry and %d more: %v", maxPlaylistEntries, err)
	}
	full, _, err := apply(0, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, album(10, maxPlaylistEntries-1), nil)
	if err != nil || len(full.Playlist.Entries) != maxPlaylistEntries {
		t.Fatalf("filling the playlist: %d entries, %v", len(full.Playlist.Entries), err)
	}
}

func TestMoveKeepsWhatPlays(t *testing.T) {
	base := playingAt(newTestSession(t, 10*44100, 10*44100, 10*44100, 10*44100), 0, 1, 2*sec)
	now := 3 * sec
	mv := func(s session, req protocol.Request) session {
		t.Helper()
		req.Cmd = protocol.CmdMove
		next, c, err := apply(now, lead, s, req, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.AtNs != 0 || !c.PlaylistChanged {
			t.Fatalf("change %+v", c)
		}
		samePlace(t, s, next, now, now+4*sec)
		return next
	}
	// The playing entry moves to the end, then another one before it.
	last := mv(base, protocol.Request{Entry: "e2", To: intp(3)})
	if got := entryIDs(last); !slices.Equal(got, []string{"e1", "e3", "e4", "e2"}) {
		t.Fatalf("move e2 to 3: %v", got)
	}
	wantAnchor(t, last, protocol.Anchor{AtNs: now, Index: 3, PositionNs: 5 * sec, Playing: true}, protocol.Playing)
	back := mv(last, protocol.Request{Index: intp(0), To: intp(3)})
	if got := entryIDs(back); !slices.Equal(got, []string{"e3", "e4", "e2", "e1"}) || back.State.Anchor.Index != 2 {
		t.Fatalf("move 0 to 3: %v, anchor %+v", got, back.State.Anchor)
	}

	// Nothing to move, or out of range: no change.
	same, c, err := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdMove, Index: intp(1), To: intp(1)}, nil, nil)
	if err != nil || c.StateChanged || same.Playlist.Version != base.Playlist.Version {
		t.Fatalf("move in place: %+v %v", c, err)
	}
	for _, bad := range []protocol.Request{
		{Cmd: protocol.CmdMove, Index: intp(4), To: intp(0)},
		{Cmd: protocol.CmdMove, Index: intp(0), To: intp(4)},
		{Cmd: protocol.CmdMove, Index: intp(0), To: intp(-1)},
		{Cmd: protocol.CmdMove, Entry: "e9", To: intp(0)},
		{Cmd: protocol.CmdMove, Index: intp(0)},
	} {
		if got, _, err := apply(now, lead, base, bad, nil, nil); err == nil || got.Playlist.Version != base.Playlist.Version {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestShuffle(t *testing.T) {
	frames := make([]int64, 12)
	for i := range frames {
		frames[i] = 10 * 44100
	}
	base := playingAt(newTestSession(t, frames...), 0, 2, 2*sec)
	now := 3 * sec
	on := true
	shuffled, c, err := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdShuffle, On: &on}, nil, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if !shuffled.Playlist.Shuffle || c.AtNs != 0 || !c.PlaylistChanged || shuffled.Playlist.Version != base.Playlist.Version+1 {
		t.Fatalf("shuffle: %+v, playlist %+v", c, shuffled.Playlist)
	}
	ids, orig := entryIDs(shuffled), entryIDs(base)
	if !slices.Equal(ids[:3], orig[:3]) {
		t.Fatalf("the entries up to the current one moved: %v", ids)
	}
	if slices.Equal(ids[3:], orig[3:]) {
		t.Fatalf("the rest kept its order: %v", ids)
	}
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b string) int { return int(entryNumber(a)) - int(entryNumber(b)) })
	if !slices.Equal(sorted, orig) {
		t.Fatalf("shuffled %v is not a permutation of %v", ids, orig)
	}
	samePlace(t, base, shuffled, now, now+4*sec)

	// The same seed gives the same order; another seed another one.
	again, _, _ := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdShuffle, On: &on}, nil, rand.New(rand.NewPCG(1, 2)))
	other, _, _ := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdShuffle, On: &on}, nil, rand.New(rand.NewPCG(3, 4)))
	if !slices.Equal(entryIDs(again), ids) || slices.Equal(entryIDs(other), ids) {
		t.Fatalf("seeded orders: %v, %v, %v", ids, entryIDs(again), entryIDs(other))
	}

	// A move while shuffled, then off: the rest goes back to the order it
	// was added in, the entry that plays stays.
	moved := mustApply(t, now, shuffled, protocol.Request{Cmd: protocol.CmdMove, Index: intp(11), To: intp(0)}, nil)
	off := false
	unshuffled, _, err := apply(now, lead, moved, protocol.Request{Cmd: protocol.CmdShuffle, On: &off}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := entryIDs(unshuffled)
	if unshuffled.Playlist.Shuffle || !slices.Equal(got[:4], entryIDs(moved)[:4]) || !slices.IsSortedFunc(got[4:], func(a, b string) int {
		return int(entryNumber(a)) - int(entryNumber(b))
	}) {
		t.Fatalf("off: %v (was %v)", got, entryIDs(moved))
	}
	samePlace(t, moved, unshuffled, now, now+4*sec)
	if same, c, err := apply(now, lead, unshuffled, protocol.Request{Cmd: protocol.CmdShuffle, On: &off}, nil, nil); err != nil ||
		c.StateChanged || same.Playlist.Version != unshuffled.Playlist.Version {
		t.Fatalf("off twice: %+v %v", c, err)
	}

	// A session stopped at its start has every entry shuffled.
	stopped := newTestSession(t, frames...)
	all, _, err := apply(now, lead, stopped, protocol.Request{Cmd: protocol.CmdShuffle, On: &on}, nil, rand.New(rand.NewPCG(5, 6)))
	if err != nil || all.State.Anchor.Index != 0 || all.State.State != protocol.Stopped || all.Playlist.Entries[0].ID == "e1" {
		t.Fatalf("stopped: %v, anchor %+v, %v", entryIDs(all), all.State.Anchor, err)
	}
	if all.State.Anchor.Entry != all.Playlist.Entries[0].ID {
		t.Fatalf("anchor %+v names another entry than the first", all.State.Anchor)
	}
}

// TestQueueDuringACrossfade checks that during a crossfade the entry fading
// in counts as the current one: play next goes after it, and shuffle leaves
// it where it is, so what is heard does not change.
func TestQueueDuringACrossfade(t *testing.T) {
	frames := make([]int64, 8)
	for i := range frames {
		frames[i] = 10 * 44100
	}
	base := playingAt(newTestSession(t, frames...), 0, 0, 0)
	base.Playlist.CrossfadeMs = 2000
	now := 9 * sec // entry 0 fades out, entry 1 fades in
	if idx, _, _ := base.current(now); idx != 1 {
		t.Fatalf("current entry %d during the fade, want 1", idx)
	}
	on := true
	shuffled, _, err := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdShuffle, On: &on}, nil, rand.New(rand.NewPCG(7, 8)))
	if err != nil {
		t.Fatal(err)
	}
	if ids, orig := entryIDs(shuffled), entryIDs(base); !slices.Equal(ids[:2], orig[:2]) {
		t.Fatalf("shuffle moved an entry heard in the fade: %v from %v", ids, orig)
	}
	samePlace(t, base, shuffled, now, now+sec/2)
	next, _, err := apply(now, lead, base, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x", At: protocol.EnqueueNext}, album(20, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := entryIDs(next); len(ids) != 9 || slices.Contains(entryIDs(base), ids[2]) {
		t.Fatalf("play next during the fade: %v", ids)
	}
	samePlace(t, base, next, now, now+sec/2)
}
