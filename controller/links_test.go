package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// TestLinkSongs: a link plays a song, an album in disc and track order, an
// artist's albums by year; unknown links, saved playlists (not known here)
// and artists of more songs than a playlist holds are refused with errors
// that say so.
func TestLinkSongs(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	lib := newTaggedLibrary()
	lib.addTo(t, st)
	c := &Controller{store: st, songsURL: "http://127.0.0.1:1/songs/"}

	formation := lib.find("Formation", "Beyoncé")
	songs, err := c.linkSongs(protocol.Link{Kind: protocol.LinkSong, ID: formation.SHA256})
	if err != nil || len(songs) != 1 || songs[0].SHA256 != formation.SHA256 {
		t.Fatalf("song link: %v, %v", titles(songs), err)
	}
	album, _ := protocol.ParseLink(protocol.AlbumURI(protocol.AlbumID("beyoncé", "BEYONCÉ")))
	songs, err = c.linkSongs(album)
	if err != nil || !slices.Equal(titles(songs), []string{"Formation/Beyoncé", "Drunk in Love/Beyoncé", "Partition/Beyoncé"}) {
		t.Fatalf("album link: %v, %v", titles(songs), err)
	}
	artist, _ := protocol.ParseLink(protocol.ArtistURI(protocol.ArtistID("Artist 05")))
	songs, err = c.linkSongs(artist)
	if err != nil || len(songs) != testArtistSongs || songs[0].Album != "Album C" || songs[0].Title != "Song 1-1" ||
		songs[testArtistSongs-1].Album != "Album A" || songs[testArtistSongs-1].Title != fmt.Sprintf("Song %d-%d", testDiscs, testTracks) {
		t.Fatalf("artist link: %v, %v", titles(songs), err)
	}

	// Names count as shown: cleaned of control characters and spacing.
	messy := protocol.Song{SHA256: hashOf([]byte("messy")), Title: "Sinnerman", Artist: " Nina\tSimone\x00 ", Album: "Pastel\x1bBlues",
		Format: "flac", Size: 1, Frames: 1, SampleRate: 44100}
	if err := st.addSong(messy, 1); err != nil {
		t.Fatal(err)
	}
	songs, err = c.linkSongs(protocol.Link{Kind: protocol.LinkAlbum, ID: protocol.AlbumID("Nina Simone", "Pastel Blues")})
	if err != nil || len(songs) != 1 || songs[0].SHA256 != messy.SHA256 {
		t.Fatalf("a song tagged with control characters, by its shown names: %v, %v", titles(songs), err)
	}

	prolific := "Prolific"
	for i := range maxLinkSongs + 1 {
		s := protocol.Song{SHA256: hashOf(fmt.Append(nil, "prolific", i)), Title: fmt.Sprint("Take ", i), Artist: prolific, Album: "Outtakes",
			Format: "mp3", Size: 1, Frames: 1, SampleRate: 44100}
		if err := st.addSong(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	unknown := strings.Repeat("0", 16)
	for _, tc := range []struct {
		link protocol.Link
		want string
	}{
		{protocol.Link{Kind: protocol.LinkSong, ID: hashOf([]byte("nothing"))}, "unknown song"},
		{protocol.Link{Kind: protocol.LinkAlbum, ID: unknown}, "no album " + unknown + " in the library"},
		{protocol.Link{Kind: protocol.LinkArtist, ID: unknown}, "no artist " + unknown + " in the library"},
		{protocol.Link{Kind: protocol.LinkPlaylist, ID: "mix"}, `unknown saved playlist "mix"`},
		{protocol.Link{Kind: protocol.LinkArtist, ID: protocol.ArtistID(prolific)}, fmt.Sprintf("has %d songs, more than a playlist holds (%d)", maxLinkSongs+1, maxPlaylistEntries)},
	} {
		if songs, err := c.linkSongs(tc.link); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %d songs, %v; want an error with %q", tc.link, len(songs), err, tc.want)
		}
	}
}
