package controller

import (
	"fmt"

	"github.com/tutti-audio/tutti/protocol"
)

// maxLinkSongs bounds the songs a link expands to: a playlist holds no
// more, so more could not be enqueued anyway.
const maxLinkSongs = maxPlaylistEntries

// songsOfRef resolves a song reference or link (protocol.ParseLink) to the
// songs it stands for, in the order they play.
func (c *Controller) songsOfRef(ref string) ([]protocol.Song, error) {
	l, err := protocol.ParseLink(ref)
	if err != nil {
		return nil, err
	}
	return c.linkSongs(l)
}

// linkSongs is what a link plays: a song; an album's songs in disc and
// track order; an artist's songs by album (year, then title), then disc
// and track; a saved playlist's songs (those the library lacks come as
// their hash with Missing set, which enqueue skips). Songs whose files are
// missing are left out of albums and artists.
func (c *Controller) linkSongs(l protocol.Link) ([]protocol.Song, error) {
	switch l.Kind {
	case protocol.LinkSong:
		s, err := c.knownSong(l.ID)
		if err != nil {
			return nil, err
		}
		return []protocol.Song{s}, nil
	case protocol.LinkAlbum, protocol.LinkArtist:
		songs, total, err := c.store.linkedSongs(l, page{limit: maxLinkSongs})
		switch {
		case err != nil:
			return nil, err
		case total == 0:
			return nil, unknownLink(l)
		case total > maxLinkSongs:
			return nil, fmt.Errorf("%s has %d songs, more than a playlist holds (%d)", l, total, maxPlaylistEntries)
		}
		return songs, nil
	case protocol.LinkPlaylist:
		p, err := c.store.savedPlaylist(l.ID)
		if err != nil {
			return nil, err
		}
		return c.store.songsOrMissing(p.Songs)
	}
	return nil, fmt.Errorf("unknown kind of link %q", l.Kind)
}

// unknownLink is the error for an album or artist link the library has no
// songs of.
func unknownLink(l protocol.Link) error {
	return fmt.Errorf("no %s %s in the library (or all its files are missing)", l.Kind, l.ID)
}

// lookup answers lookup: a song's record, or an album or artist with the
// first page of its songs (any other link: the first page of its songs).
func (c *Controller) lookup(ref string) (any, error) {
	l, err := protocol.ParseLink(ref)
	if err != nil {
		return nil, err
	}
	if l.Kind == protocol.LinkSong {
		return c.knownSong(ref)
	}
	if l.Kind != protocol.LinkAlbum && l.Kind != protocol.LinkArtist {
		songs, err := c.linkSongs(l)
		if err != nil {
			return nil, err
		}
		return protocol.LinkResult{Songs: fitPage(songs[:min(len(songs), protocol.MaxSearchPage)]), Total: len(songs)}, nil
	}
	songs, total, err := c.store.linkedSongs(l, page{limit: protocol.MaxSearchPage})
	if err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, unknownLink(l)
	}
	r := protocol.LinkResult{Songs: fitPage(songs), Total: total}
	if l.Kind == protocol.LinkAlbum {
		albums, err := c.albums(only{album: l.ID}, byArtist, page{limit: 1})
		if err != nil || len(albums.Albums) != 1 {
			return nil, fmt.Errorf("album %s: %d records, %v", l.ID, len(albums.Albums), err)
		}
		r.Album = &albums.Albums[0]
	} else {
		artists, _, err := c.store.artists(only{artist: l.ID}, page{limit: 1})
		if err != nil || len(artists) != 1 {
			return nil, fmt.Errorf("artist %s: %d records, %v", l.ID, len(artists), err)
		}
		r.Artist = &artists[0]
	}
	return r, nil
}
