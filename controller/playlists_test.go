package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/protocol"
)

// shaList lists the songs' hashes.
func shaList(songs ...protocol.Song) []string {
	out := make([]string, len(songs))
	for i, s := range songs {
		out[i] = s.SHA256
	}
	return out
}

// TestSavedPlaylistsOverMQTT: on tutti's own broker, two members share the
// household's saved playlists: alice creates one, bob adds to it (songs,
// then another playlist's songs), moves nothing he may not, renames it and
// shows it page by page; every change is retained with a new version. A
// song an admin removes from the library stays in the playlist, shown
// missing, and loading the playlist into a session (enqueue of its link,
// at now) skips it, in one playlist version. Bad requests get clear errors.
func TestSavedPlaylistsOverMQTT(t *testing.T) {
	roles := map[string]string{"ctl": broker.RoleController, "admin": broker.RoleAdmin,
		"alice": broker.RoleMember, "bob": broker.RoleMember}
	url := startSecureBroker(t, roles)
	c, _ := startController(t, Options{BrokerURL: url, DataDir: t.TempDir(), Username: "ctl", Password: "ctl-secret",
		Roles: func(user string) string { return roles[user] }})
	var songs []protocol.Song
	for i := range 4 {
		songs = append(songs, upload(t, c, makeWAV(8000*(int64(i)+1), 8000, 40+i), fmt.Sprint("s", i)))
	}
	alice := newUserClient(t, url, "alice", "alice-secret", protocol.UserReplyTopic("alice"))
	bob := newUserClient(t, url, "bob", "bob-secret", protocol.UserReplyTopic("bob"))
	// A member reads the saved playlists' retained topics.
	watch := newUserClient(t, url, "bob", "bob-secret", protocol.SavedPlaylistFilter, protocol.PlaylistTopic("home"))
	admin := newUserClient(t, url, "admin", "admin-secret", protocol.UserReplyTopic("admin"))
	lib := protocol.LibraryCommandTopic

	var info protocol.SavedPlaylistInfo
	alice.mustAsk(lib, "alice", `{"cmd":"playlist_create","title":"  Road Trip! 2026 "}`, &info)
	if info.ID != "road-trip-2026" || info.Title != "Road Trip! 2026" || info.URI != "tutti:playlist:road-trip-2026" || info.Version != 1 {
		t.Fatalf("created %+v", info)
	}
	var again protocol.SavedPlaylistInfo
	alice.mustAsk(lib, "alice", `{"cmd":"playlist_create","title":"road trip 2026"}`, &again)
	if again.ID != "road-trip-2026-2" {
		t.Fatalf("second playlist of that title: %+v", again)
	}
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_add","playlist":"road-trip-2026-2","song":"`+songs[3].SHA256+`"}`, nil)
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_add","playlist":"road-trip-2026-2","song":"`+songs[2].URI+`","index":0}`, nil)

	// Bob, another member, adds to alice's playlist: songs, and all of the
	// other playlist's songs at once.
	trip := `"playlist":"tutti:playlist:road-trip-2026"`
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_add",`+trip+`,"song":"`+songs[0].SHA256+`"}`, nil)
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_add",`+trip+`,"song":"tutti:playlist:road-trip-2026-2"}`, nil)
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_add",`+trip+`,"song":"`+songs[1].SHA256+`","index":1}`, &info)
	want := shaList(songs[0], songs[1], songs[2], songs[3])
	if info.Songs != 4 || info.Version != 4 {
		t.Fatalf("after three adds: %+v", info)
	}
	watch.next(protocol.SavedPlaylistTopic(info.ID), func(b []byte) bool {
		p, err := protocol.Decode[protocol.SavedPlaylist](b)
		return err == nil && p.Version == 4 && slices.Equal(p.Songs, want)
	})
	alice.mustAsk(lib, "alice", `{"cmd":"playlist_rename",`+trip+`,"title":"Summer"}`, nil)

	// Shown a page at a time, with the songs' records.
	var page protocol.SavedPlaylistPage
	alice.mustAsk(lib, "alice", `{"cmd":"playlist",`+trip+`,"offset":1,"limit":2}`, &page)
	if page.Playlist.Title != "Summer" || page.Playlist.Songs != 4 || page.Offset != 1 || len(page.Songs) != 2 ||
		page.Songs[0].Index != 1 || page.Songs[0].SHA256 != songs[1].SHA256 || page.Songs[1].Title != songs[2].Title || page.Songs[1].Missing {
		t.Fatalf("page: %+v", page)
	}
	var list protocol.SavedPlaylistsPage
	bob.mustAsk(lib, "bob", `{"cmd":"playlists"}`, &list)
	if list.Total != 2 || len(list.Playlists) != 2 || list.Playlists[0].Title != "Summer" || list.Playlists[1].ID != "road-trip-2026-2" {
		t.Fatalf("playlists: %+v", list)
	}

	// A song removed from the library stays, shown missing, and is skipped
	// when the playlist is loaded.
	admin.mustAsk(lib, "admin", `{"cmd":"remove","song":"`+songs[1].SHA256+`"}`, nil)
	alice.mustAsk(lib, "alice", `{"cmd":"playlist",`+trip+`}`, &page)
	if len(page.Songs) != 4 || !page.Songs[1].Missing || page.Songs[1].SHA256 != songs[1].SHA256 || page.Songs[0].Missing {
		t.Fatalf("after the removal: %+v", page)
	}
	home := protocol.SessionCommandTopic("home")
	var res commandResult
	alice.mustAsk(home, "alice", `{"cmd":"enqueue","song":"`+songs[3].SHA256+`"}`, &res)
	alice.mustAsk(home, "alice", `{"cmd":"enqueue",`+strings.Replace(trip, "playlist", "song", 1)+`,"at":"now"}`, &res)
	var pl protocol.Playlist
	watch.next(protocol.PlaylistTopic("home"), func(b []byte) bool {
		var err error
		pl, err = protocol.Decode[protocol.Playlist](b)
		return err == nil && pl.Version == 2
	})
	var loaded []string
	for _, e := range pl.Entries {
		loaded = append(loaded, e.Song)
	}
	if wantLoaded := shaList(songs[0], songs[2], songs[3], songs[3]); !slices.Equal(loaded, wantLoaded) || pl.Version != 2 {
		t.Fatalf("session playlist v%d %v, want v2 %v", pl.Version, loaded, wantLoaded)
	}
	if res.State.State != protocol.Playing || res.State.Anchor.Index != 0 || res.Entry != pl.Entries[0].ID {
		t.Fatalf("play now: %+v", res)
	}

	// Removing, deleting; and what is refused.
	alice.mustAsk(lib, "alice", `{"cmd":"playlist_remove",`+trip+`,"index":1}`, &info)
	watch.next(protocol.SavedPlaylistTopic(info.ID), func(b []byte) bool {
		p, err := protocol.Decode[protocol.SavedPlaylist](b)
		return err == nil && p.Version == 6 && p.Title == "Summer" && slices.Equal(p.Songs, shaList(songs[0], songs[2], songs[3]))
	})
	bob.mustAsk(lib, "bob", `{"cmd":"playlist_delete","playlist":"road-trip-2026-2"}`, nil)
	watch.next(protocol.SavedPlaylistTopic("road-trip-2026-2"), func(b []byte) bool { return len(b) == 0 })
	for _, bad := range []struct{ payload, errPart string }{
		{`{"cmd":"playlist_create","title":" \u0007 "}`, "needs a title"},
		{`{"cmd":"playlist","playlist":"no/such"}`, "a playlist id is"},
		{`{"cmd":"playlist","playlist":"tutti:album:0123456789abcdef"}`, "no playlist link"},
		{`{"cmd":"playlist","playlist":"road-trip-2026-2"}`, "unknown saved playlist"},
		{`{"cmd":"playlist_remove",` + trip + `,"index":3}`, "out of range"},
		{`{"cmd":"playlist_add",` + trip + `,"song":"` + songs[0].SHA256 + `","index":9}`, "out of range"},
		{`{"cmd":"playlist_add",` + trip + `,"song":"tutti:album:0123456789abcdef"}`, "no album 0123456789abcdef in the library"},
		{`{"cmd":"playlist_add",` + trip + `,"song":"` + strings.Repeat("ab", 32) + `"}`, "unknown song"},
		{`{"cmd":"playlists","offset":-1}`, "at least 0"},
	} {
		reply := bob.ask(lib, "bob", bad.payload)
		if reply.OK || !strings.Contains(reply.Error, bad.errPart) {
			t.Errorf("%s: %+v, want an error with %q", bad.payload, reply, bad.errPart)
		}
	}
	reply := alice.ask(home, "alice", `{"cmd":"enqueue","song":"tutti:playlist:road-trip-2026-2"}`)
	if reply.OK || !strings.Contains(reply.Error, "unknown saved playlist") {
		t.Fatalf("enqueue of a deleted playlist: %+v", reply)
	}
}

// TestSavedPlaylistLimits: with MaxSavedPlaylists saved playlists, one of
// them full, a member's create and add are refused with clear errors,
// listing them is paged, and another member's commands are answered
// meanwhile.
func TestSavedPlaylistLimits(t *testing.T) {
	url := startBroker(t)
	dataDir := t.TempDir()
	full := protocol.SavedPlaylist{V: protocol.Version, ID: "full", Title: "Full", Term: 1, Version: 1}
	for i := range protocol.MaxSavedPlaylistSongs {
		full.Songs = append(full.Songs, fmt.Sprintf("%064x", i))
	}
	st := openTestStore(t, dataDir)
	if created, err := st.createSavedPlaylist(full); !created || err != nil {
		t.Fatal(created, err)
	}
	for i := 1; i < protocol.MaxSavedPlaylists; i++ {
		p := protocol.SavedPlaylist{V: protocol.Version, ID: fmt.Sprint("p", i), Title: fmt.Sprint("P ", i), Term: 1, Version: 1}
		if created, err := st.createSavedPlaylist(p); !created || err != nil {
			t.Fatal(created, err)
		}
	}
	if _, err := st.createSavedPlaylist(protocol.SavedPlaylist{ID: "one-more", Title: "x"}); err == nil {
		t.Fatal("the store took one playlist too many")
	}
	st.Close()
	c, _ := startController(t, Options{Open: true, BrokerURL: url, DataDir: dataDir})
	song := upload(t, c, makeWAV(800, 8000, 3), "s")
	mallory := newTestClient(t, url, protocol.UserReplyTopic(""))
	other := newTestClient(t, url, protocol.UserReplyTopic(""))

	lib := protocol.LibraryCommandTopic
	done := make(chan struct{})
	go func() { // the other member's commands, meanwhile
		defer close(done)
		for i := range 5 {
			reply := other.ask(protocol.SessionCommandTopic("home"), "", `{"cmd":"status"}`)
			if !reply.OK {
				t.Errorf("status %d: %+v", i, reply)
			}
		}
	}()
	start := time.Now()
	reply := mallory.ask(lib, "", `{"cmd":"playlist_create","title":"one more"}`)
	if reply.OK || !strings.Contains(reply.Error, "500 saved playlists already") {
		t.Errorf("create beyond the limit: %+v", reply)
	}
	reply = mallory.ask(lib, "", `{"cmd":"playlist_add","playlist":"full","song":"`+song.SHA256+`"}`)
	if reply.OK || !strings.Contains(reply.Error, "would exceed 1000") {
		t.Errorf("add beyond the limit: %+v", reply)
	}
	var list protocol.SavedPlaylistsPage
	mallory.mustAsk(lib, "", `{"cmd":"playlists","limit":1000}`, &list)
	if list.Total != protocol.MaxSavedPlaylists || len(list.Playlists) != protocol.MaxPlaylistsPage {
		t.Errorf("playlists: total %d, page of %d", list.Total, len(list.Playlists))
	}
	var page protocol.SavedPlaylistPage
	mallory.mustAsk(lib, "", `{"cmd":"playlist","playlist":"full","offset":990}`, &page)
	if len(page.Songs) != 10 || page.Songs[0].Index != 990 || !page.Songs[0].Missing {
		t.Errorf("the full playlist's last page: %d songs, %+v", len(page.Songs), page.Songs[:min(1, len(page.Songs))])
	}
	// A full playlist loads into a session only as far as it has room:
	// these songs are all missing, so nothing.
	reply = mallory.ask(protocol.SessionCommandTopic("home"), "", `{"cmd":"enqueue","song":"tutti:playlist:full"}`)
	if reply.OK || !strings.Contains(reply.Error, "needs a song") {
		t.Errorf("enqueue of a playlist of missing songs: %+v", reply)
	}
	<-done
	t.Logf("refusals and pages took %v", time.Since(start))
}

func TestSlugID(t *testing.T) {
	for title, want := range map[string]string{
		"Road Trip! 2026":        "road-trip-2026",
		"  --Ünïcode ★ mix-- ":   "n-code-mix",
		"★★★":                    "playlist",
		strings.Repeat("ab", 40): strings.Repeat("ab", maxSlug/2),
		strings.Repeat("a ", 40): strings.TrimSuffix(strings.Repeat("a-", maxSlug/2), "-"),
	} {
		got := slugID(title)
		if got != want || !protocol.ValidPlaylistID(got+"-500") {
			t.Errorf("slugID(%q) = %q, want %q", title, got, want)
		}
	}
}

// TestMirroredSavedPlaylistChecked: a standby refuses a saved playlist on
// the wrong topic, with too many songs or with a song that is no hash.
func TestMirroredSavedPlaylistChecked(t *testing.T) {
	good := protocol.SavedPlaylist{V: 1, ID: "mix", Title: "Mix", Songs: []string{strings.Repeat("ab", 32)}}
	if err := checkSavedPlaylist("mix", good); err != nil {
		t.Fatal(err)
	}
	long := good
	long.Songs = slices.Repeat(good.Songs, protocol.MaxSavedPlaylistSongs+1)
	bad := good
	bad.Songs = []string{"../../etc"}
	for name, p := range map[string]protocol.SavedPlaylist{"wrong topic": good, "too long": long, "bad song": bad} {
		id := "mix"
		if name == "wrong topic" {
			id = "other"
		}
		if err := checkSavedPlaylist(id, p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
