package controller

import (
	"encoding/json"
	"errors"

	"github.com/tutti-audio/tutti/loudness"
	"github.com/tutti-audio/tutti/protocol"
)

// The store's measured loudness: for each music folder song measured
// because its tags give no ReplayGain, the histogram of its gating blocks
// (loudness.Histogram), which its album's gain is computed from once every
// song of the album is measured. A song is its content, so a measurement
// holds until the file changes (a new song). A row with an empty histogram
// is a song too quiet or short to have a loudness: measured, not again.

const loudnessSchema = `
CREATE TABLE IF NOT EXISTS song_loudness (
	sha256    TEXT PRIMARY KEY,
	histogram BLOB NOT NULL
);
`

// unleveledSongs lists up to limit songs of the music folders whose tags
// give no ReplayGain and that were not measured yet, in the formats
// countFrames decodes, with one of their files. (M4A songs are not decoded
// by the controller: they play as their FLAC conversion.)
func (st *store) unleveledSongs(limit int) ([]musicFile, error) {
	rows, err := st.db.Query(`SELECT f.sha256, min(f.path) FROM songs s JOIN files f ON f.sha256 = s.sha256
		WHERE s.replaygain = '' AND s.frames > 0 AND s.missing = 0 AND s.format IN ('mp3', 'flac', 'wav', 'ogg', 'opus')
		AND NOT EXISTS (SELECT 1 FROM song_loudness l WHERE l.sha256 = s.sha256)
		GROUP BY f.sha256 LIMIT ?`, limit)
	return songFiles(rows, err)
}

// setMeasured records song sha's measured loudness: its histogram, and its
// ReplayGain (nil: none, too quiet) unless its record has one meanwhile.
func (st *store) setMeasured(sha string, rg *protocol.ReplayGain, h loudness.Histogram) error {
	blob, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO song_loudness (sha256, histogram) VALUES (?, ?)
		ON CONFLICT (sha256) DO UPDATE SET histogram = excluded.histogram`, sha, blob); err != nil {
		return err
	}
	if rg != nil {
		gain, err := json.Marshal(rg)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE songs SET replaygain = ? WHERE sha256 = ? AND replaygain = ''`, string(gain), sha); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// albumMember is one song of an album, with its measured loudness if any.
type albumMember struct {
	sha       string
	gain      *protocol.ReplayGain
	histogram []byte // nil: not measured
}

// albumOf is song sha's album id ("" when it has none) and the album's
// songs: those present, not conversions.
func (st *store) albumOf(sha string) (string, []albumMember, error) {
	var album string
	if err := st.db.QueryRow(`SELECT album_id FROM songs WHERE sha256 = ?`, sha).Scan(&album); err != nil || album == "" {
		return "", nil, err
	}
	rows, err := st.db.Query(`SELECT s.sha256, s.replaygain, l.histogram FROM songs s
		LEFT JOIN song_loudness l ON l.sha256 = s.sha256
		WHERE s.album_id = ? AND s.missing = 0 AND s.derived_from = '' AND s.format != '' ORDER BY s.sha256`, album)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	var members []albumMember
	for rows.Next() {
		var m albumMember
		var gain string
		if err := rows.Scan(&m.sha, &gain, &m.histogram); err != nil {
			return "", nil, err
		}
		if gain != "" {
			m.gain = new(protocol.ReplayGain)
			if err := json.Unmarshal([]byte(gain), m.gain); err != nil {
				return "", nil, errors.Join(errors.New("song "+m.sha+": stored ReplayGain unreadable"), err)
			}
		}
		members = append(members, m)
	}
	return album, members, rows.Err()
}

// setGain replaces song sha's ReplayGain.
func (st *store) setGain(sha string, rg protocol.ReplayGain) error {
	gain, err := json.Marshal(rg)
	if err != nil {
		return err
	}
	_, err = st.db.Exec(`UPDATE songs SET replaygain = ? WHERE sha256 = ?`, string(gain), sha)
	return err
}
