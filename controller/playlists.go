package controller

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// Saved playlists: the library commands that list, show and change them
// (the library loop runs them while we hold the lease), their retained
// topics, and a standby's mirror of those. They belong to the household:
// everyone who may use the library may change them, as anyone may load a
// song. Loading one into a session is an enqueue of its link.

// runPlaylistCommand runs one of the saved-playlist commands.
func (c *Controller) runPlaylistCommand(req protocol.Request) (any, error) {
	switch req.Cmd {
	case protocol.CmdPlaylists:
		offset, limit, err := offsetLimit(req, protocol.MaxPlaylistsPage)
		if err != nil {
			return nil, err
		}
		list, total, err := c.store.savedPlaylistPage(offset, limit)
		if err != nil {
			return nil, err
		}
		return protocol.SavedPlaylistsPage{Playlists: list, Offset: offset, Total: total}, nil
	case protocol.CmdPlaylistShow:
		return c.showPlaylist(req)
	case protocol.CmdPlaylistCreate:
		return c.createPlaylist(req.Title)
	case protocol.CmdPlaylistDelete:
		id, err := playlistID(req.Playlist)
		if err != nil {
			return nil, err
		}
		if err := c.refuseImported(id); err != nil { // m3uimport.go
			return nil, err
		}
		deleted, err := c.store.deleteSavedPlaylist(id)
		switch {
		case err != nil:
			return nil, fmt.Errorf("not stored: %v", err)
		case !deleted:
			return nil, fmt.Errorf("%w %q", errUnknownPlaylist, id)
		}
		c.publish(protocol.SavedPlaylistTopic(id), true, []byte{})
		return protocol.SavedPlaylistInfo{ID: id, URI: protocol.PlaylistURI(id)}, nil
	}
	return c.changePlaylist(req)
}

// offsetLimit reads a request's offset and limit; limit 0 means most.
func offsetLimit(req protocol.Request, most int) (offset, limit int, err error) {
	if req.Offset < 0 || req.Limit < 0 {
		return 0, 0, fmt.Errorf("%s: offset and limit are at least 0", req.Cmd)
	}
	limit = req.Limit
	if limit == 0 || limit > most {
		limit = most
	}
	return req.Offset, limit, nil
}

// playlistID accepts a saved playlist's id or its link.
func playlistID(ref string) (string, error) {
	if strings.HasPrefix(ref, "tutti:") {
		l, err := protocol.ParseLink(ref)
		if err != nil {
			return "", err
		}
		if l.Kind != protocol.LinkPlaylist {
			return "", fmt.Errorf("%q is no playlist link", ref)
		}
		return l.ID, nil
	}
	if !protocol.ValidPlaylistID(ref) {
		return "", fmt.Errorf("%q: a playlist id is letters, digits, '-' or '_'", ref)
	}
	return ref, nil
}

// showPlaylist answers one page of a saved playlist's songs.
func (c *Controller) showPlaylist(req protocol.Request) (protocol.SavedPlaylistPage, error) {
	id, err := playlistID(req.Playlist)
	if err != nil {
		return protocol.SavedPlaylistPage{}, err
	}
	offset, limit, err := offsetLimit(req, protocol.MaxSearchPage)
	if err != nil {
		return protocol.SavedPlaylistPage{}, err
	}
	p, err := c.store.savedPlaylist(id)
	if err != nil {
		return protocol.SavedPlaylistPage{}, err
	}
	shas := p.Songs[min(offset, len(p.Songs)):min(offset+limit, len(p.Songs))]
	songs, err := c.store.songsOrMissing(shas)
	if err != nil {
		return protocol.SavedPlaylistPage{}, err
	}
	out := protocol.SavedPlaylistPage{Playlist: infoOf(p), Songs: []protocol.SavedSong{}, Offset: offset}
	for i, s := range fitPage(songs) {
		out.Songs = append(out.Songs, protocol.SavedSong{Index: offset + i, Song: s})
	}
	return out, nil
}

func infoOf(p protocol.SavedPlaylist) protocol.SavedPlaylistInfo {
	return protocol.SavedPlaylistInfo{ID: p.ID, URI: protocol.PlaylistURI(p.ID), Title: p.Title, Songs: len(p.Songs), Version: p.Version}
}

// playlistTitle cleans a saved playlist's title, which must not be empty.
func playlistTitle(title string) (string, error) {
	title = strings.TrimSpace(protocol.CleanText(title, protocol.MaxSongText))
	if title == "" {
		return "", errors.New("a saved playlist needs a title")
	}
	return title, nil
}

// createPlaylist makes a new, empty saved playlist. Its id is made from the
// title (slugID), with a number after it if that is taken.
func (c *Controller) createPlaylist(title string) (protocol.SavedPlaylistInfo, error) {
	title, err := playlistTitle(title)
	if err != nil {
		return protocol.SavedPlaylistInfo{}, err
	}
	p := protocol.SavedPlaylist{V: protocol.Version, Title: title, Term: c.hold.heldTerm(), Version: 1, Songs: []string{}}
	base := slugID(title)
	// At most MaxSavedPlaylists ids can be taken, so one of these is free.
	for n := 1; n <= protocol.MaxSavedPlaylists+1; n++ {
		p.ID = base
		if n > 1 {
			p.ID = base + "-" + strconv.Itoa(n)
		}
		created, err := c.store.createSavedPlaylist(p)
		if err != nil {
			return protocol.SavedPlaylistInfo{}, err
		}
		if created {
			c.publish(protocol.SavedPlaylistTopic(p.ID), true, protocol.Encode(p))
			return infoOf(p), nil
		}
	}
	return protocol.SavedPlaylistInfo{}, fmt.Errorf("no free id for %q", title)
}

// maxSlug bounds the part of a playlist id made from its title, leaving room
// for a number after it within the id's limit.
const maxSlug = 48

// slugID makes an id from a title: its ASCII letters and digits in lower
// case, other runs of characters as one '-'; "playlist" when nothing is left.
func slugID(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
		if b.Len() >= maxSlug {
			break
		}
	}
	if b.Len() == 0 {
		return "playlist"
	}
	return strings.TrimSuffix(b.String()[:min(b.Len(), maxSlug)], "-")
}

// changePlaylist renames a saved playlist, or adds songs to it, or removes
// one: the new version is stored and published.
func (c *Controller) changePlaylist(req protocol.Request) (protocol.SavedPlaylistInfo, error) {
	id, err := playlistID(req.Playlist)
	if err != nil {
		return protocol.SavedPlaylistInfo{}, err
	}
	if err := c.refuseImported(id); err != nil { // m3uimport.go
		return protocol.SavedPlaylistInfo{}, err
	}
	p, err := c.store.savedPlaylist(id)
	if err != nil {
		return protocol.SavedPlaylistInfo{}, err
	}
	switch req.Cmd {
	case protocol.CmdPlaylistRename:
		if p.Title, err = playlistTitle(req.Title); err != nil {
			return protocol.SavedPlaylistInfo{}, err
		}
	case protocol.CmdPlaylistAdd:
		songs, err := c.songsOfRef(req.Song)
		if err != nil {
			return protocol.SavedPlaylistInfo{}, err
		}
		if p.Songs, err = insertSongs(p.Songs, req.Index, songs); err != nil {
			return protocol.SavedPlaylistInfo{}, err
		}
	case protocol.CmdPlaylistRemove:
		if *req.Index < 0 || *req.Index >= len(p.Songs) {
			return protocol.SavedPlaylistInfo{}, fmt.Errorf("index %d out of range: the playlist has %d songs", *req.Index, len(p.Songs))
		}
		p.Songs = slices.Delete(p.Songs, *req.Index, *req.Index+1)
	default:
		return protocol.SavedPlaylistInfo{}, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
	}
	return c.storePlaylist(p)
}

// insertSongs puts songs' hashes into shas before index (nil: at the end),
// within MaxSavedPlaylistSongs.
func insertSongs(shas []string, index *int, songs []protocol.Song) ([]string, error) {
	at := len(shas)
	if index != nil {
		if *index < 0 || *index > len(shas) {
			return nil, fmt.Errorf("index %d out of range: insert before 0 to %d", *index, len(shas))
		}
		at = *index
	}
	if len(shas)+len(songs) > protocol.MaxSavedPlaylistSongs {
		return nil, fmt.Errorf("saved playlist full: %d songs and %d more would exceed %d", len(shas), len(songs), protocol.MaxSavedPlaylistSongs)
	}
	added := make([]string, len(songs))
	for i, s := range songs {
		added[i] = s.SHA256
	}
	return slices.Insert(shas, at, added...), nil
}

// storePlaylist stores and publishes the next version of p, under our term.
func (c *Controller) storePlaylist(p protocol.SavedPlaylist) (protocol.SavedPlaylistInfo, error) {
	p.Version++
	p.Term = max(p.Term, c.hold.heldTerm())
	put, err := c.store.putSavedPlaylist(p)
	switch {
	case err != nil:
		return protocol.SavedPlaylistInfo{}, fmt.Errorf("not stored: %v", err)
	case !put:
		return protocol.SavedPlaylistInfo{}, errors.New("the saved playlist changed meanwhile: retry")
	}
	c.publish(protocol.SavedPlaylistTopic(p.ID), true, protocol.Encode(p))
	return infoOf(p), nil
}

// publishSavedPlaylists publishes every saved playlist, so standbys that
// start later mirror them. The publishes are pipelined.
func (c *Controller) publishSavedPlaylists() {
	if !c.client.IsConnectionOpen() {
		return
	}
	err := c.store.allSavedPlaylists(func(p protocol.SavedPlaylist) {
		c.client.Publish(protocol.SavedPlaylistTopic(p.ID), 1, true, protocol.Encode(p))
	})
	if err != nil {
		c.log.Error("saved playlists not published", "err", err)
	}
}

// mirrorSavedPlaylist stores a saved playlist the holder published (an
// empty payload: it deleted it). While we hold the lease, one a deposed
// holder published (of an older term) is put right; our own, echoed back
// while the library loop made a newer version, is no reason to.
func (c *Controller) mirrorSavedPlaylist(id string, payload []byte) error {
	if c.lease.leading() {
		if len(payload) == 0 {
			return nil
		}
		theirs, err := protocol.Decode[protocol.SavedPlaylist](payload)
		ours, ourErr := c.store.savedPlaylist(id)
		if ourErr == nil && (err != nil || theirs.Term < ours.Term) {
			c.log.Warn("a stale saved playlist was published; publishing ours again", "playlist", id)
			c.publish(protocol.SavedPlaylistTopic(id), true, protocol.Encode(ours))
		}
		return nil
	}
	if len(payload) == 0 {
		_, err := c.store.deleteSavedPlaylist(id)
		return err
	}
	p, err := protocol.Decode[protocol.SavedPlaylist](payload)
	if err != nil {
		return err
	}
	if err := checkSavedPlaylist(id, p); err != nil {
		return err
	}
	p.Title = protocol.CleanText(p.Title, protocol.MaxSongText)
	_, err = c.store.putSavedPlaylist(p)
	return err
}

// checkSavedPlaylist checks a mirrored saved playlist as the holder makes them.
func checkSavedPlaylist(id string, p protocol.SavedPlaylist) error {
	if p.ID != id {
		return fmt.Errorf("saved playlist %q on the topic of %q", p.ID, id)
	}
	if len(p.Songs) > protocol.MaxSavedPlaylistSongs {
		return fmt.Errorf("saved playlist %q has %d songs, over %d", id, len(p.Songs), protocol.MaxSavedPlaylistSongs)
	}
	for _, sha := range p.Songs {
		if !protocol.IsSongHash(sha) {
			return fmt.Errorf("saved playlist %q: bad song %.80q", id, sha)
		}
	}
	return nil
}
