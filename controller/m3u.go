package controller

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// M3U and M3U8 playlists, as music players and folders keep them: one path
// or URL a line, '#' lines for comments and the extended format's tags
// (#EXTM3U, #EXTINF:<seconds>,<title>, #PLAYLIST:<title>). Paths are
// relative to the playlist's folder or absolute; Windows tools write
// backslashes. An .m3u8 is UTF-8; an .m3u is UTF-8 where it is valid and
// Latin-1 otherwise, as the format's players read it.

// Bounds of an M3U file: the size the music folders' scan reads (a
// playlist of MaxSavedPlaylistSongs tracks with long paths and #EXTINF
// lines takes a few hundred KB); a line longer than Linux's PATH_MAX, plus
// room for an #EXTINF title, is no path.
const (
	maxM3USize = musicfolder.MaxPlaylistSize
	maxM3ULine = 4096 + 1024
)

// m3u is a parsed M3U playlist.
type m3u struct {
	Title     string   // from #PLAYLIST; "" if none
	Paths     []string // of the tracks, slash-separated, relative to the playlist's folder or absolute; at most MaxSavedPlaylistSongs
	Skipped   int      // lines that name no file: URLs of streams, overlong or broken lines
	Truncated int      // tracks beyond MaxSavedPlaylistSongs, left out
}

// parseM3U reads an M3U playlist. latin1 says the file may be Latin-1 (an
// .m3u): it is read so when it is not valid UTF-8.
func parseM3U(data []byte, latin1 bool) (m3u, error) {
	var out m3u
	if len(data) > maxM3USize {
		return out, fmt.Errorf("playlist file of %d bytes, over %d", len(data), maxM3USize)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	text := string(data)
	if !utf8.Valid(data) {
		if !latin1 {
			return out, errors.New("an .m3u8 playlist must be UTF-8")
		}
		text = fromLatin1(data)
	}
	// Lines end in \n, \r\n or, from old Macs, \r.
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case len(line) > maxM3ULine || strings.ContainsRune(line, 0):
			out.Skipped++
		case strings.HasPrefix(line, "#PLAYLIST:"):
			out.Title = protocol.CleanText(strings.TrimSpace(strings.TrimPrefix(line, "#PLAYLIST:")), protocol.MaxSongText)
		case strings.HasPrefix(line, "#"):
			// #EXTM3U, #EXTINF (the next track's length and title: the
			// library has both) and comments.
		default:
			p, ok := m3uPath(line)
			switch {
			case !ok:
				out.Skipped++
			case len(out.Paths) >= protocol.MaxSavedPlaylistSongs:
				out.Truncated++
			default:
				out.Paths = append(out.Paths, p)
			}
		}
	}
	return out, nil
}

// fromLatin1 decodes Latin-1: every byte is the code point of its value.
func fromLatin1(b []byte) string {
	runes := make([]rune, len(b))
	for i, c := range b {
		runes[i] = rune(c)
	}
	return string(runes)
}

// m3uPath turns a playlist line into a slash-separated path: a file: URL's
// path, or the line itself with backslashes made slashes. Other URLs
// (streams) name no file.
func m3uPath(line string) (string, bool) {
	if scheme, _, ok := strings.Cut(line, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
		u, err := url.Parse(line)
		if err != nil || !strings.EqualFold(u.Scheme, "file") {
			return "", false
		}
		return cleanM3UPath(u.Path)
	}
	return cleanM3UPath(strings.ReplaceAll(line, `\`, "/"))
}

// cleanM3UPath cleans a slash-separated path; "", "." and "/" name no file.
func cleanM3UPath(p string) (string, bool) {
	p = path.Clean(p)
	return p, p != "." && p != "/"
}

// m3uImport is what importing an M3U file did.
type m3uImport struct {
	Playlist   protocol.SavedPlaylistInfo `json:"playlist"`
	Unresolved []string                   `json:"unresolved,omitempty"` // paths the library has no song at, as the file gives them (the first maxUnresolvedListed)
	Missing    int                        `json:"missing"`              // how many in all
	Skipped    int                        `json:"skipped"`              // lines naming no file
	Truncated  int                        `json:"truncated"`            // tracks beyond MaxSavedPlaylistSongs
	// waiting are the absolute paths of the tracks the library has no song
	// at: the playlist is imported again when one turns up.
	waiting []string
}

// maxUnresolvedListed bounds the paths an import lists as unresolved, so
// its report and log line stay short; Missing counts them all.
const maxUnresolvedListed = 20

// m3uFile is an M3U file in a music folder.
type m3uFile struct {
	path string // absolute
	root string // the music folder it is in
}

// importM3U makes, while we hold the lease, the saved playlist of the M3U
// file f with content data: its tracks as the library's songs, found by
// resolve (the music folders' index: a file's absolute path to its song's
// hash). Tracks the library has no song for are left out and reported. The
// playlist's id comes from the file's path (importedID), so importing the
// file again (after a change) updates the same playlist, and a standby
// indexing the same folder makes the same one.
func (c *Controller) importM3U(f m3uFile, data []byte, resolve func(path string) (sha string, ok bool)) (m3uImport, error) {
	if !c.holding() {
		// A standby's saved playlists are the holder's, mirrored.
		return m3uImport{}, fmt.Errorf("%s: only the controller holding the lease imports playlists", f.path)
	}
	ext := strings.ToLower(filepath.Ext(f.path))
	parsed, err := parseM3U(data, ext != ".m3u8")
	if err != nil {
		return m3uImport{}, fmt.Errorf("%s: %w", f.path, err)
	}
	report := m3uImport{Skipped: parsed.Skipped, Truncated: parsed.Truncated}
	shas := []string{}
	dir := filepath.Dir(f.path)
	for _, track := range parsed.Paths {
		p := filepath.FromSlash(track)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		sha, ok := resolve(p)
		if !ok || !protocol.IsSongHash(sha) {
			if report.Missing++; len(report.Unresolved) < maxUnresolvedListed {
				report.Unresolved = append(report.Unresolved, track)
			}
			report.waiting = append(report.waiting, p)
			continue
		}
		shas = append(shas, sha)
	}
	title := parsed.Title
	if title == "" {
		title = protocol.CleanText(strings.TrimSuffix(filepath.Base(f.path), filepath.Ext(f.path)), protocol.MaxSongText)
	}
	if title, err = playlistTitle(title); err != nil {
		return report, err
	}
	id := importedID(f)
	p, err := c.store.savedPlaylist(id)
	switch {
	case errors.Is(err, errUnknownPlaylist):
		p = protocol.SavedPlaylist{V: protocol.Version, ID: id, Title: title, Term: c.hold.heldTerm(), Version: 1, Songs: shas}
		created, err := c.store.createSavedPlaylist(p)
		if err != nil || !created {
			return report, fmt.Errorf("%s: saved playlist %s not stored: %v", f.path, id, err)
		}
		c.publish(protocol.SavedPlaylistTopic(id), true, protocol.Encode(p))
		report.Playlist = infoOf(p)
		return report, nil
	case err != nil:
		return report, err
	case p.Title == title && slices.Equal(p.Songs, shas):
		report.Playlist = infoOf(p)
		return report, nil // unchanged: no new version
	}
	p.Title, p.Songs = title, shas
	report.Playlist, err = c.storePlaylist(p)
	return report, err
}

// importedPrefix begins the id of every imported playlist. slugID never
// makes an id with '_', so no playlist a user creates takes one of these.
const importedPrefix = "m3u_"

// importedID is the saved playlist id of the M3U file f: from its path
// within its music folder, and the folder's name, so that controllers
// mounting the same folder at different places make the same id.
func importedID(f m3uFile) string {
	rel, err := filepath.Rel(f.root, f.path)
	if err != nil {
		rel = f.path
	}
	h := sha256.Sum256([]byte(filepath.Base(f.root) + "/" + filepath.ToSlash(rel)))
	return importedPrefix + hex.EncodeToString(h[:8])
}

// imported says whether saved playlist id was imported from an M3U file.
func imported(id string) bool { return strings.HasPrefix(id, importedPrefix) }
