package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// TestBrowseRequests: albums takes an optional artist link, tracks one
// link; the others take no arguments.
func TestBrowseRequests(t *testing.T) {
	link := protocol.ArtistURI(protocol.ArtistID("Nina Simone"))
	for _, c := range []struct {
		cmd, line, link string
	}{
		{protocol.CmdAlbums, "", ""},
		{protocol.CmdAlbums, link, link},
		{protocol.CmdTracks, link, link},
		{protocol.CmdArtists, "", ""},
		{protocol.CmdRecent, "", ""},
		{protocol.CmdGenres, "", ""},
	} {
		reqs, err := buildRequests(c.cmd, strings.Fields(c.line))
		if err != nil || len(reqs) != 1 || reqs[0].Cmd != c.cmd || reqs[0].Link != c.link {
			t.Errorf("%s %s: %+v, %v", c.cmd, c.line, reqs, err)
		}
	}
	for _, c := range []struct{ cmd, line string }{
		{protocol.CmdAlbums, link + " " + link},
		{protocol.CmdTracks, ""},
		{protocol.CmdTracks, link + " x"},
		{protocol.CmdArtists, "x"},
		{protocol.CmdGenres, "rock"},
	} {
		if reqs, err := buildRequests(c.cmd, strings.Fields(c.line)); err == nil {
			t.Errorf("%s %q accepted: %+v", c.cmd, c.line, reqs)
		}
	}
}

// TestLibraryTable: the library's pages print as tables with the links to
// copy, the next page's offset when there is one, and no terminal escapes
// from anyone's tags.
func TestLibraryTable(t *testing.T) {
	artistID, albumID := protocol.ArtistID("Nina Simone"), protocol.AlbumID("Nina Simone", "Pastel Blues")
	sha := strings.Repeat("ab", 32)
	for _, c := range []struct {
		cmd    string
		result any
		want   []string
	}{
		{protocol.CmdArtists, protocol.ArtistsResult{Artists: []protocol.Artist{{ID: artistID, Name: "Nina Simone\x1b[2J", Albums: 2, Songs: 19}}, Offset: 10, Total: 30},
			[]string{"artists 11-11 of 30\n", "ARTIST", "Nina Simone [2J  2       19     tutti:artist:" + artistID, "(more: --offset 11)"}},
		{protocol.CmdAlbums, protocol.AlbumsResult{Albums: []protocol.Album{{ID: albumID, Title: "Pastel Blues", Artist: "Nina Simone", Year: 1965, Songs: 9}}, Total: 1},
			[]string{"albums 1-1 of 1\n", "Pastel Blues  Nina Simone  1965  9", "tutti:album:" + albumID}},
		{protocol.CmdRecent, protocol.AlbumsResult{Albums: []protocol.Album{{ID: albumID, Title: "Pastel Blues", Songs: 9}}, Total: 1},
			[]string{"albums 1-1 of 1\n", "tutti:album:" + albumID}},
		{protocol.CmdTracks, protocol.SearchResult{Songs: []protocol.Song{{SHA256: sha, Title: "Sinnerman", Artist: "Nina Simone", Album: "Pastel Blues",
			Disc: 1, Track: 9, DurationNs: 622e9}}, Total: 1}, []string{"songs 1-1 of 1\n", "1-9", "Sinnerman", "10:22", "tutti:song:" + sha}},
		{protocol.CmdSearch, protocol.SearchResult{Total: 0}, []string{"no songs (of 0)"}},
		{protocol.CmdGenres, protocol.GenresResult{Genres: []protocol.Genre{{Name: "Jazz", Songs: 120}, {Name: "Soul", Songs: 3}}, Total: 2},
			[]string{"genres 1-2 of 2\n", "GENRE", "Jazz   120", "Soul   3"}},
	} {
		b, _ := json.Marshal(c.result)
		out := summarize(c.cmd, b)
		for _, want := range c.want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: %q lacks %q", c.cmd, out, want)
			}
		}
		if strings.ContainsAny(out, "\x1b") {
			t.Errorf("%s: an escape printed: %q", c.cmd, out)
		}
	}
	if out := summarize(protocol.CmdStatus, json.RawMessage(`{"total":3}`)); out != `{"total":3}` {
		t.Errorf("other results print as JSON: %q", out)
	}
}
