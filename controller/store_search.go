package controller

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/tutti-audio/tutti/protocol"
)

// songText is the full-text index of the songs' title, artist, album and
// album artist. It holds no copy of the texts (content=songs) and follows
// the songs table through triggers, by rowid: the songs table has no
// INTEGER PRIMARY KEY, so its rowids would change under VACUUM, which
// tutti never runs. unicode61 with remove_diacritics 2 folds case and
// accents, so "beyonce" finds "Beyoncé".
const songTextSchema = `
CREATE VIRTUAL TABLE song_text USING fts5(title, artist, album, album_artist,
	content = 'songs', tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO song_text (song_text) VALUES ('rebuild');
`

// songTextTriggers keep the index in step with the songs table. A
// conversion (convert.go) is left out, found as its M4A: its row is
// indexed only while its derived_from is empty, so a search needs no join
// with the songs to skip it (at 20,000 matches the join took 4 of a
// search's 5 ms of counting).
const songTextTriggers = `
DROP TRIGGER IF EXISTS song_text_insert;
DROP TRIGGER IF EXISTS song_text_delete;
DROP TRIGGER IF EXISTS song_text_update;
CREATE TRIGGER song_text_insert AFTER INSERT ON songs WHEN new.derived_from = '' BEGIN
	INSERT INTO song_text (rowid, title, artist, album, album_artist)
		VALUES (new.rowid, new.title, new.artist, new.album, new.album_artist);
END;
CREATE TRIGGER song_text_delete AFTER DELETE ON songs WHEN old.derived_from = '' BEGIN
	INSERT INTO song_text (song_text, rowid, title, artist, album, album_artist)
		VALUES ('delete', old.rowid, old.title, old.artist, old.album, old.album_artist);
END;
CREATE TRIGGER song_text_update AFTER UPDATE OF title, artist, album, album_artist, derived_from ON songs BEGIN
	INSERT INTO song_text (song_text, rowid, title, artist, album, album_artist)
		SELECT 'delete', old.rowid, old.title, old.artist, old.album, old.album_artist WHERE old.derived_from = '';
	INSERT INTO song_text (rowid, title, artist, album, album_artist)
		SELECT new.rowid, new.title, new.artist, new.album, new.album_artist WHERE new.derived_from = '';
END;
INSERT INTO song_text (song_text, rank) VALUES ('rank', 'bm25(` + searchWeights + `)');
`

// errNoWords refuses a search for nothing a song's text could hold.
var errNoWords = errors.New("search: no word with a letter or digit to look for")

// errNoFTS5 says how to get a SQLite that can index the library's text.
var errNoFTS5 = errors.New("this build's SQLite lacks FTS5, which the library search needs: build tutti with -tags sqlite_fts5")

// indexSongText creates the full-text index, filled from the songs already
// stored (a database from before it existed), and its triggers.
func indexSongText(db *sql.DB) error {
	var fts5 bool
	if err := db.QueryRow(`SELECT sqlite_compileoption_used('ENABLE_FTS5')`).Scan(&fts5); err != nil {
		return err
	}
	if !fts5 {
		return errNoFTS5
	}
	if err := createFilled(db, "song_text", songTextSchema); err != nil { // store_browse.go
		return err
	}
	_, err := db.Exec(songTextTriggers)
	return err
}

// Weights of the columns in a search's ranking (bm25): title, artist,
// album, album artist. A song whose title has the words ranks before the
// songs of an artist or album of that name, even one whose artist, album
// and album artist all have them (2+1+1 against 10 of a title's).
const searchWeights = `10.0, 2.0, 1.0, 1.0`

// textQuery is the FTS5 query finding songs with every word, the last one
// as a prefix (what a person has typed so far). Each word is a quoted
// string, in which FTS5 syntax is plain text; control characters (a NUL
// ends an FTS5 query) part words, and words without a letter or digit
// (which FTS5 would index as nothing) are dropped. ok is false when no
// word is left.
func textQuery(words []string) (query string, ok bool) {
	var quoted []string
	for _, w := range strings.FieldsFunc(strings.Join(words, " "), func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		if strings.IndexFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) < 0 {
			continue
		}
		quoted = append(quoted, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
	}
	if len(quoted) == 0 {
		return "", false
	}
	return strings.Join(quoted, " ") + "*", true
}

// maxRankedMatches is the most matches a search scores with bm25. FTS5
// scores every match before it can hand out the best page, about a
// microsecond each: 5,000 take 5 ms, the 20,000 songs a common word finds
// in a large library 20-25 ms, over the 20 ms a search may take.
const maxRankedMatches = 5000

// searchSongs returns the page of limit songs from offset on whose title,
// artist, album or album artist hold every word (the last as a prefix),
// the best match first, and how many songs match in all.
//
// Up to st.maxRanked (maxRankedMatches) matches are ranked by bm25. Beyond, the matches
// come in tiers by where the words are (searchTiers: title, artist, album,
// spread over several), so a title match still comes first, and a tier
// too large to score comes in library order (rowid: a folder's songs are
// added as its walk finds them, path by path).
func (st *store) searchSongs(words []string, offset, limit int) (page []protocol.Song, total int, err error) {
	query, ok := textQuery(words)
	if !ok {
		return nil, 0, errNoWords
	}
	if total, err = st.countMatches(query); err != nil {
		return nil, 0, fmt.Errorf("search: %w", err)
	}
	if total <= st.maxRanked {
		page, err = st.matchPage(query, true, offset, limit)
		return page, total, err
	}
	page = []protocol.Song{}
	tiers, rest := searchTiers(query), total
	for i, tier := range tiers {
		n := rest // the last tier holds what the others do not
		if i < len(tiers)-1 {
			if n, err = st.countMatches(tier); err != nil {
				return nil, 0, fmt.Errorf("search: %w", err)
			}
		}
		rest -= n
		if offset >= n {
			offset -= n
			continue
		}
		more, err := st.matchPage(tier, n <= st.maxRanked, offset, limit-len(page))
		if err != nil {
			return nil, 0, err
		}
		page, offset = append(page, more...), 0
		if len(page) == limit {
			break
		}
	}
	return page, total, nil
}

// searchTiers splits the matches of an FTS5 query by where its words are:
// all in the title; in the artist or album artist; in the album; spread
// over several columns.
func searchTiers(query string) []string {
	title := "{title} : (" + query + ")"
	artist := "{artist album_artist} : (" + query + ")"
	album := "{album} : (" + query + ")"
	return []string{
		title,
		"(" + artist + ") NOT (" + title + ")",
		"(" + album + ") NOT (" + title + " OR " + artist + ")",
		"(" + query + ") NOT (" + title + " OR " + artist + " OR " + album + ")",
	}
}

// countMatches counts the songs an FTS5 query matches.
func (st *store) countMatches(match string) (n int, err error) {
	err = st.db.QueryRow(`SELECT count(*) FROM song_text WHERE song_text MATCH ?`, match).Scan(&n)
	return n, err
}

// matchPage returns the page of limit songs from offset on that an FTS5
// query matches, ranked by bm25 (rank, configured with searchWeights in
// songTextTriggers) or in library order. rowid breaks ties, so pages
// follow one order.
func (st *store) matchPage(match string, ranked bool, offset, limit int) ([]protocol.Song, error) {
	inner := `SELECT rowid, 0 AS rank FROM song_text WHERE song_text MATCH ? ORDER BY rowid LIMIT ? OFFSET ?`
	if ranked {
		inner = `SELECT rowid, rank FROM song_text WHERE song_text MATCH ? ORDER BY rank, rowid LIMIT ? OFFSET ?`
	}
	rows, err := st.db.Query(`SELECT `+songColumns+` FROM (`+inner+`) m
		JOIN songs ON songs.rowid = m.rowid ORDER BY m.rank, m.rowid`, match, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return collectSongs(rows)
}

// collectSongs reads rows of songColumns, and closes them.
func collectSongs(rows *sql.Rows) ([]protocol.Song, error) {
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
