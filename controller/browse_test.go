package controller

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// longNames are songs whose album, artist and title are as long as texts
// get, of characters JSON escapes six times over: a page of MaxBrowsePage
// of their albums or artists would not fit in a message.
func longNames(n int) []protocol.Song {
	long := strings.Repeat("<", protocol.MaxSongText-4)
	var songs []protocol.Song
	for i := range n {
		name := fmt.Sprintf("%04d", i) + long
		songs = append(songs, protocol.Song{SHA256: hashOf([]byte("long" + name)), Title: name, Artist: name, Album: name,
			Format: "mp3", Size: 1, Frames: 44100, SampleRate: 44100})
	}
	return songs
}

// pages asks for every page of a browse command as user, checking that each
// fits and holds no more than asked, and returns the items in order.
func pages[T any](t *testing.T, tc *testClient, user, request string, items func(json.RawMessage) ([]T, int, int)) []T {
	t.Helper()
	var all []T
	for offset := 0; ; {
		reply := tc.ask(protocol.LibraryCommandTopic, user, strings.Replace(request, "}", fmt.Sprintf(`,"offset":%d}`, offset), 1))
		if !reply.OK {
			t.Fatalf("%s from %d: %+v", request, offset, reply)
		}
		if n := len(protocol.Encode(reply)); n > protocol.MaxPayload {
			t.Fatalf("%s from %d: a reply of %d bytes", request, offset, n)
		}
		page, pageOffset, total := items(reply.Result)
		if pageOffset != offset || len(page) == 0 && offset < total {
			t.Fatalf("%s from %d: %d items at %d of %d", request, offset, len(page), pageOffset, total)
		}
		all = append(all, page...)
		if offset += len(page); offset >= total {
			return all
		}
	}
}

func decodeAs[R any](t *testing.T) func(json.RawMessage) R {
	return func(b json.RawMessage) R {
		t.Helper()
		var r R
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("result %.200s: %v", b, err)
		}
		return r
	}
}

// TestBrowseOverMQTT: members browse artists, albums, recent albums,
// genres and tracks over the real broker, in pages that always fit a
// message even when every name is as long and escaped as it gets; links
// that are malformed, of the wrong kind or unknown are refused with a
// clear error; lookup expands album and artist links. While one member
// floods the library with browse requests (each answered or refused by
// the rate limit), another's requests are answered.
func TestBrowseOverMQTT(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Roles: func(string) string { return roleMember }})
	lib := newTaggedLibrary()
	lib.addTo(t, c.store)
	const long = 300
	for _, s := range longNames(long) {
		if err := c.store.addSong(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")

	artists := pages(t, tc, "bob", `{"cmd":"artists"}`, func(b json.RawMessage) ([]protocol.Artist, int, int) {
		r := decodeAs[protocol.ArtistsResult](t)(b)
		if len(r.Artists) >= protocol.MaxBrowsePage {
			t.Fatalf("a page of %d long artists", len(r.Artists))
		}
		return r.Artists, r.Offset, r.Total
	})
	if len(artists) != testArtists+3+long || artists[0].Name != "0000"+strings.Repeat("<", protocol.MaxSongText-4) || artists[long].Name != "Artist 00" {
		t.Fatalf("%d artists, first %.10q, then %.10q", len(artists), artists[0].Name, artists[long].Name)
	}
	albums := pages(t, tc, "bob", `{"cmd":"albums"}`, func(b json.RawMessage) ([]protocol.Album, int, int) {
		r := decodeAs[protocol.AlbumsResult](t)(b)
		return r.Albums, r.Offset, r.Total
	})
	if len(albums) != testArtists*testAlbums+3+long {
		t.Fatalf("%d albums", len(albums))
	}
	for _, a := range albums {
		if a.Cover == "" || !strings.HasSuffix(a.Cover, protocol.ArtPath+lib.firstSong(a.ID, c.store)) {
			t.Fatalf("album %q: cover %q", a.Title, a.Cover)
		}
	}
	genres := pages(t, tc, "bob", `{"cmd":"genres","limit":2}`, func(b json.RawMessage) ([]protocol.Genre, int, int) {
		r := decodeAs[protocol.GenresResult](t)(b)
		if len(r.Genres) > 2 {
			t.Fatalf("a page of %d genres, asked for 2", len(r.Genres))
		}
		return r.Genres, r.Offset, r.Total
	})
	if len(genres) != 4 || genres[0].Name != "Jazz" {
		t.Fatalf("genres %+v", genres)
	}

	var recent protocol.AlbumsResult
	tc.mustAsk(protocol.LibraryCommandTopic, "bob", `{"cmd":"recent","limit":2}`, &recent)
	if len(recent.Albums) != 2 || recent.Albums[0].Title != "Hits" || recent.Albums[1].Title != "Album C" {
		t.Fatalf("recent: %+v", recent)
	}
	var beyonce protocol.AlbumsResult
	tc.mustAsk(protocol.LibraryCommandTopic, "bob", `{"cmd":"albums","link":"`+protocol.ArtistURI(protocol.ArtistID("Beyoncé"))+`","genre":"r&b"}`, &beyonce)
	if len(beyonce.Albums) != 1 || beyonce.Albums[0].Title != "Beyoncé" || beyonce.Albums[0].Songs != testBeyonceSongs {
		t.Fatalf("Beyoncé's albums: %+v", beyonce)
	}
	var tracks protocol.SearchResult
	tc.mustAsk(protocol.LibraryCommandTopic, "bob", `{"cmd":"tracks","link":"`+beyonce.Albums[0].URI+`"}`, &tracks)
	if !slices.Equal(titles(tracks.Songs), []string{"Formation/Beyoncé", "Drunk in Love/Beyoncé", "Partition/Beyoncé"}) {
		t.Fatalf("tracks: %v", titles(tracks.Songs))
	}
	var found protocol.SearchResult
	tc.mustAsk(protocol.LibraryCommandTopic, "bob", `{"cmd":"search","query":"beyonce"}`, &found)
	if found.Total != testBeyonceSongs+1 || found.Songs[0].Title != "Beyonce Tribute" {
		t.Fatalf("search: %v", titles(found.Songs))
	}

	var album protocol.LinkResult
	tc.mustAsk(protocol.LibraryCommandTopic, "carol", `{"cmd":"lookup","song":"`+beyonce.Albums[0].URI+`"}`, &album)
	if album.Album == nil || album.Album.ID != beyonce.Albums[0].ID || album.Total != testBeyonceSongs || album.Songs[0].Title != "Formation" {
		t.Fatalf("lookup of an album: %+v", album)
	}
	var various protocol.LinkResult
	tc.mustAsk(protocol.LibraryCommandTopic, "carol", `{"cmd":"lookup","song":"tutti:artist:`+protocol.ArtistID("Various Artists")+`"}`, &various)
	if various.Artist == nil || various.Artist.Name != "Various Artists" || various.Total != testCompilation {
		t.Fatalf("lookup of an artist: %+v", various)
	}

	song := lib.songs[0].SHA256
	unknown := strings.Repeat("0", 16)
	for _, tc2 := range []struct{ request, want string }{
		{`{"cmd":"tracks","link":"tutti:album:XYZ"}`, `an album id is 16 lowercase hex digits`},
		{`{"cmd":"tracks","link":"tutti:song:` + song + `"}`, `tracks takes an album's or an artist's link, not tutti:song:` + song},
		{`{"cmd":"tracks","link":"tutti:playlist:mix"}`, `tracks takes an album's or an artist's link, not tutti:playlist:mix`},
		{`{"cmd":"tracks","link":"tutti:album:` + unknown + `"}`, `no album ` + unknown + ` in the library`},
		{`{"cmd":"tracks","link":"spotify:album:1"}`, `want a song's sha256, or a tutti:song:`},
		{`{"cmd":"tracks"}`, `tracks needs link`},
		{`{"cmd":"albums","link":"` + beyonce.Albums[0].URI + `"}`, `albums takes an artist's link, not ` + beyonce.Albums[0].URI},
		{`{"cmd":"artists","genre":"` + strings.Repeat("g", protocol.MaxGenreText+1) + `"}`, `genre longer than 64 bytes`},
		{`{"cmd":"artists","limit":-1}`, `offset and limit are at least 0`},
		{`{"cmd":"genres","link":"tutti:album:` + unknown + `"}`, `genres takes no link`},
		{`{"cmd":"lookup","song":"tutti:artist:` + unknown + `"}`, `no artist ` + unknown + ` in the library`},
		{`{"cmd":"lookup","song":"tutti:playlist:mix"}`, `unknown saved playlist "mix"`},
		{`{"cmd":"search","query":"%%% ***"}`, `no word with a letter or digit`},
	} {
		reply := tc.ask(protocol.LibraryCommandTopic, "carol", tc2.request)
		if reply.OK || !strings.Contains(reply.Error, tc2.want) {
			t.Errorf("%s: %+v; want an error with %q", tc2.request, reply, tc2.want)
		}
	}

	// alice floods the library with full pages; bob is answered meanwhile.
	// Each of her requests is answered or refused beyond the rate limit
	// (how many depends on how fast they arrive).
	const flood = 3 * topicCommandBurst
	alice := newTestClient(t, broker, protocol.UserReplyTopic("alice"))
	var sent []paho.Token
	for i := range flood {
		sent = append(sent, alice.mqtt.Publish(protocol.UserTopic(protocol.LibraryCommandTopic, "alice"), 1, false,
			fmt.Appendf(nil, `{"cmd":"albums","req_id":"flood%d"}`, i)))
	}
	for _, tok := range sent {
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("flood publish: %v", tok.Error())
		}
	}
	tc.mustAsk(protocol.LibraryCommandTopic, "bob", `{"cmd":"tracks","link":"`+protocol.ArtistURI(protocol.ArtistID("Cover Band"))+`"}`, &tracks)
	if tracks.Total != 1 {
		t.Fatalf("bob's tracks during the flood: %+v", tracks)
	}
	answered, limited := 0, 0
	for answered+limited < flood {
		var r protocol.Reply
		alice.next(protocol.UserReplyTopic("alice"), func(b []byte) bool { return json.Unmarshal(b, &r) == nil && strings.HasPrefix(r.ReqID, "flood") })
		switch {
		case r.OK:
			answered++
		case strings.Contains(r.Error, "rate limited"):
			limited++
		default:
			t.Fatalf("flood reply: %+v", r)
		}
	}
	if answered < topicCommandBurst {
		t.Fatalf("of %d requests in a burst, %d answered and %d refused", flood, answered, limited)
	}
	t.Logf("of %d requests in a burst, %d answered and %d refused", flood, answered, limited)
}

// firstSong is the first song of album id in disc and track order, as its
// cover's.
func (lib taggedLibrary) firstSong(id string, st *store) string {
	songs, _, err := st.linkedSongs(protocol.Link{Kind: protocol.LinkAlbum, ID: id}, page{limit: 1})
	if err != nil || len(songs) == 0 {
		return "none"
	}
	return songs[0].SHA256
}
