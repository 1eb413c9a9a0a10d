package controller

import (
	"cmp"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// The library is browsed by artist and album through ids kept in indexed
// columns of the songs table (album_id, artist_id), which songArgs derives
// from a song's tags whenever it is written.

// artistID is the id of the artist a song is listed under: its album artist
// when it has one, so a compilation's songs stay under "Various Artists"
// instead of making one-song artists, else its artist; "" when neither is
// known. Names count as they are shown (cleaned), so an id made from a
// shown name (protocol.ArtistID) finds them.
func artistID(albumArtist, artist string) string {
	name := listedName(albumArtist, artist)
	if name == "" {
		return ""
	}
	return protocol.ArtistID(name)
}

// albumID is the id of a song's album (protocol.AlbumID, of names as
// artistID takes them): "" when its album is not known, so untagged songs
// make no album.
func albumID(albumArtist, artist, album string) string {
	album = protocol.CleanText(album, protocol.MaxSongText)
	if album == "" {
		return ""
	}
	return protocol.AlbumID(listedName(albumArtist, artist), album)
}

// listedName is the cleaned name of the artist a song is listed under.
func listedName(albumArtist, artist string) string {
	return cmp.Or(protocol.CleanText(albumArtist, protocol.MaxSongText), protocol.CleanText(artist, protocol.MaxSongText))
}

// browsable picks the songs browse lists: not missing (every file of theirs
// gone from the music folders), no placeholders (records a standby holds
// for a mirrored playlist until the song's own record arrives) and no
// conversions (convert.go: listed as their M4A). row names the row in a
// trigger ("new."); "" in a query.
func browsable(row string) string {
	return row + `missing = 0 AND ` + row + `format != '' AND ` + row + `derived_from = ''`
}

// listedArtist is the artist name a song (row as browsable's) is listed
// under, as artistID takes it.
func listedArtist(row string) string {
	return `iif(trim(` + row + `album_artist) != '', ` + row + `album_artist, ` + row + `artist)`
}

const browseIndexes = `
CREATE INDEX IF NOT EXISTS songs_artist ON songs (artist_id, album_id);
CREATE INDEX IF NOT EXISTS songs_album ON songs (album_id, disc, track);
`

// songGroups sums up the browsable songs by artist, album and genre (case
// aside): browse lists artists, albums and genres from its few rows per
// album instead of grouping every song for each request (at 20,000 songs,
// tens of milliseconds a request). Triggers keep each group in step with
// its songs: a song added counts in; a song changed or removed has its
// group recounted from its songs (through the songs_artist index).
var songGroups = `
CREATE TABLE song_groups (
	artist_id TEXT NOT NULL,
	album_id  TEXT NOT NULL,
	genre     TEXT NOT NULL COLLATE NOCASE,
	artist    TEXT NOT NULL, -- the name listed
	album     TEXT NOT NULL,
	year      INTEGER NOT NULL, -- the latest of its songs'
	songs     INTEGER NOT NULL,
	added_ns  INTEGER NOT NULL, -- when its latest song was added
	PRIMARY KEY (artist_id, album_id, genre)
);
CREATE INDEX song_groups_album ON song_groups (album_id);
INSERT INTO song_groups ` + groupSongs + ` WHERE ` + browsable("") + ` GROUP BY artist_id, album_id, genre COLLATE NOCASE;
`

// groupSongs makes song_groups rows of songs.
var groupSongs = `SELECT artist_id, album_id, min(genre), min(` + listedArtist("") + `), min(album), max(year), count(*), max(added_ns) FROM songs`

// regroup recounts the song group of the row called row (new or old).
func regroup(row string) string {
	return strings.NewReplacer("ROW", row).Replace(`
	DELETE FROM song_groups WHERE artist_id = ROW.artist_id AND album_id = ROW.album_id AND genre = ROW.genre;
	INSERT INTO song_groups ` + groupSongs + ` WHERE artist_id = ROW.artist_id AND album_id = ROW.album_id
		AND genre = ROW.genre COLLATE NOCASE AND ` + browsable("") + ` GROUP BY artist_id, album_id;`)
}

// groupedColumns are the songs' columns a song group is made of: an update
// of others (a measured ReplayGain, a file's new path) leaves the groups be.
const groupedColumns = `artist_id, album_id, genre, artist, album_artist, album, year, added_ns, missing, format, derived_from`

// songGroupTriggers keep song_groups in step. An added song is counted in
// without recounting its group, which would make adding the songs of one
// large group (thousands of untagged files) quadratic; names, year and
// added time follow groupSongs's min and max.
var songGroupTriggers = `
CREATE TRIGGER IF NOT EXISTS song_groups_insert AFTER INSERT ON songs WHEN ` + browsable("new.") + ` BEGIN
	INSERT INTO song_groups VALUES (new.artist_id, new.album_id, new.genre, ` + listedArtist("new.") + `,
		new.album, new.year, 1, new.added_ns)
	ON CONFLICT (artist_id, album_id, genre) DO UPDATE SET
		genre = iif(excluded.genre < genre COLLATE BINARY, excluded.genre, genre),
		artist = min(artist, excluded.artist), album = min(album, excluded.album), year = max(year, excluded.year),
		songs = songs + 1, added_ns = max(added_ns, excluded.added_ns);
END;
CREATE TRIGGER IF NOT EXISTS song_groups_delete AFTER DELETE ON songs BEGIN` + regroup("old") + `
END;
DROP TRIGGER IF EXISTS song_groups_update;
CREATE TRIGGER song_groups_update AFTER UPDATE OF ` + groupedColumns + ` ON songs BEGIN` + regroup("old") + regroup("new") + `
END;
`

// prepareBrowse readies a database for browse and search: the full-text
// index, the ids of songs stored before ids existed, the indexes, and the
// song groups with their triggers.
func prepareBrowse(db *sql.DB) error {
	if err := indexSongText(db); err != nil { // store_search.go
		return err
	}
	if err := fillBrowseIDs(db); err != nil {
		return err
	}
	if _, err := db.Exec(browseIndexes); err != nil {
		return err
	}
	if err := createFilled(db, "song_groups", songGroups); err != nil {
		return err
	}
	_, err := db.Exec(songGroupTriggers)
	return err
}

// createFilled creates table name and fills it with schema, in one
// transaction (a crash leaves no empty table behind), unless it exists.
func createFilled(db *sql.DB, name, schema string) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var exists int
	if err := tx.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = ?`, name).Scan(&exists); err != nil || exists > 0 {
		return err
	}
	if _, err := tx.Exec(schema); err != nil {
		return err
	}
	return tx.Commit()
}

// fillBrowseIDs computes the ids of songs stored without them.
func fillBrowseIDs(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT rowid, album_artist, artist, album FROM songs
		WHERE (album_id = '' AND trim(album) != '') OR (artist_id = '' AND trim(` + listedArtist("") + `) != '')`)
	if err != nil {
		return err
	}
	type ids struct {
		rowid         int64
		album, artist string
	}
	var todo []ids
	for rows.Next() {
		var r ids
		var albumArtist, artist, album string
		if err := rows.Scan(&r.rowid, &albumArtist, &artist, &album); err != nil {
			rows.Close()
			return err
		}
		r.album, r.artist = albumID(albumArtist, artist, album), artistID(albumArtist, artist)
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		if _, err := tx.Exec(`UPDATE songs SET album_id = ?, artist_id = ? WHERE rowid = ?`, r.album, r.artist, r.rowid); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// page is which part of a list a request asks for.
type page struct{ offset, limit int }

// only narrows a list to the songs of a genre, an artist or an album (by
// id); "" leaves that open.
type only struct{ genre, artist, album string }

// where is the WHERE clause picking the song groups o allows, with its
// arguments.
func (o only) where() (string, []any) {
	clause, args := `1`, []any{}
	for _, f := range []struct{ cond, value string }{
		{` AND genre = ?`, o.genre},
		{` AND artist_id = ?`, o.artist},
		{` AND album_id = ?`, o.album},
	} {
		if f.value != "" {
			clause += f.cond
			args = append(args, f.value)
		}
	}
	return clause, args
}

// count is the number of rows query (with args) gives.
func (st *store) count(query string, args []any) (int, error) {
	var n int
	err := st.db.QueryRow(`SELECT count(*) FROM (`+query+`)`, args...).Scan(&n)
	return n, err
}

// artists lists the artists o allows, by name.
func (st *store) artists(o only, p page) ([]protocol.Artist, int, error) {
	where, args := o.where()
	grouped := `SELECT artist_id, min(artist) AS name, count(DISTINCT nullif(album_id, '')) AS albums,
		sum(songs) AS songs FROM song_groups WHERE ` + where + ` AND artist_id != '' GROUP BY artist_id`
	total, err := st.count(grouped, args)
	if err != nil {
		return nil, 0, err
	}
	rows, err := st.db.Query(grouped+` ORDER BY name COLLATE NOCASE, artist_id LIMIT ? OFFSET ?`, append(args, p.limit, p.offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []protocol.Artist{}
	for rows.Next() {
		var a protocol.Artist
		if err := rows.Scan(&a.ID, &a.Name, &a.Albums, &a.Songs); err != nil {
			return nil, 0, err
		}
		a.URI, a.Name = protocol.ArtistURI(a.ID), protocol.CleanText(a.Name, protocol.MaxSongText)
		out = append(out, a)
	}
	return out, total, rows.Err()
}

// The orders of albums: albums lists them by artist, recent the most
// recently added first.
const (
	byArtist = `artist COLLATE NOCASE, title COLLATE NOCASE, album_id`
	byAdded  = `added_ns DESC, album_id`
)

// albums lists the albums o allows, in order (byArtist or byAdded). An
// album's cover is its first song's, which coverSongs names.
func (st *store) albums(o only, order string, p page) (list []protocol.Album, coverSongs []string, total int, err error) {
	where, args := o.where()
	grouped := `SELECT album_id, min(album) AS title, min(artist) AS artist, min(artist_id) AS artist_id,
		max(year) AS year, sum(songs) AS songs, max(added_ns) AS added_ns
		FROM song_groups WHERE ` + where + ` AND album_id != '' GROUP BY album_id`
	if total, err = st.count(grouped, args); err != nil {
		return nil, nil, 0, err
	}
	// The first song is looked up for the page's albums alone.
	rows, err := st.db.Query(`SELECT g.*, (SELECT sha256 FROM songs s WHERE s.album_id = g.album_id AND `+browsable("")+`
			ORDER BY disc, track, title COLLATE NOCASE, sha256 LIMIT 1)
		FROM (`+grouped+` ORDER BY `+order+` LIMIT ? OFFSET ?) g ORDER BY `+order, append(args, p.limit, p.offset)...)
	if err != nil {
		return nil, nil, 0, err
	}
	defer rows.Close()
	list = []protocol.Album{}
	for rows.Next() {
		var a protocol.Album
		var artistID, cover string
		if err := rows.Scan(&a.ID, &a.Title, &a.Artist, &artistID, &a.Year, &a.Songs, &a.AddedNs, &cover); err != nil {
			return nil, nil, 0, err
		}
		a.URI, a.ArtistURI = protocol.AlbumURI(a.ID), protocol.ArtistURI(artistID)
		a.Title, a.Artist = protocol.CleanText(a.Title, protocol.MaxSongText), protocol.CleanText(a.Artist, protocol.MaxSongText)
		list = append(list, a)
		coverSongs = append(coverSongs, cover)
	}
	return list, coverSongs, total, rows.Err()
}

// genres lists the genres, by name, with their songs.
func (st *store) genres(p page) ([]protocol.Genre, int, error) {
	grouped := `SELECT min(genre COLLATE BINARY) AS name, sum(songs) AS songs FROM song_groups WHERE genre != '' GROUP BY genre`
	total, err := st.count(grouped, nil)
	if err != nil {
		return nil, 0, err
	}
	rows, err := st.db.Query(grouped+` ORDER BY name COLLATE NOCASE LIMIT ? OFFSET ?`, p.limit, p.offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []protocol.Genre{}
	for rows.Next() {
		var g protocol.Genre
		if err := rows.Scan(&g.Name, &g.Songs); err != nil {
			return nil, 0, err
		}
		g.Name = protocol.CleanText(g.Name, protocol.MaxGenreText)
		out = append(out, g)
	}
	return out, total, rows.Err()
}

// linkedSongs lists the songs of an album (l.Kind LinkAlbum) in disc and
// track order, or of an artist (LinkArtist) by album (year, then title),
// then in disc and track order; its songs without an album come last.
func (st *store) linkedSongs(l protocol.Link, p page) ([]protocol.Song, int, error) {
	var songs, order string
	switch l.Kind {
	case protocol.LinkAlbum:
		songs = `SELECT * FROM songs WHERE album_id = ? AND ` + browsable("")
		order = `disc, track, title COLLATE NOCASE, sha256`
	case protocol.LinkArtist:
		songs = `SELECT *, max(year) OVER (PARTITION BY album_id) AS album_year FROM songs WHERE artist_id = ? AND ` + browsable("")
		order = `album_id = '', album_year, album COLLATE NOCASE, album_id, disc, track, title COLLATE NOCASE, sha256`
	default:
		return nil, 0, fmt.Errorf("%s links have no songs of their own here", l.Kind)
	}
	total, err := st.count(songs, []any{l.ID})
	if err != nil {
		return nil, 0, err
	}
	rows, err := st.db.Query(`SELECT `+songColumns+` FROM (`+songs+`) ORDER BY `+order+` LIMIT ? OFFSET ?`, l.ID, p.limit, p.offset)
	if err != nil {
		return nil, 0, err
	}
	list, err := collectSongs(rows)
	return list, total, err
}
