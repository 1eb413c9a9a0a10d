package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// libraryTable prints a page of the library as a table with the links to
// copy: search's and tracks' songs, artists, albums (and recent's),
// genres; ok is false for other results. Every text comes from someone's
// tags: it is cleaned again before it reaches the terminal.
func libraryTable(cmd string, result json.RawMessage) (table string, ok bool) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	var shown, offset, total int
	var what string
	clean := func(s string) string { return protocol.CleanText(s, protocol.MaxSongText) }
	switch cmd {
	case protocol.CmdSearch, protocol.CmdTracks:
		var r protocol.SearchResult
		if json.Unmarshal(result, &r) != nil {
			return "", false
		}
		what, shown, offset, total = "songs", len(r.Songs), r.Offset, r.Total
		fmt.Fprintln(w, "  #\tTITLE\tARTIST\tALBUM\tLENGTH\tLINK")
		for _, s := range r.Songs {
			s = protocol.CleanSong(s)
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\n", trackNumber(s), s.Title, s.Artist, s.Album,
				protocol.FormatPosition(time.Duration(s.DurationNs)), protocol.SongURI(s.SHA256))
		}
	case protocol.CmdArtists:
		var r protocol.ArtistsResult
		if json.Unmarshal(result, &r) != nil {
			return "", false
		}
		what, shown, offset, total = "artists", len(r.Artists), r.Offset, r.Total
		fmt.Fprintln(w, "  ARTIST\tALBUMS\tSONGS\tLINK")
		for _, a := range r.Artists {
			fmt.Fprintf(w, "  %s\t%d\t%d\t%s\n", clean(a.Name), a.Albums, a.Songs, protocol.ArtistURI(a.ID))
		}
	case protocol.CmdAlbums, protocol.CmdRecent:
		var r protocol.AlbumsResult
		if json.Unmarshal(result, &r) != nil {
			return "", false
		}
		what, shown, offset, total = "albums", len(r.Albums), r.Offset, r.Total
		fmt.Fprintln(w, "  ALBUM\tARTIST\tYEAR\tSONGS\tLINK")
		for _, a := range r.Albums {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%s\n", clean(a.Title), clean(a.Artist), orBlank(a.Year), a.Songs, protocol.AlbumURI(a.ID))
		}
	case protocol.CmdGenres:
		var r protocol.GenresResult
		if json.Unmarshal(result, &r) != nil {
			return "", false
		}
		what, shown, offset, total = "genres", len(r.Genres), r.Offset, r.Total
		fmt.Fprintln(w, "  GENRE\tSONGS")
		for _, g := range r.Genres {
			fmt.Fprintf(w, "  %s\t%d\n", protocol.CleanText(g.Name, protocol.MaxGenreText), g.Songs)
		}
	default:
		return "", false
	}
	if shown == 0 {
		return fmt.Sprintf("no %s (of %d)", what, total), true
	}
	w.Flush()
	head := fmt.Sprintf("%s %d-%d of %d\n", what, offset+1, offset+shown, total)
	if next := offset + shown; next < total {
		fmt.Fprintf(&b, "  (more: --offset %d)\n", next)
	}
	return head + strings.TrimSuffix(b.String(), "\n"), true
}

// trackNumber is a song's disc-track number, as much of it as is known.
func trackNumber(s protocol.Song) string {
	switch {
	case s.Track == 0:
		return "-"
	case s.Disc == 0:
		return strconv.Itoa(s.Track)
	}
	return fmt.Sprintf("%d-%d", s.Disc, s.Track)
}

// orBlank prints n, or nothing for 0 (unknown).
func orBlank(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
