package speaker

import (
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// A missing entry (its file gone from the music folders) lasts 0 frames:
// the speaker goes from the entry before it straight to the one after, and
// never asks for its song.
func TestEngineSkipsMissingEntriesAndNeverWantsTheirSongs(t *testing.T) {
	f := newFixture(t)
	f.pl = protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{
		{ID: "e1", Song: "a", Frames: 1000, SampleRate: testRate},
		{ID: "e2", Song: "gone", Frames: 700, SampleRate: testRate, Missing: true},
		{ID: "e3", Song: "b", Frames: 500, SampleRate: testRate},
	}}
	f.eng.setPlaylist(f.pl)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	for _, at := range []int64{f.t0, f.t0 + framesToNsRound(990, testRate), f.t0 + framesToNsRound(1100, testRate)} {
		for _, w := range f.eng.wanted(at) {
			if w.sha == "gone" {
				t.Fatalf("at %d the speaker wants the missing entry's song: %+v", at-f.t0, f.eng.wanted(at))
			}
		}
	}
	got := f.play(f.t0, 1600)
	checkHeard(t, got, func(i int) int64 {
		switch {
		case i < 1000:
			return int64(i)
		case i < 1500:
			return 100000 + int64(i) - 1000
		}
		return -1
	})
}
