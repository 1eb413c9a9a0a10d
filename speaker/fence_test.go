package speaker

import (
	"slices"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

func TestFence(t *testing.T) {
	var f fence
	if err := f.state(2, 5); err != nil {
		t.Fatalf("first state refused: %v", err)
	}
	if err := f.state(1, 9); err == nil {
		t.Error("state of a lower term after one of term 2 accepted")
	}
	if err := f.state(2, 5); err != errStale {
		t.Errorf("duplicate state: %v, want errStale", err)
	}
	if err := f.state(2, 6); err != nil {
		t.Errorf("next seq refused: %v", err)
	}
	if f.playlist(1) == nil || f.playlist(2) != nil {
		t.Error("playlist fencing by the applied state's term wrong")
	}

	if !f.lease(protocol.Lease{Term: 3, FetchToken: "t3", SongsURL: "http://c3/songs/"}) {
		t.Fatal("lease of term 3 refused")
	}
	if err := f.state(2, 7); err == nil {
		t.Error("state of term 2 accepted under lease term 3")
	}
	if f.playlist(2) == nil || f.playlist(3) != nil {
		t.Error("playlist fencing by the lease term wrong")
	}
	if err := f.state(3, 8); err != nil {
		t.Errorf("state of the lease's term refused: %v", err)
	}
	if f.lease(protocol.Lease{Term: 2, FetchToken: "t2", SongsURL: "http://c2/songs/"}) || f.songsURL != "http://c3/songs/" {
		t.Errorf("lease of a lower term taken: songs URL %q", f.songsURL)
	}
	if f.controllerStatus(2, "http://c2/songs/") || !f.controllerStatus(3, "http://c3b/songs/") || f.songsURL != "http://c3b/songs/" {
		t.Errorf("controller status fencing wrong: songs URL %q", f.songsURL)
	}

	// Fetch tokens: the current lease's and the one before.
	f.lease(protocol.Lease{Term: 4, FetchToken: "t4"})
	for token, want := range map[string]bool{"t4": true, "t3": true, "t2": false, "": false, "t": false} {
		if got := f.tokenValid(token); got != want {
			t.Errorf("token %q valid %v, want %v", token, got, want)
		}
	}
	f.lease(protocol.Lease{Term: 4, FetchToken: "t4"}) // a renewal keeps both
	f.lease(protocol.Lease{Term: 5, FetchToken: "t5"})
	if f.tokenValid("t3") || !f.tokenValid("t4") || !f.tokenValid("t5") {
		t.Error("token rotation wrong")
	}
}

func TestAcksDue(t *testing.T) {
	var a acks
	held := map[uint64]string{1: "h1"}
	holds := func(v uint64, hash string) bool { h, ok := held[v]; return ok && (hash == "" || hash == h) }
	seqs := func(sts []protocol.SessionState) []uint64 {
		var out []uint64
		for _, st := range sts {
			out = append(out, st.Seq)
		}
		return out
	}
	a.applied(protocol.SessionState{Term: 1, Seq: 1, PlaylistVersion: 1, PlaylistHash: "h1"})
	if got := seqs(a.due(holds)); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("acked %v, want [1]", got)
	}
	if got := a.due(holds); len(got) != 0 {
		t.Fatalf("acked again: %v", seqs(got))
	}
	// States whose playlist is missing, or has another hash, wait.
	a.applied(protocol.SessionState{Term: 1, Seq: 2, PlaylistVersion: 2})
	a.applied(protocol.SessionState{Term: 1, Seq: 3, PlaylistVersion: 1, PlaylistHash: "other"})
	a.applied(protocol.SessionState{Term: 1, Seq: 4, PlaylistVersion: 3})
	if got := a.due(holds); len(got) != 0 {
		t.Fatalf("acked %v without their playlists", seqs(got))
	}
	held[2] = "h2"
	if got := seqs(a.due(holds)); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("acked %v, want [2]", got)
	}
	// An ack of a later state drops the earlier ones still waiting.
	held[3] = "h3"
	if got := seqs(a.due(holds)); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("acked %v, want [4]", got)
	}
	if len(a.unacked) != 0 {
		t.Errorf("still waiting: %v", seqs(a.unacked))
	}
}

// TestEngineFailoverReplayIsSeamless: a new lease holder re-publishes the
// session's anchor and playlist under a new term, or the same timeline
// anchored at another instant. The output must not change by one sample
// (no resync, no gap, no fade), also while the engine steers for drift.
func TestEngineFailoverReplayIsSeamless(t *testing.T) {
	const blocks = 300
	run := func(failover bool) [][2]float64 {
		f := newFixture(t)
		f.files.put("long", writeTimecode(t, t.TempDir(), testRate, 5*testRate, 0))
		pl := protocol.Playlist{V: 1, Session: "home", Term: 1, Version: 4,
			Entries: []protocol.Entry{{ID: "l1", Song: "long", Frames: 5 * testRate, SampleRate: testRate}}}
		f.eng.setPlaylist(pl)
		f.pl = pl
		st := f.state(f.t0, 0, 0, true, 100)
		st.Term, st.Seq, st.PlaylistHash = 1, 1, pl.Hash()
		f.eng.addState(st)
		var out [][2]float64
		for k := range blocks {
			// A device 120 ppm fast, so that the engine steers.
			heard := f.t0 + int64(float64(k)*1e7/(1+120e-6))
			switch {
			case failover && k == 100:
				again := pl
				again.Term = 2
				f.eng.setPlaylist(again)
				st2 := st
				st2.Term, st2.Seq = 2, 2
				f.eng.addState(st2)
			case failover && k == 200:
				st3 := st
				st3.Term, st3.Seq = 3, 3
				st3.Anchor.AtNs = heard
				st3.Anchor.PositionNs = heard - f.t0
				f.eng.addState(st3)
			}
			buf := make([][2]float64, 441)
			f.eng.Fill(buf, time.Unix(0, heard-int64(fixtureOffset)))
			out = append(out, buf...)
		}
		return out
	}
	want, got := run(false), run(true)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d (block %d) differs after the failover: %v, want %v", i, i/441, got[i], want[i])
		}
	}
	if heard(want[len(want)-441:])[0] < 0 {
		t.Fatal("reference run silent at the end")
	}
}

// TestFenceAssignmentAndMove: assignments are fenced by the lease term and
// the latest assignment's; a move forgets the old session's terms and seqs
// but not the lease's.
func TestFenceAssignmentAndMove(t *testing.T) {
	var f fence
	if err := f.assignment(0); err != nil {
		t.Errorf("assignment before any lease refused: %v", err)
	}
	f.lease(protocol.Lease{Term: 2})
	if f.assignment(1) == nil {
		t.Error("assignment of term 1 accepted under lease term 2")
	}
	if err := f.assignment(3); err != nil {
		t.Errorf("assignment of term 3 refused: %v", err)
	}
	if f.assignment(2) == nil {
		t.Error("assignment of term 2 accepted after one of term 3")
	}
	if err := f.assignment(3); err != nil {
		t.Errorf("a later assignment of the same term refused: %v", err)
	}

	if err := f.state(3, 40); err != nil {
		t.Fatal(err)
	}
	f.newSession()
	if err := f.state(1, 1); err == nil {
		t.Error("after a move, a state of a term below the lease's accepted")
	}
	if err := f.state(3, 5); err != nil {
		t.Errorf("after a move, the new session's state (seq below the old one's) refused: %v", err)
	}
}
