package controller

import (
	"fmt"

	"github.com/tutti-audio/tutti/protocol"
)

// browse answers the library's browse commands (artists, albums, tracks,
// recent, genres): one page each, fitted under the message limit.
func (c *Controller) browse(req protocol.Request) (any, error) {
	if len(req.Genre) > protocol.MaxGenreText {
		return nil, fmt.Errorf("%s: genre longer than %d bytes", req.Cmd, protocol.MaxGenreText)
	}
	most := protocol.MaxBrowsePage
	if req.Cmd == protocol.CmdTracks {
		most = protocol.MaxSearchPage
	}
	p, err := pageOf(req, most)
	if err != nil {
		return nil, err
	}
	switch req.Cmd {
	case protocol.CmdArtists:
		list, total, err := c.store.artists(only{genre: req.Genre}, p)
		return protocol.ArtistsResult{Artists: fitPage(list), Offset: p.offset, Total: total}, err
	case protocol.CmdAlbums:
		o := only{genre: req.Genre}
		if req.Link != "" {
			l, err := linkOf(req, protocol.LinkArtist)
			if err != nil {
				return nil, err
			}
			o.artist = l.ID
		}
		return c.albums(o, byArtist, p)
	case protocol.CmdRecent:
		return c.albums(only{}, byAdded, p)
	case protocol.CmdTracks:
		l, err := linkOf(req, protocol.LinkAlbum, protocol.LinkArtist)
		if err != nil {
			return nil, err
		}
		songs, total, err := c.store.linkedSongs(l, p)
		if err == nil && total == 0 {
			err = unknownLink(l)
		}
		return protocol.SearchResult{Songs: fitPage(songs), Offset: p.offset, Total: total}, err
	case protocol.CmdGenres:
		list, total, err := c.store.genres(p)
		return protocol.GenresResult{Genres: fitPage(list), Offset: p.offset, Total: total}, err
	}
	return nil, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
}

// albums is a page of the albums o allows, in order, with their covers.
func (c *Controller) albums(o only, order string, p page) (protocol.AlbumsResult, error) {
	list, covers, total, err := c.store.albums(o, order, p)
	for i, sha := range covers {
		list[i].Cover = protocol.ArtURL(c.songsURL, sha)
	}
	return protocol.AlbumsResult{Albums: fitPage(list), Offset: p.offset, Total: total}, err
}

// linkOf parses req's link, which must be of one of kinds.
func linkOf(req protocol.Request, kinds ...string) (protocol.Link, error) {
	l, err := protocol.ParseLink(req.Link)
	if err != nil {
		return l, fmt.Errorf("%s: %w", req.Cmd, err)
	}
	for _, k := range kinds {
		if l.Kind == k {
			return l, nil
		}
	}
	want := "an artist's link"
	if len(kinds) > 1 {
		want = "an album's or an artist's link"
	}
	return l, fmt.Errorf("%s takes %s, not %s", req.Cmd, want, l)
}
