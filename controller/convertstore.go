package controller

import (
	"database/sql"
	"errors"

	"github.com/tutti-audio/tutti/protocol"
)

// The store's side of converted songs (convert.go): songs.plays_as names
// an M4A's FLAC conversion, songs.derived_from the M4A a FLAC was made
// from, songs.used_ns when a conversion was last wanted.

// playsAs is the FLAC song that song sha plays as; "" when none. The
// link is the source's plays_as, or else a FLAC's derived_from: a standby
// learns a conversion from the FLAC's record (mirrorSong), which may come
// before the source's.
func (st *store) playsAs(sha string) (string, error) {
	var flac string
	err := st.db.QueryRow(`SELECT sha256 FROM (
			SELECT f.sha256, 0 AS pref FROM songs s JOIN songs f ON f.sha256 = s.plays_as WHERE s.sha256 = ?1 AND f.format != ''
			UNION ALL
			SELECT sha256, 1 FROM songs WHERE derived_from = ?1 AND derived_from != '' AND format != '')
		ORDER BY pref, sha256 LIMIT 1`, sha).Scan(&flac)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return flac, err
}

// prepareConverted indexes the converted songs by their source, for
// playsAs (after migrate: older databases lack the column).
func prepareConverted(db *sql.DB) error {
	_, err := db.Exec(`CREATE INDEX IF NOT EXISTS songs_by_derived_from ON songs (derived_from) WHERE derived_from != ''`)
	return err
}

// conversionSources maps every converted song to the song it was made
// from, for publishing their records (publishLibrary).
func (st *store) conversionSources() (map[string]string, error) {
	rows, err := st.db.Query(`SELECT sha256, derived_from FROM songs WHERE derived_from != ''`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	sources := map[string]string{}
	for rows.Next() {
		var flac, src string
		if err := rows.Scan(&flac, &src); err != nil {
			return nil, err
		}
		sources[flac] = src
	}
	return sources, rows.Err()
}

// useConverted marks a converted song used at nowNs.
func (st *store) useConverted(sha string, nowNs int64) error {
	_, err := st.db.Exec(`UPDATE songs SET used_ns = ? WHERE sha256 = ?`, nowNs, sha)
	return err
}

// linkConverted stores flac, made from song src at nowNs, and links the
// two; src's length becomes the conversion's, which is exact.
func (st *store) linkConverted(src string, flac protocol.Song, nowNs int64) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO songs (`+songWriteColumns+`) VALUES (`+songValues+`)
		ON CONFLICT (sha256) DO UPDATE SET `+songUpdate, songArgs(flac, nowNs)...); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE songs SET derived_from = ?, used_ns = ? WHERE sha256 = ?`, src, nowNs, flac.SHA256); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE songs SET plays_as = ?, frames = ?, sample_rate = ? WHERE sha256 = ?`,
		flac.SHA256, flac.Frames, flac.SampleRate, src); err != nil {
		return err
	}
	return tx.Commit()
}

// convertedSong is what pruning needs to know of a converted song.
type convertedSong struct {
	sha        string
	size       int64
	usedNs     int64
	inPlaylist bool
}

// convertedSongs lists the converted songs, least recently used first.
func (st *store) convertedSongs() ([]convertedSong, error) {
	rows, err := st.db.Query(`SELECT sha256, size, used_ns,
		EXISTS (SELECT 1 FROM entries WHERE entries.song = songs.sha256)
		FROM songs WHERE derived_from != '' ORDER BY used_ns, sha256`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []convertedSong
	for rows.Next() {
		var s convertedSong
		if err := rows.Scan(&s.sha, &s.size, &s.usedNs, &s.inPlaylist); err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	return list, rows.Err()
}

// dropConverted removes a converted song's record and its link, unless a
// playlist entry names it.
func (st *store) dropConverted(sha string) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.Exec(`DELETE FROM songs WHERE sha256 = ? AND derived_from != ''
		AND NOT EXISTS (SELECT 1 FROM entries WHERE entries.song = ?)`, sha, sha)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.New("in a playlist, or gone")
	}
	if _, err := tx.Exec(`UPDATE songs SET plays_as = '' WHERE plays_as = ?`, sha); err != nil {
		return err
	}
	return tx.Commit()
}
