package homeassistant

import (
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// TestSessionStateDuringACrossfade: a session paused inside a crossfade
// shows the entry fading in as now playing, as the CLI does; outside the
// fade, the anchor's own.
func TestSessionStateDuringACrossfade(t *testing.T) {
	pl := protocol.Playlist{V: 1, Session: "home", Version: 3, CrossfadeMs: 2000, Entries: []protocol.Entry{
		{ID: "e1", Song: "a", Title: "First", Frames: 10 * 44100, SampleRate: 44100},
		{ID: "e2", Song: "b", Title: "Second", Frames: 10 * 44100, SampleRate: 44100},
	}}
	for _, c := range []struct {
		posS      int64
		wantEntry string
	}{{7, "e1"}, {9, "e2"}} {
		st := protocol.SessionState{V: 1, Session: "home", State: protocol.Paused, Volume: 50, PlaylistVersion: 3,
			Anchor: protocol.Anchor{Index: 0, Entry: "e1", PositionNs: c.posS * 1e9}}
		if got := sessionStateOf(st, pl).NowPlayingAttributes.Entry; got != c.wantEntry {
			t.Errorf("paused %d s into e1 (its last 2 s fade into e2): now playing %q, want %q", c.posS, got, c.wantEntry)
		}
	}
}
