package controller

import (
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// A playing entry whose song goes missing ends at the scheduled instant,
// and the next entry plays from its start then; the entries around it keep
// their places. Coming back, it is an entry like any other again.
func TestMarkMissingEndsThePlayingEntryAtTheScheduledInstant(t *testing.T) {
	const sec = int64(time.Second)
	s := newSession("home", "", protocol.Everyone)
	for i, sha := range []string{"a", "b", "c"} {
		s.Playlist.Entries = append(s.Playlist.Entries, protocol.Entry{ID: "e" + string(rune('1'+i)), Song: sha, Frames: 10 * 44100, SampleRate: 44100})
	}
	s.reanchor(100*sec, 0, 0, protocol.Playing)
	now, lead := 113*sec, 150*time.Millisecond // 3 s into b
	next, changed := markMissing(now, lead, s, map[string]bool{"b": true})
	if !changed || !next.Playlist.Entries[1].Missing || next.Playlist.Entries[0].Missing || next.Playlist.Entries[2].Missing {
		t.Fatalf("changed %v, entries %+v", changed, next.Playlist.Entries)
	}
	if next.Playlist.Version != s.Playlist.Version+1 || next.State.Seq != s.State.Seq+1 {
		t.Errorf("versions: playlist %d, seq %d", next.Playlist.Version, next.State.Seq)
	}
	at := now + int64(lead)
	if idx, pos, st := next.cursor(at); idx != 2 || pos != 0 || st != protocol.Playing {
		t.Errorf("at the scheduled instant: entry %d at %d %s, want entry 2 from its start", idx, pos, st)
	}
	if _, again := markMissing(now, lead, next, map[string]bool{"b": true}); again {
		t.Error("marking a missing song missing again changed the session")
	}
	back, changed := markMissing(at+sec, lead, next, map[string]bool{"b": false})
	if !changed || back.Playlist.Entries[1].Missing {
		t.Errorf("back: changed %v, entries %+v", changed, back.Playlist.Entries)
	}
	if idx, pos, _ := back.cursor(at + sec + int64(lead)); idx != 2 || pos != sec+int64(lead) {
		t.Errorf("after it came back: entry %d at %d, want c playing on", idx, pos)
	}
}
