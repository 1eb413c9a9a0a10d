package controller

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tutti-audio/tutti/protocol"
)

// The store's saved playlists: a row per playlist, and its songs by
// position. Songs are kept by hash only, with no reference to the songs
// table, so a song removed from the library stays in the playlists that
// hold it (shown missing).

// errUnknownPlaylist is returned for a saved playlist id that does not exist.
var errUnknownPlaylist = errors.New("unknown saved playlist")

// savedPlaylist loads one saved playlist with its songs.
func (st *store) savedPlaylist(id string) (protocol.SavedPlaylist, error) {
	tx, err := st.db.Begin()
	if err != nil {
		return protocol.SavedPlaylist{}, err
	}
	defer tx.Rollback()
	return savedPlaylistIn(tx, id)
}

func savedPlaylistIn(tx *sql.Tx, id string) (protocol.SavedPlaylist, error) {
	p := protocol.SavedPlaylist{V: protocol.Version, ID: id, Songs: []string{}}
	err := tx.QueryRow(`SELECT title, term, version FROM saved_playlists WHERE id = ?`, id).Scan(&p.Title, &p.Term, &p.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("%w %q", errUnknownPlaylist, id)
	}
	if err != nil {
		return p, err
	}
	rows, err := tx.Query(`SELECT song FROM saved_playlist_songs WHERE playlist = ? ORDER BY position`, id)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		var sha string
		if err := rows.Scan(&sha); err != nil {
			return p, err
		}
		p.Songs = append(p.Songs, sha)
	}
	return p, rows.Err()
}

// savedPlaylistCount is how many saved playlists there are.
func (st *store) savedPlaylistCount() (int, error) {
	var n int
	err := st.db.QueryRow(`SELECT COUNT(*) FROM saved_playlists`).Scan(&n)
	return n, err
}

// savedPlaylistPage lists limit saved playlists from offset on, by title,
// and how many there are in all.
func (st *store) savedPlaylistPage(offset, limit int) (page []protocol.SavedPlaylistInfo, total int, err error) {
	if total, err = st.savedPlaylistCount(); err != nil {
		return nil, 0, err
	}
	rows, err := st.db.Query(`SELECT p.id, p.title, p.version, (SELECT COUNT(*) FROM saved_playlist_songs s WHERE s.playlist = p.id)
		FROM saved_playlists p ORDER BY p.title, p.id LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	page = []protocol.SavedPlaylistInfo{}
	for rows.Next() {
		var info protocol.SavedPlaylistInfo
		if err := rows.Scan(&info.ID, &info.Title, &info.Version, &info.Songs); err != nil {
			return nil, 0, err
		}
		info.URI = protocol.PlaylistURI(info.ID)
		page = append(page, info)
	}
	return page, total, rows.Err()
}

// allSavedPlaylists calls fn for every saved playlist, by id.
func (st *store) allSavedPlaylists(fn func(protocol.SavedPlaylist)) error {
	var ids []string
	rows, err := st.db.Query(`SELECT id FROM saved_playlists ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		p, err := st.savedPlaylist(id)
		if errors.Is(err, errUnknownPlaylist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		fn(p)
	}
	return nil
}

// createSavedPlaylist adds p, which must be new, unless there are
// MaxSavedPlaylists already. created is false when its id is taken.
func (st *store) createSavedPlaylist(p protocol.SavedPlaylist) (created bool, err error) {
	tx, err := st.db.Begin()
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM saved_playlists`).Scan(&n); err != nil {
		return false, err
	}
	if n >= protocol.MaxSavedPlaylists {
		return false, fmt.Errorf("%d saved playlists already, the most there may be: delete one first", n)
	}
	res, err := tx.Exec(`INSERT OR IGNORE INTO saved_playlists (id, title, term, version) VALUES (?, ?, ?, ?)`,
		p.ID, p.Title, p.Term, p.Version)
	if err != nil {
		return false, err
	}
	if rows, err := res.RowsAffected(); err != nil || rows == 0 {
		return false, err
	}
	if err := insertSavedSongs(tx, p); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// putSavedPlaylist stores p as it is, replacing what the store had of it,
// if p supersedes that (a later term, or a later version in the same term,
// as protocol.Supersedes says). put says whether it did.
func (st *store) putSavedPlaylist(p protocol.SavedPlaylist) (put bool, err error) {
	tx, err := st.db.Begin()
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var term, version uint64
	err = tx.QueryRow(`SELECT term, version FROM saved_playlists WHERE id = ?`, p.ID).Scan(&term, &version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, err
	case !protocol.Supersedes(p.Term, p.Version, term, version):
		return false, nil
	}
	if _, err := tx.Exec(`INSERT INTO saved_playlists (id, title, term, version) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET title = excluded.title, term = excluded.term, version = excluded.version`,
		p.ID, p.Title, p.Term, p.Version); err != nil {
		return false, err
	}
	if _, err := tx.Exec(`DELETE FROM saved_playlist_songs WHERE playlist = ?`, p.ID); err != nil {
		return false, err
	}
	if err := insertSavedSongs(tx, p); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

func insertSavedSongs(tx *sql.Tx, p protocol.SavedPlaylist) error {
	insert, err := tx.Prepare(`INSERT INTO saved_playlist_songs (playlist, position, song) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insert.Close()
	for i, sha := range p.Songs {
		if _, err := insert.Exec(p.ID, i, sha); err != nil {
			return err
		}
	}
	return nil
}

// deleteSavedPlaylist removes a saved playlist with its songs; deleted says
// whether it existed.
func (st *store) deleteSavedPlaylist(id string) (deleted bool, err error) {
	res, err := st.db.Exec(`DELETE FROM saved_playlists WHERE id = ?`, id) // songs cascade
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// songsOrMissing is the library's record of each song hash, in order; a
// hash the library lacks comes as a record with only the hash and Missing.
// The records are read in one query: a playlist's thousand songs one by one
// took several times as long.
func (st *store) songsOrMissing(shas []string) ([]protocol.Song, error) {
	list, err := json.Marshal(shas)
	if err != nil {
		return nil, err
	}
	rows, err := st.db.Query(`SELECT `+songColumns+` FROM songs WHERE sha256 IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	known := make(map[string]protocol.Song, len(shas))
	for rows.Next() {
		s, err := scanSong(rows)
		if err != nil {
			return nil, err
		}
		known[s.SHA256] = s
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	songs := make([]protocol.Song, len(shas))
	for i, sha := range shas {
		song, ok := known[sha]
		if !ok {
			song = protocol.Song{SHA256: sha, URI: protocol.SongURI(sha), Missing: true}
		}
		songs[i] = song
	}
	return songs, nil
}
