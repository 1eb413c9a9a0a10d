package e2e

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// checkIndexed reads every song's record back over MQTT and its cover
// from the song server whose address the controller's status gives.
func (run *libraryRun) checkIndexed() {
	t, r := run.t, run.r
	songsURL := songsURL(t, r)
	for _, g := range run.lib.songs {
		var got protocol.Song
		// An M4A's length is read in the background after the scan.
		if !pollLibrary(20*time.Second, func() bool { got = r.lookup(g.sha); return got.Frames > 0 }) {
			t.Fatalf("%s: no length after 20 s: %+v", g.name, got)
		}
		if want := g.indexed(); !reflect.DeepEqual(indexedPart(got, want), want) {
			t.Errorf("%s (%s):\n got %+v %+v\nwant %+v %+v", g.name, g.format, got, got.ReplayGain, want, want.ReplayGain)
		}
		picture, kind := mustGet(t, protocol.ArtURL(songsURL, g.sha))
		switch want := run.lib.cover(t, g); {
		case want != nil && string(picture) != string(want):
			t.Errorf("%s (%s): the cover served is not its own (%s, %d bytes)", g.name, g.format, kind, len(picture))
		case want == nil && kind != "image/png":
			t.Errorf("%s (%s): a song without a cover got %s, not a drawn PNG", g.name, g.format, kind)
		}
	}
}

// indexed is what the library should hold of the song: its tags (a WAV
// file has none: its title is its name), format and sample rate, and its
// length where the format keeps it exact.
func (g *libSong) indexed() protocol.Song {
	tags := g.tags
	want := protocol.Song{SHA256: g.sha, Format: strings.TrimPrefix(musicgen.Ext(g.format), "."), SampleRate: rate}
	if g.format == musicgen.Opus {
		want.SampleRate = 48000
	}
	if lossless(g.format) {
		want.Frames = int64(g.seconds * rate)
	}
	if g.format == musicgen.WAV {
		want.Title = g.name
		return want
	}
	want.Title, want.Artist, want.Album, want.AlbumArtist, want.Genre = tags.Title, tags.Artist, tags.Album, tags.AlbumArtist, tags.Genre
	want.Track, want.TrackTotal, want.Disc, want.DiscTotal, want.Year = tags.Track, tags.TrackTotal, tags.Disc, tags.DiscTotal, tags.Year
	if tags.TrackGainDb != nil {
		want.ReplayGain = &protocol.ReplayGain{Track: protocol.Gain{Db: *tags.TrackGainDb}}
	}
	return want
}

// indexedPart is got with only the fields want says something of: the
// link, size, added time and (of a lossy song, whose encoder pads it) the
// length are the controller's own, and so is the ReplayGain of a song
// whose tags give none (measured, or none).
func indexedPart(got, want protocol.Song) protocol.Song {
	got.URI, got.Size, got.AddedNs, got.DurationNs = "", 0, 0, 0
	if want.Frames == 0 {
		got.Frames = 0
	}
	if want.ReplayGain == nil {
		got.ReplayGain = nil
	}
	return got
}

// cover is the picture song g's cover should be: the one it embeds, else
// its folder's cover.jpg; nil for none (a drawn one is served).
func (lib *musicLibrary) cover(t *testing.T, g *libSong) []byte {
	t.Helper()
	path := lib.coverFile(g.cover)
	if g.cover == 0 {
		if _, ok := lib.folder[g.dir]; !ok {
			return nil
		}
		path = filepath.Join(lib.dir, g.dir, "cover.jpg")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// get fetches url and returns the body and its type; anything but 200 is
// an error.
func get(url string) (body []byte, contentType string, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Type"), err
}

// mustGet is get, failing the test on an error.
func mustGet(t *testing.T, url string) (body []byte, contentType string) {
	t.Helper()
	body, contentType, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	return body, contentType
}

// checkBrowse browses over MQTT from the artists to Miles Davis's albums
// to Kind of Blue's tracks, each step by the link the one before gave,
// and searches for a word that is one song's title and other songs'
// artist and album.
func (run *libraryRun) checkBrowse() {
	t, r, lib := run.t, run.r, run.lib
	artists := resultOf[protocol.ArtistsResult](t, r.library(`"cmd":"artists"`))
	var names, wantNames []string
	for _, a := range artists.Artists {
		names = append(names, a.Name)
	}
	for _, g := range lib.songs {
		if g.format != musicgen.WAV { // untagged: no artist
			wantNames = append(wantNames, cmp.Or(g.tags.AlbumArtist, g.tags.Artist))
		}
	}
	slices.Sort(wantNames)
	wantNames = slices.Compact(wantNames)
	if artists.Total != len(wantNames) || !sameSet(names, wantNames) {
		t.Fatalf("artists %v (total %d), want %v: a compilation's under its album artist", names, artists.Total, wantNames)
	}
	i := slices.Index(names, "Miles Davis")
	miles := artists.Artists[i]
	if miles.Albums != 2 || miles.Songs != 5 {
		t.Errorf("Miles Davis: %d albums, %d songs; want 2 and 5", miles.Albums, miles.Songs)
	}

	albums := resultOf[protocol.AlbumsResult](t, r.library(fmt.Sprintf(`"cmd":"albums","link":%q`, miles.URI)))
	var titles []string
	for _, a := range albums.Albums {
		titles = append(titles, a.Title)
		// An album's cover is its first song's.
		if picture, _ := mustGet(t, a.Cover); string(picture) != string(lib.cover(t, lib.firstOf(t, a.Title))) {
			t.Errorf("album %s: its cover %s is not its songs'", a.Title, a.Cover)
		}
	}
	if !slices.Equal(titles, []string{"Kind of Blue", "Milestones"}) || albums.Albums[0].Year != 1959 {
		t.Fatalf("albums of Miles Davis: %+v", albums.Albums)
	}

	tracks := resultOf[protocol.SearchResult](t, r.library(fmt.Sprintf(`"cmd":"tracks","link":%q`, albums.Albums[0].URI)))
	titles = titles[:0]
	for _, s := range tracks.Songs {
		titles = append(titles, s.Title)
	}
	if want := []string{"So What", deletedTitle, "Flamenco Sketches"}; !slices.Equal(titles, want) {
		t.Errorf("tracks of Kind of Blue %v, want disc and track order %v", titles, want)
	}

	found := resultOf[protocol.SearchResult](t, r.library(fmt.Sprintf(`"cmd":"search","query":%q`, searchWord)))
	var ranked []string
	for _, s := range found.Songs {
		ranked = append(ranked, s.Title+" by "+s.Artist+" on "+s.Album)
	}
	if want := lib.matching(searchWord); found.Total != want || len(found.Songs) == 0 || !strings.EqualFold(found.Songs[0].Title, searchWord) {
		t.Errorf("search %q ranked %v (total %d); want the song titled so first, of %d", searchWord, ranked, found.Total, want)
	}
}

// firstOf is the first song of album in disc and track order.
func (lib *musicLibrary) firstOf(t *testing.T, album string) *libSong {
	t.Helper()
	var first *libSong
	for _, g := range lib.songs {
		if g.tags.Album == album && (first == nil || g.tags.Disc < first.tags.Disc ||
			g.tags.Disc == first.tags.Disc && g.tags.Track < first.tags.Track) {
			first = g
		}
	}
	if first == nil {
		t.Fatalf("no album %q in the library", album)
	}
	return first
}

// matching counts the songs with a word of their title, artist, album or
// album artist starting with word, as search matches the last word.
func (lib *musicLibrary) matching(word string) int {
	n := 0
	for _, g := range lib.songs {
		if g.format == musicgen.WAV {
			continue
		}
		for _, w := range strings.Fields(strings.ToLower(strings.Join([]string{g.tags.Title, g.tags.Artist, g.tags.Album, g.tags.AlbumArtist}, " "))) {
			if strings.HasPrefix(w, word) {
				n++
				break
			}
		}
	}
	return n
}

// sameSet says whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
