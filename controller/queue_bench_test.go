package controller

import (
	"fmt"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// BenchmarkLoadSavedPlaylist: what the session loop does for an enqueue of
// a full saved playlist (MaxSavedPlaylistSongs songs, each with 30-byte
// texts): read it and its songs' records from a real SQLite store, add
// them to an empty session in one change, and encode the playlist to
// publish it.
func BenchmarkLoadSavedPlaylist(b *testing.B) {
	st := openTestStore(b, b.TempDir())
	defer st.Close()
	p := protocol.SavedPlaylist{V: protocol.Version, ID: "full", Title: "Full", Term: 1, Version: 1}
	for i := range protocol.MaxSavedPlaylistSongs {
		s := *testSong(i, 44100*240)
		s.Title, s.Artist, s.Album, s.Format = fmt.Sprintf("%030d", i), fmt.Sprintf("%030d", i), "album", "flac"
		if err := st.addSong(s, int64(i)); err != nil {
			b.Fatal(err)
		}
		p.Songs = append(p.Songs, s.SHA256)
	}
	if created, err := st.createSavedPlaylist(p); !created || err != nil {
		b.Fatal(created, err)
	}
	empty := newTestSession(b)
	b.ReportAllocs()
	for b.Loop() {
		saved, err := st.savedPlaylist("full")
		if err != nil {
			b.Fatal(err)
		}
		songs, err := st.songsOrMissing(saved.Songs)
		if err != nil {
			b.Fatal(err)
		}
		next, _, err := apply(0, lead, empty, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, songs, nil)
		if err != nil || len(next.Playlist.Entries) != protocol.MaxSavedPlaylistSongs {
			b.Fatal(len(next.Playlist.Entries), err)
		}
		if n := len(protocol.Encode(next.Playlist)); n > protocol.MaxPayload {
			b.Fatalf("playlist of %d bytes", n)
		}
	}
}
