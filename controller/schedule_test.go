package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

const (
	sec  = int64(time.Second)
	lead = 150 * time.Millisecond
)

// testSong is a song of frames frames at 44.1 kHz.
func testSong(n int, frames int64) *protocol.Song {
	sha := fmt.Sprintf("%064x", n)
	return &protocol.Song{SHA256: sha, Title: fmt.Sprint("song ", n), Frames: frames, SampleRate: 44100}
}

// newTestSession builds a stopped session with one entry per frame count.
func newTestSession(t testing.TB, frames ...int64) session {
	t.Helper()
	s := session{
		State:     protocol.SessionState{V: 1, Session: "home", State: protocol.Stopped, Volume: 100, Anchor: protocol.Anchor{Index: -1}},
		Playlist:  protocol.Playlist{V: 1, Session: "home", Entries: []protocol.Entry{}},
		NextEntry: 1,
	}
	for i, f := range frames {
		s = mustApply(t, 0, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, testSong(i, f))
	}
	return s
}

// songsOf is what enqueue adds for song: nothing for nil.
func songsOf(song *protocol.Song) []protocol.Song {
	if song == nil {
		return nil
	}
	return []protocol.Song{*song}
}

func mustApply(t testing.TB, now int64, s session, req protocol.Request, song *protocol.Song) session {
	t.Helper()
	next, _, err := apply(now, lead, s, req, songsOf(song), nil)
	if err != nil {
		t.Fatalf("%s: %v", req.Cmd, err)
	}
	return next
}

func intp(i int) *int { return &i }

func posp(ns int64) *protocol.Position { p := protocol.Position(ns); return &p }

func wantAnchor(t *testing.T, s session, want protocol.Anchor, state string) {
	t.Helper()
	if want.Index >= 0 {
		want.Entry = s.Playlist.Entries[want.Index].ID
	}
	if s.State.Anchor != want || s.State.State != state {
		t.Fatalf("anchor %+v state %s, want %+v state %s", s.State.Anchor, s.State.State, want, state)
	}
}

// playingAt returns s playing entry idx at pos from shared instant at.
func playingAt(s session, at int64, idx int, pos int64) session {
	s.reanchor(at, idx, pos, protocol.Playing)
	return s
}

func TestPauseAcrossEntryBoundary(t *testing.T) {
	// Entry 0 is 441001 frames: 10.000022675 s, not a whole number of ns.
	s := newTestSession(t, 441001, 20*44100)
	s = playingAt(s, 0, 0, 8*sec)
	now := 3 * sec
	next, c, err := apply(now, lead, s, protocol.Request{Cmd: protocol.CmdPause}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := now + int64(lead)
	if c.AtNs != at {
		t.Fatalf("at %d, want %d", c.AtNs, at)
	}
	wantPos := 8*sec + at - s.Playlist.Entries[0].DurationNs()
	wantAnchor(t, next, protocol.Anchor{AtNs: at, Index: 1, PositionNs: wantPos}, protocol.Paused)
	if next.State.Seq != s.State.Seq+1 {
		t.Fatalf("seq %d after %d", next.State.Seq, s.State.Seq)
	}

	// Resuming continues at exactly the paused position.
	later := at + 60*sec
	resumed := mustApply(t, later, next, protocol.Request{Cmd: protocol.CmdPlay}, nil)
	wantAnchor(t, resumed, protocol.Anchor{AtNs: later + int64(lead), Index: 1, PositionNs: wantPos, Playing: true}, protocol.Playing)

	// Pausing twice changes nothing.
	again, c, err := apply(later, lead, next, protocol.Request{Cmd: protocol.CmdPause}, nil, nil)
	if err != nil || c.StateChanged || again.State != next.State {
		t.Fatalf("second pause: %v %+v", err, c)
	}
}

func TestPausePastTheEndStops(t *testing.T) {
	s := playingAt(newTestSession(t, 44100), 0, 0, 0)
	next := mustApply(t, 5*sec, s, protocol.Request{Cmd: protocol.CmdPause}, nil)
	if next.State.State != protocol.Stopped || next.State.Anchor.Index != 0 || next.State.Anchor.Playing {
		t.Fatalf("state %+v", next.State)
	}
}

func TestPlay(t *testing.T) {
	empty := newTestSession(t)
	if _, _, err := apply(0, lead, empty, protocol.Request{Cmd: protocol.CmdPlay}, nil, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("play on empty playlist: %v", err)
	}
	s := newTestSession(t, 10*44100, 20*44100)
	next := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdPlay}, nil)
	wantAnchor(t, next, protocol.Anchor{AtNs: sec + int64(lead), Index: 0, Playing: true}, protocol.Playing)

	// Playing while playing: ok, nothing changes.
	same, c, err := apply(2*sec, lead, next, protocol.Request{Cmd: protocol.CmdPlay}, nil, nil)
	if err != nil || c.StateChanged || same.State != next.State {
		t.Fatalf("play while playing: %v %+v", err, c)
	}

	jump := mustApply(t, 2*sec, next, protocol.Request{Cmd: protocol.CmdPlay, Index: intp(1), Position: posp(5 * sec)}, nil)
	wantAnchor(t, jump, protocol.Anchor{AtNs: 2*sec + int64(lead), Index: 1, PositionNs: 5 * sec, Playing: true}, protocol.Playing)

	for _, req := range []protocol.Request{
		{Cmd: protocol.CmdPlay, Index: intp(2)},
		{Cmd: protocol.CmdPlay, Index: intp(-1)},
		{Cmd: protocol.CmdPlay, Index: intp(0), Position: posp(10 * sec)},
	} {
		got, _, err := apply(2*sec, lead, next, req, nil, nil)
		if err == nil || got.State != next.State {
			t.Errorf("%+v: err %v", req, err)
		}
	}
}

func TestScheduledCommandsNeverGoBackInTime(t *testing.T) {
	s := newTestSession(t, 10*44100)
	next := mustApply(t, 0, s, protocol.Request{Cmd: protocol.CmdPlay}, nil)
	// The clock stepped back: pause still lands after the play.
	paused := mustApply(t, -sec, next, protocol.Request{Cmd: protocol.CmdPause}, nil)
	wantAnchor(t, paused, protocol.Anchor{AtNs: int64(lead), Index: 0, PositionNs: 0}, protocol.Paused)
}

func TestSeek(t *testing.T) {
	s := newTestSession(t, 10*44100, 20*44100)
	s = playingAt(s, 0, 1, 0)
	for _, pos := range []int64{20 * sec, 25 * sec} {
		got, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdSeek, Position: posp(pos)}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "beyond") || got.State != s.State {
			t.Fatalf("seek to %v: %v", time.Duration(pos), err)
		}
	}
	next := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdSeek, Position: posp(20*sec - 1)}, nil)
	wantAnchor(t, next, protocol.Anchor{AtNs: sec + int64(lead), Index: 1, PositionNs: 20*sec - 1, Playing: true}, protocol.Playing)
	if _, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdSeek}, nil, nil); err == nil {
		t.Fatal("seek without position accepted")
	}
}

func TestNextAndPrevious(t *testing.T) {
	s := newTestSession(t, 10*44100, 20*44100)
	s = playingAt(s, 0, 0, 0)
	s.State.State, s.State.Anchor.Playing = protocol.Paused, false
	s.State.Anchor.PositionNs = 4 * sec

	next := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdNext}, nil)
	wantAnchor(t, next, protocol.Anchor{AtNs: sec + int64(lead), Index: 1}, protocol.Paused)

	end := mustApply(t, 2*sec, next, protocol.Request{Cmd: protocol.CmdNext}, nil)
	wantAnchor(t, end, protocol.Anchor{AtNs: 2*sec + int64(lead), Index: 0}, protocol.Stopped)

	playing := playingAt(s, 0, 1, 0)
	prev := mustApply(t, 5*sec, playing, protocol.Request{Cmd: protocol.CmdPrevious}, nil)
	wantAnchor(t, prev, protocol.Anchor{AtNs: 5*sec + int64(lead), Index: 1, Playing: true}, protocol.Playing)
}

func TestEnqueue(t *testing.T) {
	s := newTestSession(t)
	one := mustApply(t, 7, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, testSong(1, 44100))
	wantAnchor(t, one, protocol.Anchor{AtNs: 7, Index: 0}, protocol.Stopped)
	if one.Playlist.Version != s.Playlist.Version+1 || one.State.PlaylistVersion != one.Playlist.Version {
		t.Fatalf("versions: playlist %d state %d", one.Playlist.Version, one.State.PlaylistVersion)
	}

	// Insert before the playing entry: its index shifts, the timeline does not.
	s = playingAt(newTestSession(t, 10*44100, 10*44100), 0, 1, 2*sec)
	current := s.Playlist.Entries[1].ID
	now := 3 * sec
	next, c, err := apply(now, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x", Index: intp(0)}, songsOf(testSong(9, 44100)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AtNs != 0 || !c.PlaylistChanged || c.Entry == "" || next.Playlist.Entries[0].ID != c.Entry {
		t.Fatalf("change %+v", c)
	}
	wantAnchor(t, next, protocol.Anchor{AtNs: now, Index: 2, PositionNs: 5 * sec, Playing: true}, protocol.Playing)
	if next.State.Anchor.Entry != current {
		t.Fatalf("current entry became %s, want %s", next.State.Anchor.Entry, current)
	}

	// Insert after it: nothing moves. Entry ids are never reused.
	after := mustApply(t, now, next, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, testSong(9, 44100))
	if after.State.Anchor.Index != 2 || after.Playlist.Entries[3].ID == after.Playlist.Entries[0].ID {
		t.Fatalf("append: %+v %+v", after.State.Anchor, after.Playlist.Entries)
	}
	if _, _, err := apply(now, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x", Index: intp(3)}, songsOf(testSong(9, 44100)), nil); err == nil {
		t.Fatal("insert beyond the end accepted")
	}
}

func TestPlaylistFull(t *testing.T) {
	s := newTestSession(t, 44100)
	// Fill most of the room directly; apply checks the size on every enqueue.
	e := s.Playlist.Entries[0]
	room := (protocol.MaxPayload - 5000) / (len(protocol.Encode(e)) + 1)
	for range room {
		s.Playlist.Entries = append(s.Playlist.Entries, e)
	}
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		s, _, err = apply(0, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, songsOf(testSong(i, 44100)), nil)
	}
	if err == nil || !strings.Contains(err.Error(), "playlist full") {
		t.Fatalf("err %v", err)
	}
	if n := len(protocol.Encode(s.Playlist)); n > protocol.MaxPayload {
		t.Fatalf("stored playlist is %d bytes", n)
	}
}

func TestPlaylistAtMostMaxEntries(t *testing.T) {
	s := newTestSession(t, 44100)
	for len(s.Playlist.Entries) < maxPlaylistEntries-1 {
		s.Playlist.Entries = append(s.Playlist.Entries, s.Playlist.Entries[0])
	}
	s = mustApply(t, 0, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, testSong(1, 44100))
	next, _, err := apply(0, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, songsOf(testSong(2, 44100)), nil)
	if err == nil || err.Error() != "playlist full (1000 entries)" || len(next.Playlist.Entries) != maxPlaylistEntries {
		t.Fatalf("enqueue beyond %d entries: %v", maxPlaylistEntries, err)
	}
}

func TestDequeue(t *testing.T) {
	base := newTestSession(t, 10*44100, 10*44100, 10*44100)
	s := playingAt(base, 0, 1, 0)
	now := 2 * sec
	at := now + int64(lead)

	// Removing the current entry while playing continues with the following one.
	next, c, err := apply(now, lead, s, protocol.Request{Cmd: protocol.CmdDequeue, Index: intp(1)}, nil, nil)
	if err != nil || c.AtNs != at {
		t.Fatalf("%v %+v", err, c)
	}
	wantAnchor(t, next, protocol.Anchor{AtNs: at, Index: 1, Playing: true}, protocol.Playing)
	if next.State.Anchor.Entry != s.Playlist.Entries[2].ID {
		t.Fatalf("continues with %s", next.State.Anchor.Entry)
	}

	// By id, an entry before the current one: indexes shift, timeline kept.
	byID := mustApply(t, now, s, protocol.Request{Cmd: protocol.CmdDequeue, Entry: s.Playlist.Entries[0].ID}, nil)
	wantAnchor(t, byID, protocol.Anchor{AtNs: now, Index: 0, PositionNs: 2 * sec, Playing: true}, protocol.Playing)

	// The current entry as the last one: stopped at the start.
	last := playingAt(base, 0, 2, 0)
	stopped := mustApply(t, now, last, protocol.Request{Cmd: protocol.CmdDequeue, Index: intp(2)}, nil)
	wantAnchor(t, stopped, protocol.Anchor{AtNs: at, Index: 0}, protocol.Stopped)

	for _, req := range []protocol.Request{
		{Cmd: protocol.CmdDequeue, Index: intp(3)},
		{Cmd: protocol.CmdDequeue, Entry: "e999"},
		{Cmd: protocol.CmdDequeue},
		{Cmd: protocol.CmdDequeue, Entry: "e1", Index: intp(0)},
	} {
		if got, _, err := apply(now, lead, s, req, nil, nil); err == nil || len(got.Playlist.Entries) != 3 {
			t.Errorf("%+v: %v", req, err)
		}
	}

	one := newTestSession(t, 44100)
	empty := mustApply(t, now, one, protocol.Request{Cmd: protocol.CmdDequeue, Index: intp(0)}, nil)
	wantAnchor(t, empty, protocol.Anchor{AtNs: at, Index: -1}, protocol.Stopped)
}

func TestClearAndVolume(t *testing.T) {
	s := playingAt(newTestSession(t, 10*44100, 10*44100), 0, 1, 0)
	cleared := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdClear}, nil)
	if len(cleared.Playlist.Entries) != 0 || cleared.State.State != protocol.Stopped || cleared.State.Anchor.Index != -1 {
		t.Fatalf("%+v", cleared.State)
	}
	v := mustApply(t, sec, s, protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(30)}, nil)
	if v.State.Volume != 30 || v.State.Anchor != s.State.Anchor || v.State.Seq != s.State.Seq+1 {
		t.Fatalf("%+v", v.State)
	}
	if _, _, err := apply(sec, lead, s, protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(101)}, nil, nil); err == nil {
		t.Fatal("volume 101 accepted")
	}
}

func TestFieldsAreChecked(t *testing.T) {
	s := newTestSession(t, 44100)
	for _, req := range []protocol.Request{
		{Cmd: protocol.CmdPause, Position: posp(0)},
		{Cmd: protocol.CmdNext, Song: "x"},
		{Cmd: protocol.CmdVolume},
		{Cmd: protocol.CmdPlay, Query: "x"},
		{Cmd: protocol.CmdPlay, Speaker: "k1"},
		{Cmd: protocol.CmdStatus, Session: "home"},
		{Cmd: protocol.CmdVolume, Volume: intp(5), Speaker: "k1"}, // a speaker's volume is no session change
		{Cmd: protocol.CmdJoin},
		{Cmd: protocol.CmdJoin, Speaker: "k1"}, // handled apart from apply
		{Cmd: protocol.CmdCreate, Session: "x"},
		{Cmd: "dance"},
	} {
		if got, _, err := apply(0, lead, s, req, nil, nil); err == nil || got.State != s.State {
			t.Errorf("%+v accepted", req)
		}
	}
}

func TestAutoAdvance(t *testing.T) {
	s := newTestSession(t, 441001, 20*44100)
	s = playingAt(s, 1000, 0, 2*sec)
	d0 := s.Playlist.Entries[0].DurationNs()
	end0 := 1000 + d0 - 2*sec
	if end, ok := s.entryEnd(); !ok || end != end0 {
		t.Fatalf("entry end %d, want %d", end, end0)
	}
	if _, changed := advance(s, end0-1); changed {
		t.Fatal("advanced before the end")
	}
	next, changed := advance(s, end0)
	if !changed || next.State.Seq != s.State.Seq+1 {
		t.Fatal("no advance at the end")
	}
	wantAnchor(t, next, protocol.Anchor{AtNs: end0, Index: 1, Playing: true}, protocol.Playing)

	// The new anchor describes the same timeline as the old one.
	for _, probe := range []int64{end0, end0 + 5*sec} {
		i1, p1, _ := s.cursor(probe)
		i2, p2, _ := next.cursor(probe)
		if i1 != i2 || p1 != p2 {
			t.Fatalf("at %d: old (%d, %d) new (%d, %d)", probe, i1, p1, i2, p2)
		}
	}

	// Both ends passed at once (say, the controller was down): stopped at the
	// end of the last entry, at entry 0.
	end1 := end0 + s.Playlist.Entries[1].DurationNs()
	stopped, changed := advance(s, end1+time.Hour.Nanoseconds())
	if !changed || stopped.State.Seq != s.State.Seq+1 {
		t.Fatal("no advance")
	}
	wantAnchor(t, stopped, protocol.Anchor{AtNs: end1, Index: 0}, protocol.Stopped)
	if _, ok := stopped.entryEnd(); ok {
		t.Fatal("stopped session has an entry end")
	}
}

func TestCommandsSettleFirst(t *testing.T) {
	// A command arriving after an entry ended (before the timer ran) acts
	// on the current entry.
	s := playingAt(newTestSession(t, 10*44100, 10*44100), 0, 0, 0)
	prev := mustApply(t, 12*sec, s, protocol.Request{Cmd: protocol.CmdPrevious}, nil)
	wantAnchor(t, prev, protocol.Anchor{AtNs: 12*sec + int64(lead), Index: 1, Playing: true}, protocol.Playing)
	if prev.State.Seq != s.State.Seq+1 {
		t.Fatalf("seq %d", prev.State.Seq)
	}
	// Status after the end reports the settled state as a change to publish.
	st, c, err := apply(12*sec, lead, s, protocol.Request{Cmd: protocol.CmdStatus}, nil, nil)
	if err != nil || !c.StateChanged || st.State.Anchor.Index != 1 {
		t.Fatalf("%v %+v %+v", err, c, st.State)
	}
}

// TestAutoAdvanceTimer runs the session loop on synctest's fake clock: the
// timer re-anchors at exactly each entry's end, without real waiting.
func TestAutoAdvanceTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openTestStore(t, t.TempDir())
		defer st.Close()
		songs := []protocol.Song{
			{SHA256: hashOf([]byte("1")), Title: "one", Format: "wav", Frames: 8000, SampleRate: 8000},
			{SHA256: hashOf([]byte("2")), Title: "two", Format: "wav", Frames: 16001, SampleRate: 8000},
		}
		if _, err := st.createSession("home", "", protocol.Everyone); err != nil {
			t.Fatal(err)
		}
		sessions, err := st.sessions()
		if err != nil {
			t.Fatal(err)
		}
		s := sessions["home"]
		now := time.Now().UnixNano()
		for i := range songs {
			if err := st.addSong(songs[i], now); err != nil {
				t.Fatal(err)
			}
			s = mustApply(t, now, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, &songs[i])
		}
		s = mustApply(t, now, s, protocol.Request{Cmd: protocol.CmdPlay}, nil)
		if err := st.saveSession(s, true); err != nil {
			t.Fatal(err)
		}
		c := &Controller{
			// Never connected, it holds a lease that outlasts the test.
			opts: Options{LeaseTTL: time.Hour},
			log:  slog.New(slog.DiscardHandler), local: clock.Real{}, wall: clock.Real{}, steady: clocksync.NewSteady(time.Now().UnixNano(), nil), store: st,
			sharedClock:   newTimeFollower("t", slog.New(slog.DiscardHandler), clocksync.LocalNs(time.Now().UnixNano())),
			sessions:      map[string]session{"home": s},
			sessionEvents: newInbox(maxQueued), sessionRequests: newInbox(maxQueued), connected: make(chan struct{}, 1),
			client:   mqtt.NewClient(mqtt.NewClientOptions()), // never connected: nothing is published
			lease:    &lease{role: leading, ttl: time.Hour, heard: time.Now()},
			hold:     newLeaseHold("t", time.Hour, clock.Real{}),
			presence: newSongNews(), gainNews: newSongNews(),
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.sessionLoop(ctx) }()

		stored := func() protocol.SessionState {
			all, err := st.sessions()
			if err != nil {
				t.Fatal(err)
			}
			return all["home"].State
		}
		start := s.State.Anchor.AtNs
		end0 := start + protocol.FramesToNs(8000, 8000)
		end1 := end0 + protocol.FramesToNs(16001, 8000)
		time.Sleep(time.Duration(end0 - time.Now().UnixNano() - 1))
		synctest.Wait()
		if got := stored(); got.Anchor.Index != 0 || got.Seq != s.State.Seq {
			t.Fatalf("advanced early: %+v", got)
		}
		time.Sleep(2 * time.Nanosecond) // just past the entry end, on the fake clock
		synctest.Wait()
		if got := stored(); got.Anchor.Index != 1 || got.Anchor.AtNs != end0 || !got.Anchor.Playing || got.Seq != s.State.Seq+1 {
			t.Fatalf("after the first entry: %+v", got)
		}
		time.Sleep(time.Duration(end1 - time.Now().UnixNano()))
		synctest.Wait()
		if got := stored(); got.State != protocol.Stopped || got.Anchor.Index != 0 || got.Anchor.AtNs != end1 || got.Seq != s.State.Seq+2 {
			t.Fatalf("after the last entry: %+v", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestLeadAdaptsToTheSlowestSpeaker(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	cases := []struct {
		what     string
		speakers []protocol.SpeakerStatus
		want     time.Duration
	}{
		{"no speaker yet", nil, defaultLead},
		{"only offline ones", []protocol.SpeakerStatus{{Online: false, LatencyNs: ms(900)}}, defaultLead},
		{"quiet LAN: the floor", []protocol.SpeakerStatus{{Online: true, LatencyNs: ms(5), RTTP99Ns: ms(1)}}, minLead},
		{"the slowest counts", []protocol.SpeakerStatus{
			{Online: true, LatencyNs: ms(30), RTTP99Ns: ms(1)},
			{Online: true, LatencyNs: ms(30), RTTP99Ns: ms(40)},
			{Online: false, LatencyNs: ms(500)},
		}, 85 * time.Millisecond},
		{"a huge buffer: the ceiling", []protocol.SpeakerStatus{{Online: true, LatencyNs: ms(5000)}}, maxLead},
	}
	for _, c := range cases {
		if got := leadFor(c.speakers); got != c.want {
			t.Errorf("%s: lead %v, want %v", c.what, got, c.want)
		}
	}
}
