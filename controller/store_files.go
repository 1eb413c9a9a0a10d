package controller

import (
	"database/sql"
	"errors"

	"github.com/tutti-audio/tutti/protocol"
)

// The files table: every audio file found in the music folders, with the
// hash of its content, so a rescan reads only files whose size or time
// changed. A song (by hash) may have several files, and an upload copy in
// songs/ besides; it is missing once it has neither.

// musicFile is one row of the files table.
type musicFile struct {
	path, root  string
	size, modNs int64
	sha         string
}

// fileStat returns the size and time recorded for the file at path.
func (st *store) fileStat(path string) (size, modNs int64, ok bool, err error) {
	err = st.db.QueryRow(`SELECT size, mtime_ns FROM files WHERE path = ?`, path).Scan(&size, &modNs)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	return size, modNs, err == nil, err
}

// putFile records a file and, unless known, its song, which is present
// from now on; in one transaction. replaced is the hash the path had
// before, if another; wasMissing says the song was missing until now.
func (st *store) putFile(f musicFile, song protocol.Song, addedNs int64) (replaced string, wasMissing bool, err error) {
	tx, err := st.db.Begin()
	if err != nil {
		return "", false, err
	}
	defer tx.Rollback()
	var old string
	if err := tx.QueryRow(`SELECT sha256 FROM files WHERE path = ?`, f.path).Scan(&old); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", false, err
	}
	if _, err := tx.Exec(`INSERT INTO files (path, root, size, mtime_ns, sha256) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (path) DO UPDATE SET root = excluded.root, size = excluded.size, mtime_ns = excluded.mtime_ns,
		sha256 = excluded.sha256`, f.path, f.root, f.size, f.modNs, f.sha); err != nil {
		return "", false, err
	}
	if song.SHA256 != "" {
		if err := tx.QueryRow(`SELECT missing FROM songs WHERE sha256 = ?`, song.SHA256).Scan(&wasMissing); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", false, err
		}
		// A placeholder (a standby's, from a mirrored playlist) gives way to
		// the record read from the file; a real record stays as it is.
		if _, err := tx.Exec(`INSERT INTO songs (`+songWriteColumns+`) VALUES (`+songValues+`)
			ON CONFLICT (sha256) DO UPDATE SET `+songUpdate+` WHERE songs.format = ''`, songArgs(song, addedNs)...); err != nil {
			return "", false, err
		}
		if _, err := tx.Exec(`UPDATE songs SET missing = 0 WHERE sha256 = ?`, song.SHA256); err != nil {
			return "", false, err
		}
	}
	if old == f.sha {
		old = ""
	}
	return old, wasMissing, tx.Commit()
}

// moveFile records that the file at from is now at to, in root, its
// content unchanged.
func (st *store) moveFile(from, to, root string) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM files WHERE path = ?`, to); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE files SET path = ?, root = ? WHERE path = ?`, to, root, from); err != nil {
		return err
	}
	return tx.Commit()
}

// removeFiles forgets the file at path, or every file below it if it was
// a folder, and returns the hashes they had.
func (st *store) removeFiles(path string) ([]string, error) {
	prefix := path + "/"
	rows, err := st.db.Query(`DELETE FROM files WHERE path = ? OR substr(path, 1, ?) = ? RETURNING sha256`,
		path, len(prefix), prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var shas []string
	for rows.Next() {
		var sha string
		if err := rows.Scan(&sha); err != nil {
			return nil, err
		}
		shas = append(shas, sha)
	}
	return shas, rows.Err()
}

// filePaths lists the files recorded below root.
func (st *store) filePaths(root string) ([]string, error) {
	prefix := root + "/"
	rows, err := st.db.Query(`SELECT path FROM files WHERE substr(path, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var paths []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, rows.Err()
}

// folderSongs returns the songs that have files in the music folders.
func (st *store) folderSongs() (map[string]bool, error) {
	rows, err := st.db.Query(`SELECT DISTINCT sha256 FROM files`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	shas := map[string]bool{}
	for rows.Next() {
		var sha string
		if err := rows.Scan(&sha); err != nil {
			return nil, err
		}
		shas[sha] = true
	}
	return shas, rows.Err()
}

// songFiles lists the files recorded with song sha.
func (st *store) songFiles(sha string) ([]musicFile, error) {
	rows, err := st.db.Query(`SELECT path, root, size, mtime_ns FROM files WHERE sha256 = ? ORDER BY path`, sha)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []musicFile
	for rows.Next() {
		f := musicFile{sha: sha}
		if err := rows.Scan(&f.path, &f.root, &f.size, &f.modNs); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, rows.Err()
}

// markMissing records that song sha is missing (or present again); changed
// says it was not so before. A song without a record changes nothing.
func (st *store) markMissing(sha string, missing bool) (changed bool, err error) {
	res, err := st.db.Exec(`UPDATE songs SET missing = ? WHERE sha256 = ? AND missing != ?`, missing, sha, missing)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// unmeasuredSongs lists up to limit songs of the music folders whose
// length the headers did not tell (frames 0) in a format countFrames
// decodes (m4aSong reads M4A's), with one of their files.
func (st *store) unmeasuredSongs(limit int) ([]musicFile, error) {
	rows, err := st.db.Query(`SELECT f.sha256, min(f.path) FROM songs s JOIN files f ON f.sha256 = s.sha256
		WHERE s.frames = 0 AND s.format IN ('mp3', 'flac', 'wav', 'ogg', 'opus', 'm4a') GROUP BY f.sha256 LIMIT ?`, limit)
	return songFiles(rows, err)
}

// songFiles reads rows of (sha256, path) of a query that failed with err
// or not, and closes them.
func songFiles(rows *sql.Rows, err error) ([]musicFile, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []musicFile
	for rows.Next() {
		var f musicFile
		if err := rows.Scan(&f.sha, &f.path); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, rows.Err()
}

// setLength records a song's length once decoding told it.
func (st *store) setLength(sha string, frames int64, rate int) error {
	_, err := st.db.Exec(`UPDATE songs SET frames = ?, sample_rate = ? WHERE sha256 = ?`, frames, rate, sha)
	return err
}
