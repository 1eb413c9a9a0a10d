package speaker

import (
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

func TestEngineMutesOnPlaylistHashMismatch(t *testing.T) {
	f := newFixture(t)
	st := f.state(f.t0, 0, 0, true, 100)
	other := f.pl
	other.Entries = []protocol.Entry{f.pl.Entries[0]} // same version, other content
	st.PlaylistHash = other.Hash()
	f.eng.addState(st)
	checkHeard(t, f.play(f.t0, 441), func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != recovering || !strings.Contains(s.Error, "do not match") {
		t.Errorf("status %+v, want recovering", s)
	}
	if !f.eng.mismatched() || f.eng.holdsPlaylist(st.PlaylistVersion, st.PlaylistHash) {
		t.Error("mismatch not reported")
	}
	f.eng.setPlaylist(other)
	if f.eng.mismatched() {
		t.Error("still mismatched with the matching playlist")
	}
	at := f.t0 + framesToNsRound(441, testRate)
	checkHeard(t, f.play(at, 441), func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return 441 + int64(i)
	})
}

// TestSpeakerRepairsMismatchedPlaylist: the speaker holds a playlist whose
// hash is not the one the session state names; it mutes, re-reads the
// retained topics until the pair matches, and plays in sync.
func TestSpeakerRepairsMismatchedPlaylist(t *testing.T) {
	song, sha := timecodeWAV(t, 20*testRate, 0)
	c := newTestController(t, map[string][]byte{sha: song})
	good := protocol.Playlist{V: 1, Session: "home", Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: 20 * testRate, SampleRate: testRate}}}
	bad := good
	bad.Entries = []protocol.Entry{{ID: "a", Song: sha, Frames: 19 * testRate, SampleRate: testRate}}
	c.retain(protocol.PlaylistTopic("home"), bad)
	startAt := time.Now().Add(time.Second).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing, Volume: 100,
		PlaylistVersion: 1, PlaylistHash: good.Hash(), Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	sp := startSpeaker(t, c, "den", nil)
	waitFor(t, "the speaker to recover", 10*time.Second, func() bool { return c.status("den").State == recovering })
	if st := c.status("den"); !strings.Contains(st.Error, "do not match") {
		t.Errorf("status %+v: no reason", st)
	}
	// The broker's retained playlist is put right without a message to
	// subscribers: only a re-read finds it.
	c.broker.Topics.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: protocol.PlaylistTopic("home"), Payload: protocol.Encode(good), Created: time.Now().Unix()})
	repairedAt := time.Now()
	waitFor(t, "the speaker to play", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })
	waitFor(t, "the ack of the state", 5*time.Second, func() bool { return ackedState(c.acksOf("den"), 0, 1) })
	time.Sleep(300 * time.Millisecond)
	sp.stop()
	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	if h.first < repairedAt.UnixNano() {
		t.Errorf("sound %v before the repair", time.Duration(repairedAt.UnixNano()-h.first))
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
}
