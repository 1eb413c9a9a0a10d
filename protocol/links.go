package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Stable links to what a person plays: a song, an album, an artist or a
// saved playlist. Every request that takes a song takes any of them; the
// controller expands album, artist and playlist links into their songs.
const (
	LinkSong     = "song"
	LinkAlbum    = "album"
	LinkArtist   = "artist"
	LinkPlaylist = "playlist"
)

// Link is a parsed tutti: link.
type Link struct {
	Kind   string        // LinkSong, LinkAlbum, LinkArtist or LinkPlaylist
	ID     string        // a song's sha256; an album's, artist's or playlist's id
	Offset time.Duration // into a song (#m:ss); 0 for the others
}

// String writes l as its link.
func (l Link) String() string { return "tutti:" + l.Kind + ":" + l.ID }

// AlbumURI, ArtistURI and PlaylistURI are the links to those ids.
func AlbumURI(id string) string    { return Link{Kind: LinkAlbum, ID: id}.String() }
func ArtistURI(id string) string   { return Link{Kind: LinkArtist, ID: id}.String() }
func PlaylistURI(id string) string { return Link{Kind: LinkPlaylist, ID: id}.String() }

// AlbumID is an album's id: from its album artist (or, when the songs have
// none, their artist) and its title, case and spacing aside, so the same
// album scanned anywhere, by any controller, has the same link.
func AlbumID(albumArtist, album string) string {
	return nameID(fold(albumArtist) + "\x00" + fold(album))
}

// ArtistID is an artist's id, from the name, case and spacing aside.
func ArtistID(name string) string { return nameID(fold(name)) }

func fold(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

func nameID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// maxPlaylistID bounds a saved playlist's id, in bytes.
const maxPlaylistID = 64

// ParseLink accepts a song reference as ParseSongRef does (a bare sha256
// too), or tutti:album:<id>, tutti:artist:<id> or tutti:playlist:<id>.
func ParseLink(ref string) (Link, error) {
	ref = strings.TrimSpace(ref)
	kind, id, ok := strings.Cut(strings.TrimPrefix(ref, "tutti:"), ":")
	if !ok || !strings.HasPrefix(ref, "tutti:") || kind == LinkSong {
		sha, offset, err := ParseSongRef(ref)
		if err != nil {
			return Link{}, fmt.Errorf("%q: want a song's sha256, or a tutti:song:, tutti:album:, tutti:artist: or tutti:playlist: link", ref)
		}
		return Link{Kind: LinkSong, ID: sha, Offset: offset}, nil
	}
	switch kind {
	case LinkAlbum, LinkArtist:
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
			return Link{}, fmt.Errorf("%q: an %s id is 16 lowercase hex digits", ref, kind)
		}
	case LinkPlaylist:
		if !ValidPlaylistID(id) {
			return Link{}, fmt.Errorf("%q: a playlist id is 1 to %d letters, digits, '-' or '_'", ref, maxPlaylistID)
		}
	default:
		return Link{}, fmt.Errorf("%q: unknown kind of link %q", ref, kind)
	}
	return Link{Kind: kind, ID: id}, nil
}

// ValidPlaylistID says whether id may name a saved playlist.
func ValidPlaylistID(id string) bool {
	if id == "" || len(id) > maxPlaylistID {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
