package controller

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/tutti-audio/tutti/protocol"
)

// store keeps the library, the sessions and their playlists in SQLite. Every
// method is one transaction, so a crash at any moment leaves either the old
// or the new state.
type store struct {
	db *sql.DB
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
	added_ns    INTEGER NOT NULL
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
	playlist_term    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
	session  TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	id       TEXT NOT NULL,
	song     TEXT NOT NULL REFERENCES songs(sha256),
	PRIMARY KEY (session, position)
);
`

func openStore(path string) (*store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_journal_mode=WAL&_busy_timeout=5000&_synchronous=NORMAL&_foreign_keys=on&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("upgrade schema in %s: %w", path, err)
	}
	return &store{db: db}, nil
}

// migrate adds the columns later versions brought to a database an older
// version created.
func migrate(db *sql.DB) error {
	for _, col := range []string{"term", "playlist_term"} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('sessions') WHERE name = ?`, col).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.Exec(`ALTER TABLE sessions ADD COLUMN ` + col + ` INTEGER NOT NULL DEFAULT 0`); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *store) Close() error { return st.db.Close() }

const songColumns = `sha256, title, artist, album, format, size, frames, sample_rate`

func scanSong(row interface{ Scan(...any) error }) (protocol.Song, error) {
	var s protocol.Song
	err := row.Scan(&s.SHA256, &s.Title, &s.Artist, &s.Album, &s.Format, &s.Size, &s.Frames, &s.SampleRate)
	s.URI = protocol.SongURI(s.SHA256)
	s.DurationNs = protocol.FramesToNs(s.Frames, s.SampleRate)
	return s, err
}

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
	_, err := st.db.Exec(`INSERT INTO songs (`+songColumns+`, added_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sha256) DO UPDATE SET title = excluded.title, artist = excluded.artist, album = excluded.album,
		format = excluded.format, size = excluded.size, frames = excluded.frames, sample_rate = excluded.sample_rate
		WHERE songs.format = ''`,
		s.SHA256, s.Title, s.Artist, s.Album, s.Format, s.Size, s.Frames, s.SampleRate, addedNs)
	return err
}

// putSong stores the lease holder's record of a song as it is.
func (st *store) putSong(s protocol.Song, addedNs int64) error {
	_, err := st.db.Exec(`INSERT INTO songs (`+songColumns+`, added_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sha256) DO UPDATE SET title = excluded.title, artist = excluded.artist, album = excluded.album,
		format = excluded.format, size = excluded.size, frames = excluded.frames, sample_rate = excluded.sample_rate`,
		s.SHA256, s.Title, s.Artist, s.Album, s.Format, s.Size, s.Frames, s.SampleRate, addedNs)
	return err
}

// placeholdSongs adds a placeholder record (format "") for each entry's song
// the library lacks, from what the entry says of it, so a mirrored playlist
// can refer to songs whose records have not arrived yet.
func (st *store) placeholdSongs(entries []protocol.Entry, addedNs int64) error {
	for _, e := range entries {
		if _, err := st.db.Exec(`INSERT OR IGNORE INTO songs (`+songColumns+`, added_ns) VALUES (?, ?, ?, '', '', 0, ?, ?, ?)`,
			e.Song, e.Title, e.Artist, e.Frames, e.SampleRate, addedNs); err != nil {
			return err
		}
	}
	return nil
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

// searchSongs returns up to limit songs whose title, artist or album contain
// every word, case-insensitively (ASCII case folding, as SQLite's LIKE does).
func (st *store) searchSongs(words []string, limit int) ([]protocol.Song, error) {
	query := `SELECT ` + songColumns + ` FROM songs WHERE 1`
	var args []any
	for _, w := range words {
		query += ` AND (title LIKE ? ESCAPE '\' OR artist LIKE ? ESCAPE '\' OR album LIKE ? ESCAPE '\')`
		pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(w) + "%"
		args = append(args, pattern, pattern, pattern)
	}
	query += ` ORDER BY artist, album, title LIMIT ?`
	args = append(args, limit)
	rows, err := st.db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	songs := []protocol.Song{}
	for rows.Next() {
		s, err := scanSong(rows)
		if err != nil {
			return nil, err
		}
		songs = append(songs, s)
	}
	return songs, rows.Err()
}

// createSession adds a stopped, empty session unless it exists.
func (st *store) createSession(name string) error {
	_, err := st.db.Exec(`INSERT OR IGNORE INTO sessions
		(name, state, at_ns, entry_index, entry_id, position_ns, playing, volume, seq, playlist_version, next_entry)
		VALUES (?, ?, 0, -1, '', 0, 0, 100, 0, 0, 1)`, name, protocol.Stopped)
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
		playlist_version, next_entry, term, playlist_term FROM sessions`)
	if err != nil {
		return nil, err
	}
	out := map[string]session{}
	for rows.Next() {
		var s session
		var playlistTerm uint64
		a := &s.State.Anchor
		if err := rows.Scan(&s.State.Session, &s.State.State, &a.AtNs, &a.Index, &a.Entry, &a.PositionNs, &a.Playing,
			&s.State.Volume, &s.State.Seq, &s.State.PlaylistVersion, &s.NextEntry, &s.State.Term, &playlistTerm); err != nil {
			rows.Close()
			return nil, err
		}
		s.State.V = protocol.Version
		s.Playlist = protocol.Playlist{V: protocol.Version, Session: s.State.Session, Version: s.State.PlaylistVersion,
			Term: playlistTerm, Entries: []protocol.Entry{}}
		out[s.State.Session] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.Query(`SELECT e.session, e.id, s.sha256, s.title, s.artist, s.frames, s.sample_rate
		FROM entries e JOIN songs s ON s.sha256 = e.song ORDER BY e.session, e.position`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var e protocol.Entry
		if err := rows.Scan(&name, &e.ID, &e.Song, &e.Title, &e.Artist, &e.Frames, &e.SampleRate); err != nil {
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
		playing = ?, volume = ?, seq = ?, playlist_version = ?, next_entry = ?, term = ?, playlist_term = ? WHERE name = ?`,
		s.State.State, a.AtNs, a.Index, a.Entry, a.PositionNs, a.Playing, s.State.Volume, s.State.Seq,
		s.Playlist.Version, s.NextEntry, s.State.Term, s.Playlist.Term, s.State.Session)
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
		insert, err := tx.Prepare(`INSERT INTO entries (session, position, id, song) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for i, e := range s.Playlist.Entries {
			if _, err := insert.Exec(s.State.Session, i, e.ID, e.Song); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
