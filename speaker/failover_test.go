package speaker

import (
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// ackedState tells whether acks hold one of session state (term, seq).
func ackedState(acks []protocol.Ack, term, seq uint64) bool {
	return slices.ContainsFunc(acks, func(a protocol.Ack) bool {
		return a.Session == "home" && a.Term == term && a.Seq == seq
	})
}

// TestSpeakerFencesByTermAndAcks runs a failover over a real broker: the
// speaker acknowledges the states it applies (only once it holds their
// playlist), ignores a deposed controller, and plays through the change of
// term without a gap.
func TestSpeakerFencesByTermAndAcks(t *testing.T) {
	song, sha := timecodeWAV(t, 20*testRate, 0)
	c := newTestController(t, map[string][]byte{sha: song})
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 1, Holder: "c1", TTLMs: 2000, SongsURL: c.songs.URL + "/songs/", FetchToken: "tok1"})
	pl := protocol.Playlist{V: 1, Session: "home", Term: 1, Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: 20 * testRate, SampleRate: testRate}}}
	c.retain(protocol.PlaylistTopic("home"), pl)
	startAt := time.Now().Add(time.Second).UnixNano()
	st := protocol.SessionState{V: 1, Session: "home", Term: 1, Seq: 1, State: protocol.Playing, Volume: 100,
		PlaylistVersion: 1, PlaylistHash: pl.Hash(), Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}}
	c.retain(protocol.SessionStateTopic("home"), st)

	var mu sync.Mutex
	var applied []protocol.SessionState
	logged := &lockedBuffer{} // ignored messages leave only a log line
	sp := startSpeakerWith(t, c, "den", nil, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, logged), &slog.HandlerOptions{Level: slog.LevelWarn}))
		o.OnState = func(st protocol.SessionState) {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, st)
		}
	})
	testwait.For(t, "the ack of state 1.1", 10*time.Second, func() bool { return ackedState(c.acksOf("den"), 1, 1) })
	testwait.For(t, "the speaker to play", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })

	// Failover: the new lease holder re-publishes the playlist and the
	// same anchor under term 2.
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 2, Holder: "c2", TTLMs: 2000, SongsURL: c.songs.URL + "/songs/", FetchToken: "tok2"})
	pl.Term = 2
	c.retain(protocol.PlaylistTopic("home"), pl)
	st.Term, st.Seq = 2, 2
	c.retain(protocol.SessionStateTopic("home"), st)
	testwait.For(t, "the ack of state 2.2", 10*time.Second, func() bool { return ackedState(c.acksOf("den"), 2, 2) })

	// The deposed controller pauses, with a higher seq but its old term.
	deposed := st
	deposed.Term, deposed.Seq, deposed.State = 1, 9, protocol.Paused
	deposed.Anchor = protocol.Anchor{AtNs: time.Now().UnixNano(), Index: 0, Entry: "a", PositionNs: time.Now().UnixNano() - startAt}
	if err := c.broker.Publish(protocol.SessionStateTopic("home"), protocol.Encode(deposed), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the deposed state ignored", 5*time.Second, func() bool {
		return strings.Contains(logged.String(), "session state of term 1 from a deposed controller")
	})
	// A lease of term 3 fences off term 2 too.
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 3, Holder: "c3", TTLMs: 2000, SongsURL: c.songs.URL + "/songs/", FetchToken: "tok3"})
	testwait.For(t, "the lease of term 3", 5*time.Second, func() bool {
		sp.sp.mu.Lock()
		defer sp.sp.mu.Unlock()
		return sp.sp.fence.leaseTerm == 3
	})
	stale := st
	stale.Seq, stale.State, stale.Anchor = 3, protocol.Paused, deposed.Anchor
	if err := c.broker.Publish(protocol.SessionStateTopic("home"), protocol.Encode(stale), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the state of term 2 ignored", 5*time.Second, func() bool {
		return strings.Contains(logged.String(), "session state of term 2 from a deposed controller (lease term 3)")
	})
	// Term 3 announces a change to a new playlist, the state before the
	// playlist: the ack waits for the playlist. A playlist of the deposed
	// term 2 does not count.
	next := pl
	next.Term, next.Version = 3, 2
	next.Entries = append(slices.Clone(pl.Entries), protocol.Entry{ID: "b", Song: sha, Frames: 20 * testRate, SampleRate: testRate})
	// Its anchor takes effect after the test: until then the speaker plays on.
	laterAt := time.Now().Add(time.Minute).UnixNano()
	later := protocol.SessionState{V: 1, Session: "home", Term: 3, Seq: 4, State: protocol.Playing, Volume: 100, PlaylistVersion: 2,
		PlaylistHash: next.Hash(), Anchor: protocol.Anchor{AtNs: laterAt, Index: 0, Entry: "a", PositionNs: laterAt - startAt, Playing: true}}
	c.retain(protocol.SessionStateTopic("home"), later)
	fake := next
	fake.Term = 2
	c.retain(protocol.PlaylistTopic("home"), fake)
	testwait.For(t, "state 3.4 applied", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) > 0 && applied[len(applied)-1].Seq == 4
	})
	time.Sleep(300 * time.Millisecond) // an ack sent already would have arrived
	if ackedState(c.acksOf("den"), 3, 4) {
		t.Fatal("state acked before its playlist arrived")
	}
	c.retain(protocol.PlaylistTopic("home"), next)
	testwait.For(t, "the ack of state 3.4", 5*time.Second, func() bool { return ackedState(c.acksOf("den"), 3, 4) })
	time.Sleep(500 * time.Millisecond) // play on a little
	sp.stop()

	mu.Lock()
	var got []uint64
	for _, st := range applied {
		got = append(got, st.Term*100+st.Seq)
	}
	mu.Unlock()
	if !slices.Equal(got, []uint64{101, 202, 304}) {
		t.Errorf("applied states (term*100+seq) %v, want [101 202 304]", got)
	}
	var ackedSeqs []uint64
	for _, a := range c.acksOf("den") {
		ackedSeqs = append(ackedSeqs, a.Term*100+a.Seq)
	}
	if !slices.Equal(ackedSeqs, []uint64{101, 202, 304}) {
		t.Errorf("acks (term*100+seq) %v, want each applied state once", ackedSeqs)
	}
	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	if h.first < 0 {
		t.Fatal("nothing heard")
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
	if len(h.silence) > 0 {
		t.Errorf("%d silent blocks after the first sound, first %v after the start", len(h.silence), time.Duration(h.silence[0]-startAt))
	}
}
