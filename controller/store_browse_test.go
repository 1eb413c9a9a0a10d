package controller

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// taggedLibrary is a library of varied tags: artists with albums over two
// discs, a compilation whose songs each have their own artist, an artist
// whose name is also her album's title and her songs' album artist, a song
// titled with her name by someone else, untagged songs, and genres spelled
// in two cases.
type taggedLibrary struct {
	songs []protocol.Song
	added map[string]int64 // song → when it was added
}

const (
	testArtists      = 12
	testAlbums       = 3 // per artist
	testDiscs        = 2
	testTracks       = 5 // per disc
	testCompilation  = 10
	testUntagged     = 4
	testArtistSongs  = testAlbums * testDiscs * testTracks
	testBeyonceSongs = 3
)

func newTaggedLibrary() taggedLibrary {
	lib := taggedLibrary{added: map[string]int64{}}
	add := func(s protocol.Song, added int64) {
		s.SHA256 = hashOf([]byte(fmt.Sprint(len(lib.songs), s.Title, s.Artist)))
		s.Format, s.Size, s.Frames, s.SampleRate = "flac", 1000, 44100, 44100
		lib.songs = append(lib.songs, s)
		lib.added[s.SHA256] = added
	}
	genres := []string{"Jazz", "jazz", "Rock"}
	for a := range testArtists {
		for b := range testAlbums {
			for d := 1; d <= testDiscs; d++ {
				for tr := 1; tr <= testTracks; tr++ {
					add(protocol.Song{Title: fmt.Sprintf("Song %d-%d", d, tr), Artist: fmt.Sprintf("Artist %02d", a),
						Album: fmt.Sprintf("Album %c", 'A'+b), Year: 2000 - b, Disc: d, DiscTotal: testDiscs, Track: tr,
						TrackTotal: testTracks, Genre: genres[a%len(genres)]}, int64(1000+a*10+b))
				}
			}
		}
	}
	for i := range testCompilation {
		add(protocol.Song{Title: fmt.Sprintf("Hit %d", i), Artist: fmt.Sprintf("Guest %d", i), AlbumArtist: "Various Artists",
			Album: "Hits", Track: i + 1, Year: 1999, Genre: "Pop"}, 5000)
	}
	for i, title := range []string{"Formation", "Drunk in Love", "Partition"} {
		add(protocol.Song{Title: title, Artist: "Beyoncé", AlbumArtist: "Beyoncé", Album: "Beyoncé", Track: i + 1, Year: 2013, Genre: "R&B"}, 100)
	}
	add(protocol.Song{Title: "Beyonce Tribute", Artist: "Cover Band", Album: "Covers", Track: 1, Genre: "Pop"}, 200)
	for i := range testUntagged {
		add(protocol.Song{Title: fmt.Sprintf("untitled %d", i)}, 300)
	}
	return lib
}

// store adds the library's songs to st in a shuffled order.
func (lib taggedLibrary) addTo(t testing.TB, st *store) {
	t.Helper()
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(lib.songs))
	for _, i := range order {
		s := lib.songs[i]
		if err := st.addSong(s, lib.added[s.SHA256]); err != nil {
			t.Fatal(err)
		}
	}
}

func (lib taggedLibrary) find(title, artist string) protocol.Song {
	for _, s := range lib.songs {
		if s.Title == title && s.Artist == artist {
			return s
		}
	}
	panic("no song " + title)
}

func titles(songs []protocol.Song) []string {
	out := make([]string, len(songs))
	for i, s := range songs {
		out[i] = s.Title + "/" + s.Artist
	}
	return out
}

func TestSearchRanksAndFolds(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	lib := newTaggedLibrary()
	lib.addTo(t, st)

	// A title match first, above songs whose artist, album and album
	// artist all hold the word; accents and case folded.
	found, total, err := st.searchSongs([]string{"BEYONCE"}, 0, 10)
	if err != nil || total != testBeyonceSongs+1 || len(found) != total || found[0].Title != "Beyonce Tribute" {
		t.Fatalf("search beyonce: %v (%d in all), %v", titles(found), total, err)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"beyoncé", "form"}, []string{"Formation/Beyoncé"}}, // the last word is a prefix
		{[]string{"partit"}, []string{"Partition/Beyoncé"}},
		{[]string{"drunk", "love"}, []string{"Drunk in Love/Beyoncé"}},
		{[]string{"form", "beyonce"}, []string{"Formation/Beyoncé"}[:0]}, // only the last word is a prefix
		{[]string{"various", "hit", "9"}, []string{"Hit 9/Guest 9"}},     // album artist
		{[]string{"guest", "3"}, []string{"Hit 3/Guest 3"}},
		{[]string{"untitled", "2"}, []string{"untitled 2/"}},
		{[]string{`"untitled`, `2"*`}, []string{"untitled 2/"}}, // FTS5 syntax is plain text
		{[]string{"NEAR(untitled"}, []string{}},
	} {
		found, total, err := st.searchSongs(tc.words, 0, 50)
		if err != nil || total != len(tc.want) || !slices.Equal(titles(found), tc.want) {
			t.Errorf("search %q: %v (%d in all), %v; want %v", tc.words, titles(found), total, err, tc.want)
		}
	}

	// Pages of a broad search hold every match once, in a stable order.
	var seen []string
	for offset := 0; ; offset += 7 {
		page, total, err := st.searchSongs([]string{"song"}, offset, 7)
		if err != nil || total != testArtists*testArtistSongs {
			t.Fatalf("page at %d: %d songs of %d, %v", offset, len(page), total, err)
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			seen = append(seen, s.SHA256)
		}
	}
	if slices.Sort(seen); len(slices.Compact(seen)) != testArtists*testArtistSongs {
		t.Fatalf("pages held %d different songs", len(seen))
	}

	// The index follows changes and removals.
	tribute := lib.find("Beyonce Tribute", "Cover Band")
	tribute.Title = "Homage"
	if err := st.putSong(tribute, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.deleteSong(lib.find("Formation", "Beyoncé").SHA256); err != nil {
		t.Fatal(err)
	}
	if found, _, err := st.searchSongs([]string{"beyonce"}, 0, 10); err != nil || len(found) != testBeyonceSongs-1 {
		t.Fatalf("after a change and a removal: %v, %v", titles(found), err)
	}
	if found, _, err := st.searchSongs([]string{"tribute"}, 0, 10); err != nil || len(found) != 0 {
		t.Fatalf("old title still found: %v, %v", titles(found), err)
	}
	if found, _, err := st.searchSongs([]string{"homage"}, 0, 10); err != nil || !slices.Equal(titles(found), []string{"Homage/Cover Band"}) {
		t.Fatalf("new title: %v, %v", titles(found), err)
	}
}

func TestBrowseLists(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	lib := newTaggedLibrary()
	lib.addTo(t, st)
	// A placeholder record and a missing song are left out.
	if err := st.placeholdSongs([]protocol.Entry{{Song: hashOf([]byte("placeholder")), Title: "Ghost", Artist: "Artist 00"}}, 1); err != nil {
		t.Fatal(err)
	}
	gone := lib.find("Song 1-1", "Artist 01")
	if _, err := st.db.Exec(`UPDATE songs SET missing = 1 WHERE sha256 = ?`, gone.SHA256); err != nil {
		t.Fatal(err)
	}
	all := page{limit: 1000}

	artists, total, err := st.artists(only{}, all)
	wantArtists := testArtists + 3 // Beyoncé, Cover Band, Various Artists
	if err != nil || total != wantArtists || len(artists) != total {
		t.Fatalf("artists: %d of %d, %v", len(artists), total, err)
	}
	names := []string{}
	for _, a := range artists {
		names = append(names, a.Name)
	}
	if names[0] != "Artist 00" || names[testArtists-1] != "Artist 11" || !slices.Equal(names[testArtists:], []string{"Beyoncé", "Cover Band", "Various Artists"}) {
		t.Fatalf("artists in order: %q", names)
	}
	for _, a := range artists {
		want := protocol.Artist{ID: protocol.ArtistID(a.Name), URI: protocol.ArtistURI(protocol.ArtistID(a.Name)), Name: a.Name, Albums: testAlbums, Songs: testArtistSongs}
		switch a.Name {
		case "Artist 01":
			want.Songs-- // the missing one
		case "Various Artists":
			want.Albums, want.Songs = 1, testCompilation
		case "Beyoncé":
			want.Albums, want.Songs = 1, testBeyonceSongs
		case "Cover Band":
			want.Albums, want.Songs = 1, 1
		}
		if a != want {
			t.Errorf("artist %+v, want %+v", a, want)
		}
	}

	// Pages of any size add up to the whole list.
	for _, size := range []int{1, 4, 7} {
		var paged []protocol.Artist
		for offset := 0; offset < wantArtists+size; offset += size {
			part, total, err := st.artists(only{}, page{offset: offset, limit: size})
			if err != nil || total != wantArtists || len(part) > size {
				t.Fatalf("page %d+%d: %d of %d, %v", offset, size, len(part), total, err)
			}
			paged = append(paged, part...)
		}
		if !slices.Equal(paged, artists) {
			t.Fatalf("pages of %d: %d artists, want %d in the same order", size, len(paged), len(artists))
		}
	}

	jazz, total, err := st.artists(only{genre: "JAZZ"}, all)
	if err != nil || total != 8 || jazz[0].Name != "Artist 00" || jazz[1].Name != "Artist 01" || jazz[2].Name != "Artist 03" {
		t.Fatalf("jazz artists (either case): %+v, %d, %v", jazz, total, err)
	}

	a01 := protocol.ArtistID("Artist 01")
	albums, _, total, err := st.albums(only{artist: a01}, byArtist, all)
	if err != nil || total != testAlbums || len(albums) != testAlbums {
		t.Fatalf("albums of Artist 01: %+v, %v", albums, err)
	}
	for i, a := range albums {
		title := fmt.Sprintf("Album %c", 'A'+i)
		want := protocol.Album{ID: protocol.AlbumID("Artist 01", title), URI: protocol.AlbumURI(protocol.AlbumID("Artist 01", title)),
			Title: title, Artist: "Artist 01", ArtistURI: protocol.ArtistURI(a01), Year: 2000 - i, Songs: testDiscs * testTracks, AddedNs: int64(1010 + i)}
		if i == 0 {
			want.Songs--
		}
		if a != want {
			t.Errorf("album %+v, want %+v", a, want)
		}
	}
	hits, covers, total, err := st.albums(only{artist: protocol.ArtistID("various artists")}, byArtist, all)
	if err != nil || total != 1 || hits[0].Title != "Hits" || hits[0].Songs != testCompilation || covers[0] != lib.find("Hit 0", "Guest 0").SHA256 {
		t.Fatalf("the compilation: %+v, covers %v, %v", hits, covers, err)
	}
	every, _, total, err := st.albums(only{}, byArtist, all)
	if err != nil || total != testArtists*testAlbums+3 || every[0].Artist != "Artist 00" || every[len(every)-1].Title != "Hits" {
		t.Fatalf("all albums: %d, first %+v, %v", total, every[0], err)
	}

	recent, _, _, err := st.albums(only{}, byAdded, page{limit: 3})
	if err != nil || len(recent) != 3 || recent[0].Title != "Hits" || recent[1].Artist != "Artist 11" || recent[1].Title != "Album C" {
		t.Fatalf("recent: %+v, %v", recent, err)
	}

	genres, total, err := st.genres(all)
	want := []protocol.Genre{{Name: "Jazz", Songs: 8 * testArtistSongs}, {Name: "Pop", Songs: testCompilation + 1},
		{Name: "R&B", Songs: testBeyonceSongs}, {Name: "Rock", Songs: 4 * testArtistSongs}}
	want[0].Songs-- // the missing song
	if err != nil || total != len(want) || !slices.Equal(genres, want) {
		t.Fatalf("genres: %+v (%d), %v; want %+v", genres, total, err, want)
	}

	// The lists follow removals and changes.
	if err := st.deleteSong(lib.find("Beyonce Tribute", "Cover Band").SHA256); err != nil {
		t.Fatal(err)
	}
	hit := lib.find("Hit 0", "Guest 0")
	hit.Genre, hit.Album = "rock", "Hits Redux"
	if err := st.putSong(hit, 1); err != nil {
		t.Fatal(err)
	}
	if _, total, err := st.artists(only{}, all); err != nil || total != wantArtists-1 {
		t.Fatalf("artists after Cover Band's one song went: %d, %v", total, err)
	}
	want[1].Songs -= 2 // Pop: the tribute went, a hit became rock
	want[3].Songs++
	if genres, _, err := st.genres(all); err != nil || !slices.Equal(genres, want) {
		t.Fatalf("genres after changes: %+v, %v; want %+v", genres, err, want)
	}
	if hits, _, _, err := st.albums(only{artist: protocol.ArtistID("Various Artists")}, byArtist, all); err != nil || len(hits) != 2 ||
		hits[0].Title != "Hits" || hits[0].Songs != testCompilation-1 || hits[1].Title != "Hits Redux" || hits[1].Songs != 1 {
		t.Fatalf("albums after a song moved: %+v, %v", hits, err)
	}
}

func TestBrowseTracksInOrder(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	lib := newTaggedLibrary()
	lib.addTo(t, st)
	album := protocol.Link{Kind: protocol.LinkAlbum, ID: protocol.AlbumID("Artist 02", "Album B")}
	songs, total, err := st.linkedSongs(album, page{limit: 100})
	want := []string{}
	for d := 1; d <= testDiscs; d++ {
		for tr := 1; tr <= testTracks; tr++ {
			want = append(want, fmt.Sprintf("Song %d-%d/Artist 02", d, tr))
		}
	}
	if err != nil || total != len(want) || !slices.Equal(titles(songs), want) {
		t.Fatalf("album tracks: %v (%d), %v", titles(songs), total, err)
	}
	part, total, err := st.linkedSongs(album, page{offset: 3, limit: 4})
	if err != nil || total != len(want) || !slices.Equal(titles(part), want[3:7]) {
		t.Fatalf("a page of tracks: %v (%d), %v", titles(part), total, err)
	}

	// An artist's songs: albums by year (Album C, 1998, first), then disc
	// and track.
	artist := protocol.Link{Kind: protocol.LinkArtist, ID: protocol.ArtistID("artist  02")}
	songs, total, err = st.linkedSongs(artist, page{limit: 100})
	if err != nil || total != testArtistSongs || songs[0].Album != "Album C" || songs[len(songs)-1].Album != "Album A" ||
		!slices.Equal(titles(songs[testArtistSongs-len(want):]), want) {
		t.Fatalf("artist's tracks: %v, %v", titles(songs), err)
	}
	// A compilation's songs are its album artist's.
	various := protocol.Link{Kind: protocol.LinkArtist, ID: protocol.ArtistID("Various Artists")}
	if songs, total, err := st.linkedSongs(various, page{limit: 100}); err != nil || total != testCompilation || songs[0].Title != "Hit 0" {
		t.Fatalf("various artists: %v, %v", titles(songs), err)
	}
	guest := protocol.Link{Kind: protocol.LinkArtist, ID: protocol.ArtistID("Guest 1")}
	if songs, total, err := st.linkedSongs(guest, page{limit: 100}); err != nil || total != 0 {
		t.Fatalf("a compilation's guest listed as an artist: %v, %v", titles(songs), err)
	}
}

// TestStoreIndexesOlderDatabase: a database written before the full-text
// index and the browse ids existed gets both when opened.
func TestStoreIndexesOlderDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tutti.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE songs (sha256 TEXT PRIMARY KEY, title TEXT NOT NULL, artist TEXT NOT NULL,
		album TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL, frames INTEGER NOT NULL,
		sample_rate INTEGER NOT NULL, added_ns INTEGER NOT NULL);
		INSERT INTO songs VALUES ('` + hashOf([]byte("old")) + `', 'Águas de Março', 'Elis Regina', 'Elis & Tom', 'mp3', 1, 1, 44100, 7)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if found, _, err := st.searchSongs([]string{"aguas", "marco"}, 0, 10); err != nil || len(found) != 1 {
		t.Fatalf("search an older database: %v, %v", titles(found), err)
	}
	albums, _, _, err := st.albums(only{artist: protocol.ArtistID("Elis Regina")}, byArtist, page{limit: 10})
	if err != nil || len(albums) != 1 || albums[0].ID != protocol.AlbumID("Elis Regina", "Elis & Tom") {
		t.Fatalf("albums of an older database: %+v, %v", albums, err)
	}
}

// TestSongGroupsFollowTheSongs: while songs are added, changed (tags,
// missing or not) and removed in a random order, the song groups the
// triggers keep are those a recount of every song makes.
func TestSongGroupsFollowTheSongs(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	read := func(query string) []string {
		rows, err := st.db.Query(`SELECT * FROM (` + query + `) ORDER BY 1, 2, 3 COLLATE NOCASE`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var artistID, albumID, genre, artist, album string
			var year, songs, added int64
			if err := rows.Scan(&artistID, &albumID, &genre, &artist, &album, &year, &songs, &added); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(artistID, albumID, genre, artist, album, year, songs, added))
		}
		return out
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	var shas []string
	groups := 0
	for step := range 1000 {
		switch op := rng.IntN(10); {
		case op < 6 || len(shas) == 0:
			s := protocol.Song{SHA256: hashOf(fmt.Append(nil, "group", step)), Title: fmt.Sprint("t", step),
				Artist: pick("Nina Simone", "nina  simone", "Guest", ""), AlbumArtist: pick("", "", "Various Artists"),
				Album: pick("Pastel Blues", "pastel blues", "Hits", ""), Genre: pick("Jazz", "jazz", "", "Soul"),
				Year: 1960 + rng.IntN(10), Format: pick("flac", "flac", "flac", ""), Size: 1, Frames: 1, SampleRate: 44100}
			if err := st.putSong(s, int64(rng.IntN(1000))); err != nil {
				t.Fatal(err)
			}
			shas = append(shas, s.SHA256)
		case op < 8:
			if _, err := st.db.Exec(`UPDATE songs SET missing = ?, genre = ? WHERE sha256 = ?`,
				rng.IntN(2), pick("Jazz", "jazz", "Blues"), shas[rng.IntN(len(shas))]); err != nil {
				t.Fatal(err)
			}
		default:
			i := rng.IntN(len(shas))
			if err := st.deleteSong(shas[i]); err != nil {
				t.Fatal(err)
			}
			shas = slices.Delete(shas, i, i+1)
		}
		kept := read(`SELECT * FROM song_groups`)
		recounted := read(groupSongs + ` WHERE ` + browsable("") + ` GROUP BY artist_id, album_id, genre COLLATE NOCASE`)
		if !slices.Equal(kept, recounted) {
			t.Fatalf("step %d: song groups kept:\n%v\nrecounted:\n%v", step, kept, recounted)
		}
		groups = max(groups, len(kept))
	}
	if groups < 10 {
		t.Fatalf("at most %d song groups: the test made too few to tell", groups)
	}
}

func TestSearchBeyondRankedMatchesKeepsTitlesFirst(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	st.maxRanked = 2
	// Three songs of each tier for "river flow", added tier by tier in
	// reverse so that library order (rowid) is not tier order.
	tiers := [][]protocol.Song{
		{{Title: "River Flow"}, {Title: "flow of the river"}, {Title: "River Flows", Artist: "River Flow"}},
		{{Title: "a", Artist: "River Flow"}, {Title: "b", AlbumArtist: "the flow river"}, {Title: "c", Artist: "river", AlbumArtist: "flow"}},
		{{Title: "d", Album: "River Flow"}, {Title: "e", Album: "flow river"}, {Title: "f", Album: "River Flowing"}},
		{{Title: "river", Artist: "flow"}, {Title: "g", Artist: "river", Album: "flow"}, {Title: "river", Album: "Flows"}},
	}
	var want []string
	for i := range tiers {
		for j, s := range tiers[i] {
			s.SHA256 = hashOf(fmt.Append(nil, i, j))
			s.Format, s.Size, s.Frames, s.SampleRate = "flac", 1000, 44100, 44100
			tiers[i][j] = s
		}
		want = append(want, titles(tiers[i])...)
	}
	for i := len(tiers) - 1; i >= 0; i-- {
		for _, s := range tiers[i] {
			if err := st.addSong(s, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.addSong(protocol.Song{SHA256: hashOf([]byte("other")), Title: "river", Format: "flac", Size: 1, Frames: 1, SampleRate: 44100}, 1); err != nil {
		t.Fatal(err)
	}

	// Pages of five cross the tiers, each tier in library order.
	var got []string
	for offset := 0; offset < 20; offset += 5 {
		page, total, err := st.searchSongs([]string{"river", "flow"}, offset, 5)
		if err != nil || total != len(want) {
			t.Fatalf("page at %d: %v (%d in all), %v", offset, titles(page), total, err)
		}
		got = append(got, titles(page)...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("search beyond the ranked matches:\n got %v\nwant %v", got, want)
	}

	// A tier small enough is ranked: the exact title before the longer one.
	st.maxRanked = 3
	page, _, err := st.searchSongs([]string{"river", "flow"}, 0, 3)
	if err != nil || len(page) != 3 || page[0].Title != "River Flow" {
		t.Fatalf("ranked tier: %v, %v", titles(page), err)
	}
}
