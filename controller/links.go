package controller

import (
	"fmt"

	"github.com/tutti-audio/tutti/protocol"
)

// songsOfRef resolves a song reference or link (protocol.ParseLink) to the
// songs it stands for, in the order they play.
func (c *Controller) songsOfRef(ref string) ([]protocol.Song, error) {
	l, err := protocol.ParseLink(ref)
	if err != nil {
		return nil, err
	}
	return c.linkSongs(l)
}

// linkSongs resolves a link to its songs, in order: a song's record, or a
// saved playlist's songs (those the library lacks come as their hash with
// Missing set, which enqueue skips).
func (c *Controller) linkSongs(l protocol.Link) ([]protocol.Song, error) {
	switch l.Kind {
	case protocol.LinkSong:
		song, err := c.knownSong(l.ID)
		if err != nil {
			return nil, err
		}
		return []protocol.Song{song}, nil
	case protocol.LinkPlaylist:
		p, err := c.store.savedPlaylist(l.ID)
		if err != nil {
			return nil, err
		}
		return c.store.songsOrMissing(p.Songs)
	}
	return nil, fmt.Errorf("%s: this controller cannot resolve %s links", l, l.Kind)
}
