package controller

import (
	"database/sql"
	"errors"
	"strings"
)

// The store's M3U files: every playlist file the music folders' scan found
// (its content is in the files table like any file's), the saved playlist
// it is imported as, whether it waits to be imported (again), and the
// tracks it names that the library has no song at, so that one turning up
// has the file imported again.

const m3uSchema = `
CREATE TABLE IF NOT EXISTS m3u_files (
	path     TEXT PRIMARY KEY,
	root     TEXT NOT NULL,
	playlist TEXT NOT NULL,
	pending  INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS m3u_waiting (
	folded TEXT NOT NULL, -- a track's absolute path, foldedPath
	m3u    TEXT NOT NULL REFERENCES m3u_files(path) ON DELETE CASCADE,
	PRIMARY KEY (folded, m3u)
);
CREATE INDEX IF NOT EXISTS m3u_waiting_by_m3u ON m3u_waiting (m3u);
`

// foldedPath is a path as the case-blind lookups compare it: M3U files made
// on Windows or macOS name files in any case.
func foldedPath(p string) string { return strings.ToLower(p) }

// putM3UFile records an M3U file, imported as saved playlist id, as
// waiting to be imported.
func (st *store) putM3UFile(f m3uFile, id string) error {
	_, err := st.db.Exec(`INSERT INTO m3u_files (path, root, playlist, pending) VALUES (?, ?, ?, 1)
		ON CONFLICT (path) DO UPDATE SET root = excluded.root, playlist = excluded.playlist, pending = 1`, f.path, f.root, id)
	return err
}

// removeM3UFiles forgets the M3U file at path, or every one below it if it
// was a folder, and returns their playlists' ids.
func (st *store) removeM3UFiles(path string) ([]string, error) {
	prefix := path + "/"
	rows, err := st.db.Query(`DELETE FROM m3u_files WHERE path = ? OR substr(path, 1, ?) = ? RETURNING playlist`,
		path, len(prefix), prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// waitedFor marks the M3U files that name a track at path, which the
// library has a song at now, to be imported again; waited says there were.
func (st *store) waitedFor(path string) (waited bool, err error) {
	// Looked up first: a scan asks for every file, and a write each would
	// double its transactions.
	folded := foldedPath(path)
	if err := st.db.QueryRow(`SELECT EXISTS (SELECT 1 FROM m3u_waiting WHERE folded = ?)`, folded).Scan(&waited); err != nil || !waited {
		return false, err
	}
	res, err := st.db.Exec(`UPDATE m3u_files SET pending = 1
		WHERE pending = 0 AND path IN (SELECT m3u FROM m3u_waiting WHERE folded = ?)`, folded)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// allM3UPending marks every M3U file to be imported again.
func (st *store) allM3UPending() error {
	_, err := st.db.Exec(`UPDATE m3u_files SET pending = 1`)
	return err
}

// pendingM3UFiles lists the M3U files waiting to be imported.
func (st *store) pendingM3UFiles() ([]m3uFile, error) {
	rows, err := st.db.Query(`SELECT path, root FROM m3u_files WHERE pending = 1 ORDER BY path`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []m3uFile
	for rows.Next() {
		var f m3uFile
		if err := rows.Scan(&f.path, &f.root); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, rows.Err()
}

// m3uImported records that the M3U file at path was imported (or failed
// to be: it waits for a change), and the tracks it names that the library
// has no song at. known is false when the file left the music folders
// meanwhile.
func (st *store) m3uImported(path string, waiting []string) (known bool, err error) {
	tx, err := st.db.Begin()
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := tx.Exec(`UPDATE m3u_files SET pending = 0 WHERE path = ?`, path)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.Exec(`DELETE FROM m3u_waiting WHERE m3u = ?`, path); err != nil {
		return false, err
	}
	insert, err := tx.Prepare(`INSERT OR IGNORE INTO m3u_waiting (folded, m3u) VALUES (?, ?)`)
	if err != nil {
		return false, err
	}
	defer insert.Close()
	for _, p := range waiting {
		if _, err := insert.Exec(foldedPath(p), path); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

// m3uFileOf is the M3U file saved playlist id was imported from, as this
// controller's index knows it.
func (st *store) m3uFileOf(id string) (m3uFile, bool, error) {
	var f m3uFile
	err := st.db.QueryRow(`SELECT path, root FROM m3u_files WHERE playlist = ? ORDER BY path LIMIT 1`, id).Scan(&f.path, &f.root)
	if errors.Is(err, sql.ErrNoRows) {
		return f, false, nil
	}
	return f, err == nil, err
}

// songAtPath is the song of the music folders' file at path.
func (st *store) songAtPath(path string) (sha string, ok bool, err error) {
	err = st.db.QueryRow(`SELECT f.sha256 FROM files f JOIN songs s ON s.sha256 = f.sha256
		WHERE f.path = ? AND s.format != ''`, path).Scan(&sha)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return sha, err == nil, err
}

// songsByFoldedPath maps the folded path of every file of the music
// folders that has a song to that song.
func (st *store) songsByFoldedPath() (map[string]string, error) {
	rows, err := st.db.Query(`SELECT f.path, f.sha256 FROM files f JOIN songs s ON s.sha256 = f.sha256 WHERE s.format != ''`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	songs := map[string]string{}
	for rows.Next() {
		var path, sha string
		if err := rows.Scan(&path, &sha); err != nil {
			return nil, err
		}
		songs[foldedPath(path)] = sha
	}
	return songs, rows.Err()
}
