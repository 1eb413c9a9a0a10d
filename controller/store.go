package controller

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/tutti-audio/tutti/protocol"
)

// store keeps the library, the sessions and their playlists in SQLite. Every
// method is one transaction, so a crash at any moment leaves either the old
// or the new state.
type store struct {
	db        *sql.DB
	maxRanked int // the most matches a search ranks by bm25 (store_search.go)
}

const schema = `
CREATE TABLE IF NOT EXISTS songs (
	sha256      TEXT PRIMARY KEY,
	title       TEXT NOT NULL,
	artist      TEXT NOT NULL,
	album       TEXT NOT NULL,
	format      TEXT NOT NULL,
	size        INTEGER NOT NULL,
	frames      INTEGER NOT NULL,
	sample_rate INTEGER NOT NULL,
	added_ns    INTEGER NOT NULL,
	album_artist TEXT NOT NULL DEFAULT '',
	track        INTEGER NOT NULL DEFAULT 0,
	track_total  INTEGER NOT NULL DEFAULT 0,
	disc         INTEGER NOT NULL DEFAULT 0,
	disc_total   INTEGER NOT NULL DEFAULT 0,
	year         INTEGER NOT NULL DEFAULT 0,
	genre        TEXT NOT NULL DEFAULT '',
	replaygain   TEXT NOT NULL DEFAULT '',
	album_id     TEXT NOT NULL DEFAULT '',
	artist_id    TEXT NOT NULL DEFAULT '',
	missing      INTEGER NOT NULL DEFAULT 0,
	plays_as     TEXT NOT NULL DEFAULT '',
	derived_from TEXT NOT NULL DEFAULT '',
	used_ns      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
	name             TEXT PRIMARY KEY,
	state            TEXT NOT NULL,
	at_ns            INTEGER NOT NULL,
	entry_index      INTEGER NOT NULL,
	entry_id         TEXT NOT NULL,
	position_ns      INTEGER NOT NULL,
	playing          INTEGER NOT NULL,
	volume           INTEGER NOT NULL,
	seq              INTEGER NOT NULL,
	playlist_version INTEGER NOT NULL,
	next_entry       INTEGER NOT NULL,
	term             INTEGER NOT NULL DEFAULT 0,
	playlist_term    INTEGER NOT NULL DEFAULT 0,
	title            TEXT NOT NULL DEFAULT '',
	acl              TEXT NOT NULL DEFAULT '',
	repeat           TEXT NOT NULL DEFAULT '',
	shuffle          INTEGER NOT NULL DEFAULT 0,
	crossfade_ms     INTEGER NOT NULL DEFAULT 0,
	replaygain       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS entries (
	session  TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	id       TEXT NOT NULL,
	song     TEXT NOT NULL REFERENCES songs(sha256),
	gain_db  REAL NOT NULL DEFAULT 0,
	PRIMARY KEY (session, position)
);
CREATE TABLE IF NOT EXISTS saved_playlists (
	id      TEXT PRIMARY KEY,
	title   TEXT NOT NULL,
	term    INTEGER NOT NULL,
	version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS saved_playlist_songs (
	playlist TEXT NOT NULL REFERENCES saved_playlists(id) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	song     TEXT NOT NULL, -- no reference to songs: a removed song stays, shown missing
	PRIMARY KEY (playlist, position)
);
CREATE TABLE IF NOT EXISTS files (
	path     TEXT PRIMARY KEY,
	root     TEXT NOT NULL,
	size     INTEGER NOT NULL,
	mtime_ns INTEGER NOT NULL,
	sha256   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS assignments (
	speaker TEXT PRIMARY KEY,
	session TEXT NOT NULL,
	volume  INTEGER NOT NULL,
	term    INTEGER NOT NULL
);
`

func openStore(path string) (*store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_journal_mode=WAL&_busy_timeout=5000&_synchronous=NORMAL&_foreign_keys=on&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := db.Exec(schema + m3uSchema + loudnessSchema); err != nil { // store_m3u.go, store_loudness.go
		db.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("upgrade schema in %s: %w", path, err)
	}
	if err := prepareConverted(db); err != nil { // convertstore.go
		db.Close()
		return nil, fmt.Errorf("index the converted songs in %s: %w", path, err)
	}
	if err := prepareBrowse(db); err != nil { // store_browse.go
		db.Close()
		return nil, fmt.Errorf("index the library in %s: %w", path, err)
	}
	return &store{db: db, maxRanked: maxRankedMatches}, nil
}

// migrate adds the columns later versions brought to a database an older
// version created. (New tables come from the schema's CREATE TABLE IF NOT
// EXISTS.) A session's empty title is its name, its empty acl Everyone.
func migrate(db *sql.DB) error {
	for _, col := range []struct{ table, name, definition string }{
		{"sessions", "term", "INTEGER NOT NULL DEFAULT 0"},
		{"sessions", "playlist_term", "INTEGER NOT NULL DEFAULT 0"},
		{"sessions", "title", "TEXT NOT NULL DEFAULT ''"},
		{"sessions", "acl", "TEXT NOT NULL DEFAULT ''"},
		{"sessions", "repeat", "TEXT NOT NULL DEFAULT ''"},
		{"sessions", "shuffle", "INTEGER NOT NULL DEFAULT 0"},
		{"sessions", "crossfade_ms", "INTEGER NOT NULL DEFAULT 0"},
		{"sessions", "replaygain", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "album_artist", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "track", "INTEGER NOT NULL DEFAULT 0"},
		{"songs", "track_total", "INTEGER NOT NULL DEFAULT 0"},
		{"songs", "disc", "INTEGER NOT NULL DEFAULT 0"},
		{"songs", "disc_total", "INTEGER NOT NULL DEFAULT 0"},
		{"songs", "year", "INTEGER NOT NULL DEFAULT 0"},
		{"songs", "genre", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "replaygain", "TEXT NOT NULL DEFAULT ''"},
		{"entries", "gain_db", "REAL NOT NULL DEFAULT 0"},
		{"songs", "album_id", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "artist_id", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "missing", "INTEGER NOT NULL DEFAULT 0"},
		// Converted songs (convert.go, convertstore.go).
		{"songs", "plays_as", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "derived_from", "TEXT NOT NULL DEFAULT ''"},
		{"songs", "used_ns", "INTEGER NOT NULL DEFAULT 0"},
	} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, col.table, col.name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.Exec(`ALTER TABLE ` + col.table + ` ADD COLUMN ` + col.name + ` ` + col.definition); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *store) Close() error { return st.db.Close() }

const songColumns = `sha256, title, artist, album, format, size, frames, sample_rate,
	album_artist, track, track_total, disc, disc_total, year, genre, replaygain, missing, added_ns`

// songWriteColumns are songColumns and the browse ids songArgs derives
// from them.
const songWriteColumns = songColumns + `, album_id, artist_id`

// songValues are the placeholders of songWriteColumns.
const songValues = `?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`

func scanSong(row interface{ Scan(...any) error }) (protocol.Song, error) {
	var s protocol.Song
	var gain string
	err := row.Scan(&s.SHA256, &s.Title, &s.Artist, &s.Album, &s.Format, &s.Size, &s.Frames, &s.SampleRate,
		&s.AlbumArtist, &s.Track, &s.TrackTotal, &s.Disc, &s.DiscTotal, &s.Year, &s.Genre, &gain, &s.Missing, &s.AddedNs)
	if gain != "" {
		s.ReplayGain = new(protocol.ReplayGain)
		if json.Unmarshal([]byte(gain), s.ReplayGain) != nil {
			s.ReplayGain = nil
		}
	}
	s = protocol.CleanSong(s) // records stored before texts were bounded
	s.URI = protocol.SongURI(s.SHA256)
	s.DurationNs = protocol.FramesToNs(s.Frames, s.SampleRate)
	return s, err
}

// songArgs are s's values for songWriteColumns, added at addedNs.
func songArgs(s protocol.Song, addedNs int64) []any {
	gain := ""
	if s.ReplayGain != nil {
		b, _ := json.Marshal(s.ReplayGain)
		gain = string(b)
	}
	return []any{s.SHA256, s.Title, s.Artist, s.Album, s.Format, s.Size, s.Frames, s.SampleRate,
		s.AlbumArtist, s.Track, s.TrackTotal, s.Disc, s.DiscTotal, s.Year, s.Genre, gain, s.Missing, addedNs,
		albumID(s.AlbumArtist, s.Artist, s.Album), artistID(s.AlbumArtist, s.Artist)}
}

// songUpdate sets a song's columns, all but its hash and added time, from
// the row being inserted.
const songUpdate = `title = excluded.title, artist = excluded.artist, album = excluded.album,
	format = excluded.format, size = excluded.size, frames = excluded.frames, sample_rate = excluded.sample_rate,
	album_artist = excluded.album_artist, track = excluded.track, track_total = excluded.track_total,
	disc = excluded.disc, disc_total = excluded.disc_total, year = excluded.year, genre = excluded.genre,
	replaygain = excluded.replaygain, album_id = excluded.album_id, artist_id = excluded.artist_id,
	missing = excluded.missing`

// errUnknownSong is returned for a hash that is not in the library.
var errUnknownSong = errors.New("unknown song")

func (st *store) song(sha string) (protocol.Song, error) {
	s, err := scanSong(st.db.QueryRow(`SELECT `+songColumns+` FROM songs WHERE sha256 = ?`, sha))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("%w %s", errUnknownSong, sha)
	}
	return s, err
}

// addSong inserts a song analyzed from its file; it replaces a placeholder
// record (format "") but no real one.
func (st *store) addSong(s protocol.Song, addedNs int64) error {
	_, err := st.db.Exec(`INSERT INTO songs (`+songWriteColumns+`) VALUES (`+songValues+`)
		ON CONFLICT (sha256) DO UPDATE SET `+songUpdate+` WHERE songs.format = ''`, songArgs(s, addedNs)...)
	return err
}

// putSong stores the lease holder's record of a song as it is.
func (st *store) putSong(s protocol.Song, addedNs int64) error {
	_, err := st.db.Exec(`INSERT INTO songs (`+songWriteColumns+`) VALUES (`+songValues+`)
		ON CONFLICT (sha256) DO UPDATE SET `+songUpdate, songArgs(s, addedNs)...)
	return err
}

// placeholdSongs adds a placeholder record (format "") for each entry's song
// the library lacks, from what the entry says of it, so a mirrored playlist
// can refer to songs whose records have not arrived yet.
func (st *store) placeholdSongs(entries []protocol.Entry, addedNs int64) error {
	for _, e := range entries {
		s := protocol.Song{SHA256: e.Song, Title: e.Title, Artist: e.Artist, Frames: e.Frames, SampleRate: e.SampleRate}
		if _, err := st.db.Exec(`INSERT OR IGNORE INTO songs (`+songWriteColumns+`) VALUES (`+songValues+`)`, songArgs(s, addedNs)...); err != nil {
			return err
		}
	}
	return nil
}

// deleteSong removes a song's record; playlists must not refer to it.
func (st *store) deleteSong(sha string) error {
	_, err := st.db.Exec(`DELETE FROM songs WHERE sha256 = ?`, sha)
	return err
}

// allSongs calls fn for every song in the library.
func (st *store) allSongs(fn func(protocol.Song)) error {
	rows, err := st.db.Query(`SELECT ` + songColumns + ` FROM songs ORDER BY added_ns`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSong(rows)
		if err != nil {
			return err
		}
		fn(s)
	}
	return rows.Err()
}

// createSession adds a stopped, empty session unless it exists; created
// says whether it did. An empty title stands for the name.
func (st *store) createSession(name, title string, acl protocol.ACL) (created bool, err error) {
	res, err := st.db.Exec(`INSERT OR IGNORE INTO sessions
		(name, state, at_ns, entry_index, entry_id, position_ns, playing, volume, seq, playlist_version, next_entry, title, acl)
		VALUES (?, ?, 0, -1, '', 0, 0, 100, 0, 0, 1, ?, ?)`, name, protocol.Stopped, title, encodeACL(acl))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// saveSessionInfo stores a session's title and ACL.
func (st *store) saveSessionInfo(name, title string, acl protocol.ACL) error {
	res, err := st.db.Exec(`UPDATE sessions SET title = ?, acl = ? WHERE name = ?`, title, encodeACL(acl), name)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save session info %q: %d rows updated (%v)", name, n, err)
	}
	return nil
}

// deleteSession removes a session with its playlist, and takes its speakers
// out of it (their assignments get term), in one transaction. It returns
// the assignments it changed.
func (st *store) deleteSession(name string, term uint64) ([]protocol.Assignment, error) {
	tx, err := st.db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM sessions WHERE name = ?`, name); err != nil { // entries cascade
		return nil, err
	}
	rows, err := tx.Query(`UPDATE assignments SET session = '', term = ? WHERE session = ? RETURNING speaker, volume`, term, name)
	if err != nil {
		return nil, err
	}
	var changed []protocol.Assignment
	for rows.Next() {
		a := protocol.Assignment{V: protocol.Version, Term: term}
		if err := rows.Scan(&a.Speaker, &a.Volume); err != nil {
			rows.Close()
			return nil, err
		}
		changed = append(changed, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return changed, tx.Commit()
}

// encodeACL stores an ACL as JSON; Everyone is stored as "", as rows from
// before ACLs existed are.
func encodeACL(acl protocol.ACL) string {
	if sameACL(acl, protocol.Everyone) {
		return ""
	}
	return string(protocol.Encode(acl))
}

func decodeACL(s string) (protocol.ACL, error) {
	if s == "" {
		return protocol.Everyone, nil
	}
	var acl protocol.ACL
	err := json.Unmarshal([]byte(s), &acl)
	return acl, err
}

// assignments loads every speaker's assignment.
func (st *store) assignments() (map[string]protocol.Assignment, error) {
	rows, err := st.db.Query(`SELECT speaker, session, volume, term FROM assignments`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]protocol.Assignment{}
	for rows.Next() {
		a := protocol.Assignment{V: protocol.Version}
		if err := rows.Scan(&a.Speaker, &a.Session, &a.Volume, &a.Term); err != nil {
			return nil, err
		}
		out[a.Speaker] = a
	}
	return out, rows.Err()
}

// saveAssignments stores assignments, in one transaction.
func (st *store) saveAssignments(list ...protocol.Assignment) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, a := range list {
		if _, err := tx.Exec(`INSERT INTO assignments (speaker, session, volume, term) VALUES (?, ?, ?, ?)
			ON CONFLICT (speaker) DO UPDATE SET session = excluded.session, volume = excluded.volume, term = excluded.term`,
			a.Speaker, a.Session, a.Volume, a.Term); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// deleteAssignment forgets a speaker's assignment.
func (st *store) deleteAssignment(speaker string) error {
	_, err := st.db.Exec(`DELETE FROM assignments WHERE speaker = ?`, speaker)
	return err
}

// sessions loads every session with its playlist.
func (st *store) sessions() (map[string]session, error) {
	tx, err := st.db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT name, state, at_ns, entry_index, entry_id, position_ns, playing, volume, seq,
		playlist_version, next_entry, term, playlist_term, title, acl, repeat, shuffle, crossfade_ms, replaygain FROM sessions`)
	if err != nil {
		return nil, err
	}
	out := map[string]session{}
	for rows.Next() {
		var s session
		var playlistTerm uint64
		var acl string
		var p protocol.Playlist // how it plays
		a := &s.State.Anchor
		if err := rows.Scan(&s.State.Session, &s.State.State, &a.AtNs, &a.Index, &a.Entry, &a.PositionNs, &a.Playing,
			&s.State.Volume, &s.State.Seq, &s.State.PlaylistVersion, &s.NextEntry, &s.State.Term, &playlistTerm,
			&s.Title, &acl, &p.Repeat, &p.Shuffle, &p.CrossfadeMs, &p.ReplayGain); err != nil {
			rows.Close()
			return nil, err
		}
		if s.Title == "" {
			s.Title = s.State.Session
		}
		if s.ACL, err = decodeACL(acl); err != nil {
			rows.Close()
			return nil, fmt.Errorf("session %q: bad acl: %w", s.State.Session, err)
		}
		s.State.V = protocol.Version
		s.Playlist = protocol.Playlist{V: protocol.Version, Session: s.State.Session, Version: s.State.PlaylistVersion,
			Term: playlistTerm, Entries: []protocol.Entry{}, Repeat: p.Repeat, Shuffle: p.Shuffle, CrossfadeMs: p.CrossfadeMs,
			ReplayGain: p.ReplayGain}
		out[s.State.Session] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(`SELECT e.session, e.id, s.sha256, s.title, s.artist, s.frames, s.sample_rate, e.gain_db, s.missing
		FROM entries e JOIN songs s ON s.sha256 = e.song ORDER BY e.session, e.position`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var e protocol.Entry
		if err := rows.Scan(&name, &e.ID, &e.Song, &e.Title, &e.Artist, &e.Frames, &e.SampleRate, &e.GainDb, &e.Missing); err != nil {
			return nil, err
		}
		s := out[name]
		s.Playlist.Entries = append(s.Playlist.Entries, e)
		out[name] = s
	}
	return out, rows.Err()
}

// saveSession stores a session's state, and its playlist when withPlaylist,
// in one transaction.
func (st *store) saveSession(s session, withPlaylist bool) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	a := s.State.Anchor
	res, err := tx.Exec(`UPDATE sessions SET state = ?, at_ns = ?, entry_index = ?, entry_id = ?, position_ns = ?,
		playing = ?, volume = ?, seq = ?, playlist_version = ?, next_entry = ?, term = ?, playlist_term = ?,
		repeat = ?, shuffle = ?, crossfade_ms = ?, replaygain = ? WHERE name = ?`,
		s.State.State, a.AtNs, a.Index, a.Entry, a.PositionNs, a.Playing, s.State.Volume, s.State.Seq,
		s.Playlist.Version, s.NextEntry, s.State.Term, s.Playlist.Term,
		s.Playlist.Repeat, s.Playlist.Shuffle, s.Playlist.CrossfadeMs, s.Playlist.ReplayGain, s.State.Session)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save session %q: %d rows updated (%v)", s.State.Session, n, err)
	}
	if withPlaylist {
		if _, err := tx.Exec(`DELETE FROM entries WHERE session = ?`, s.State.Session); err != nil {
			return err
		}
		insert, err := tx.Prepare(`INSERT INTO entries (session, position, id, song, gain_db) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for i, e := range s.Playlist.Entries {
			if _, err := insert.Exec(s.State.Session, i, e.ID, e.Song, e.GainDb); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
