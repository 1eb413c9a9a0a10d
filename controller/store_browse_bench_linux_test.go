package controller

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tutti-audio/tutti/protocol"
)

// benchSongs is the size of the library the browse and search figures are
// measured at: a household's large collection.
const benchSongs = 20_000

// benchWords make the texts of the songs fillBenchLibrary adds.
var benchWords = []string{"love", "night", "blue", "home", "river", "light", "dance", "heart", "rain", "fire", "gold", "road",
	"dream", "summer", "city", "moon", "song", "time", "world", "angel", "Beyoncé", "café", "déjà", "vu"}

// benchArtist is the name of fillBenchLibrary's artist n.
func benchArtist(n int) string { return fmt.Sprintf("%s %d", benchWords[n%len(benchWords)], n) }

// fillBenchLibrary adds benchSongs songs to st in one transaction: albums
// of 12 songs by 600 artists, every tenth album a compilation whose songs
// each have their own artist, 30 genres, words drawn from a small
// vocabulary so that searches match hundreds of songs.
func fillBenchLibrary(tb testing.TB, st *store) {
	tb.Helper()
	words := benchWords
	rng := rand.New(rand.NewPCG(3, 4))
	word := func() string { return words[rng.IntN(len(words))] }
	tx, err := st.db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	insert, err := tx.Prepare(`INSERT INTO songs (` + songWriteColumns + `) VALUES (` + songValues + `)`)
	if err != nil {
		tb.Fatal(err)
	}
	defer insert.Close()
	for i := range benchSongs {
		album, track := i/12, i%12+1
		s := protocol.Song{SHA256: hashOf(fmt.Append(nil, "bench", i)), Title: word() + " " + word() + " " + word(),
			Artist: benchArtist(album % 600),
			Album:  fmt.Sprintf("%s %s %d", words[album%len(words)], words[album/len(words)%len(words)], album),
			Track:  track, TrackTotal: 12, Disc: 1, Year: 1960 + album%60, Genre: fmt.Sprint("Genre ", album%30),
			Format: "flac", Size: 30 << 20, Frames: 44100 * 240, SampleRate: 44100}
		if album%10 == 0 {
			s.AlbumArtist, s.Artist = "Various Artists", fmt.Sprintf("Guest %d", i)
		}
		if _, err := insert.Exec(songArgs(s, int64(i))...); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLibraryQueries measures each search and browse query at
// benchSongs songs in a real SQLite store: p50 and p99 of its latency, and
// of the CPU time its thread spent, which the machine's load does not
// inflate (on a shared machine the latency's tail is mostly waiting for a
// core).
// Run: go test -tags sqlite_fts5 -run XXX -bench LibraryQueries -benchtime 400x ./controller/
func BenchmarkLibraryQueries(b *testing.B) {
	st := openTestStore(b, b.TempDir())
	defer st.Close()
	fillBenchLibrary(b, st)
	artist := protocol.Link{Kind: protocol.LinkArtist, ID: protocol.ArtistID(benchArtist(17))}
	album := protocol.Link{Kind: protocol.LinkAlbum, ID: protocol.AlbumID("Various Artists", "")}
	albums, _, _, err := st.albums(only{artist: artist.ID}, byArtist, page{limit: 1})
	if err != nil || len(albums) == 0 {
		b.Fatal(albums, err)
	}
	album.ID = albums[0].ID
	full := page{limit: protocol.MaxBrowsePage}
	for _, q := range []struct {
		name string
		run  func() (int, error)
	}{
		{"search/one-word", func() (int, error) {
			s, _, err := st.searchSongs([]string{"love"}, 0, protocol.MaxSearchPage)
			return len(s), err
		}},
		{"search/two-words", func() (int, error) {
			s, _, err := st.searchSongs([]string{"blue", "moon"}, 0, protocol.MaxSearchPage)
			return len(s), err
		}},
		{"search/prefix", func() (int, error) {
			s, _, err := st.searchSongs([]string{"beyonce", "d"}, 0, protocol.MaxSearchPage)
			return len(s), err
		}},
		{"search/deep-page", func() (int, error) {
			s, _, err := st.searchSongs([]string{"night"}, 1000, protocol.MaxSearchPage)
			return len(s), err
		}},
		{"artists", func() (int, error) { a, _, err := st.artists(only{}, full); return len(a), err }},
		{"artists/genre", func() (int, error) { a, _, err := st.artists(only{genre: "Genre 7"}, full); return len(a), err }},
		{"albums", func() (int, error) { a, _, _, err := st.albums(only{}, byArtist, full); return len(a), err }},
		{"albums/last-page", func() (int, error) {
			a, _, _, err := st.albums(only{}, byArtist, page{offset: benchSongs/12 - 100, limit: protocol.MaxBrowsePage})
			return len(a), err
		}},
		{"albums/artist", func() (int, error) {
			a, _, _, err := st.albums(only{artist: artist.ID}, byArtist, full)
			return len(a), err
		}},
		{"recent", func() (int, error) { a, _, _, err := st.albums(only{}, byAdded, full); return len(a), err }},
		{"genres", func() (int, error) { g, _, err := st.genres(full); return len(g), err }},
		{"tracks/album", func() (int, error) {
			s, _, err := st.linkedSongs(album, page{limit: protocol.MaxSearchPage})
			return len(s), err
		}},
		{"tracks/artist", func() (int, error) {
			s, _, err := st.linkedSongs(artist, page{limit: protocol.MaxSearchPage})
			return len(s), err
		}},
	} {
		b.Run(q.name, func(b *testing.B) {
			runtime.LockOSThread() // the thread's CPU time is the query's
			defer runtime.UnlockOSThread()
			var took, cpu []time.Duration
			for b.Loop() {
				start, startCPU := time.Now(), threadCPU()
				n, err := q.run()
				took, cpu = append(took, time.Since(start)), append(cpu, threadCPU()-startCPU)
				if err != nil || n == 0 {
					b.Fatalf("%d results, %v", n, err)
				}
			}
			for _, m := range []struct {
				name string
				d    []time.Duration
			}{{"", took}, {"cpu-", cpu}} {
				slices.Sort(m.d)
				b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, m.name+"p50-ms")
				b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds())/1000, m.name+"p99-ms")
			}
		})
	}
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() time.Duration {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
