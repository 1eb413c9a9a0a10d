package controller

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// savedIs waits until the retained saved playlist id has songs and, if
// title is not "", that title, and returns it.
func savedIs(t *testing.T, watch *testClient, id, title string, songs ...string) protocol.SavedPlaylist {
	t.Helper()
	var p protocol.SavedPlaylist
	watch.next(protocol.SavedPlaylistTopic(id), func(b []byte) bool {
		var err error
		p, err = protocol.Decode[protocol.SavedPlaylist](b)
		return err == nil && slices.Equal(p.Songs, songs) && (title == "" || p.Title == title)
	})
	return p
}

// TestM3UFilesInTheMusicFolderArePlaylists: an M3U file in a music folder
// becomes a saved playlist of the songs it names (relative, absolute,
// Windows paths, whatever their case), loadable into a session; edits over
// MQTT are refused with the file's name; a track that turns up later joins
// it, a change of the file changes it under the same id, and deleting the
// file deletes it. Other commands are answered meanwhile.
func TestM3UFilesInTheMusicFolderArePlaylists(t *testing.T) {
	music := t.TempDir()
	album := filepath.Join(music, "Artist", "Album")
	one := encode(t, filepath.Join(album, "01 One.flac"), musicgen.FLAC, musicgen.Tags{Title: "One", Track: 1}, "")
	two := encode(t, filepath.Join(album, "02 Two.mp3"), musicgen.MP3, musicgen.Tags{Title: "Two", Track: 2}, "")
	list := filepath.Join(music, "Lists", "Road Trip.m3u")
	os.MkdirAll(filepath.Dir(list), 0o755)
	later := filepath.Join(album, "03 Later.ogg")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("#EXTM3U\r\n#EXTINF:1,Two\r\n..\\Artist\\Album\\02 Two.mp3\r\n" +
		"../artist/ALBUM/01 one.FLAC\r\n" + // as a Windows tool wrote it
		filepath.Join(album, "01 One.flac") + "\r\n" +
		"../Artist/Album/03 Later.ogg\r\n" + // not there yet
		"http://radio.example/stream\r\n")

	broker := startBroker(t)
	startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music},
		Sessions: []string{"home"}})
	id := importedID(m3uFile{path: list, root: music})
	watch := newTestClient(t, broker, protocol.SavedPlaylistTopic(id))
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	p := savedIs(t, watch, id, "Road Trip", two, one, one)

	lib := protocol.LibraryCommandTopic
	var res commandResult
	tc.mustAsk(protocol.SessionCommandTopic("home"), "", `{"cmd":"enqueue","song":"`+protocol.PlaylistURI(id)+`"}`, &res)
	if res.State.PlaylistVersion != 1 {
		t.Fatalf("enqueue of the imported playlist: %+v", res)
	}
	for _, edit := range []string{
		`{"cmd":"playlist_add","playlist":"` + id + `","song":"` + one + `"}`,
		`{"cmd":"playlist_rename","playlist":"` + id + `","title":"Mine"}`,
		`{"cmd":"playlist_remove","playlist":"` + id + `","index":0}`,
		`{"cmd":"playlist_delete","playlist":"` + protocol.PlaylistURI(id) + `"}`,
	} {
		reply := tc.ask(lib, "", edit)
		if reply.OK || !strings.Contains(reply.Error, "imported from "+filepath.Join(filepath.Base(music), "Lists", "Road Trip.m3u")+"; edit the file") {
			t.Errorf("%s: %+v, want it refused", edit, reply)
		}
	}
	var list2 protocol.SavedPlaylistsPage
	tc.mustAsk(lib, "", `{"cmd":"playlists"}`, &list2)
	if list2.Total != 1 || list2.Playlists[0].ID != id || list2.Playlists[0].Version != p.Version {
		t.Fatalf("playlists after the refused edits: %+v", list2)
	}

	// The missing track turns up: it joins, within the folder bar.
	start := time.Now()
	three := encode(t, later, musicgen.Ogg, musicgen.Tags{Title: "Later", Track: 3}, "")
	savedIs(t, watch, id, "", two, one, one, three)
	if took := time.Since(start); took > folderBar+m3uSettle {
		t.Errorf("the track joined after %v", took)
	}

	// The file changes: the same playlist, a new version.
	write("#PLAYLIST:Short trip\n../Artist/Album/01 One.flac\n")
	changed := savedIs(t, watch, id, "Short trip", one)
	if changed.ID != id || changed.Version <= p.Version {
		t.Fatalf("changed: %+v", changed)
	}

	// The file goes: so does the playlist.
	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	watch.next(protocol.SavedPlaylistTopic(id), func(b []byte) bool { return len(b) == 0 })
	tc.mustAsk(lib, "", `{"cmd":"playlists"}`, &list2)
	if list2.Total != 0 {
		t.Fatalf("playlists after the file went: %+v", list2)
	}
	if _, ok := lookup(tc, one); !ok {
		t.Error("a song lookup failed meanwhile")
	}
}

// TestImportedPlaylistsKeepTheirIdsAcrossFailover: a standby indexing the
// same folder records its M3U files but imports nothing; when it takes
// over it imports them as the same playlists, with no duplicates; one
// that changed while it was a standby is brought up to date.
func TestImportedPlaylistsKeepTheirIdsAcrossFailover(t *testing.T) {
	music := t.TempDir()
	one := encode(t, filepath.Join(music, "a", "one.flac"), musicgen.FLAC, musicgen.Tags{Title: "One"}, "")
	two := encode(t, filepath.Join(music, "b", "two.flac"), musicgen.FLAC, musicgen.Tags{Title: "Two"}, "")
	mix, best := filepath.Join(music, "mix.m3u8"), filepath.Join(music, "best.m3u")
	os.WriteFile(mix, []byte("a/one.flac\nb/two.flac\n"), 0o644)
	os.WriteFile(best, []byte("b/two.flac\n"), 0o644)
	broker := startBroker(t)
	ttl := 600 * time.Millisecond
	_, stopA := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}})
	b, _ := runController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}})
	mixID, bestID := importedID(m3uFile{path: mix, root: music}), importedID(m3uFile{path: best, root: music})
	// Apart: waiting for one playlist's message drops the other's.
	watchMix := newTestClient(t, broker, protocol.SavedPlaylistTopic(mixID))
	watchBest := newTestClient(t, broker, protocol.SavedPlaylistTopic(bestID))
	savedIs(t, watchMix, mixID, "mix", one, two)
	savedIs(t, watchBest, bestID, "best", two)
	testwait.For(t, "the standby to record the files and mirror the playlists", waitTimeout, func() bool {
		pending, err := b.store.pendingM3UFiles()
		n, cerr := b.store.savedPlaylistCount()
		return err == nil && len(pending) == 2 && cerr == nil && n == 2
	})

	stopA()
	os.WriteFile(best, []byte("a/one.flac\nb/two.flac\na/one.flac\n"), 0o644)
	testwait.For(t, "the standby to take over", waitTimeout, b.holding)
	savedIs(t, watchBest, bestID, "best", one, two, one)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	var list protocol.SavedPlaylistsPage
	testwait.For(t, "both playlists imported on the new holder", waitTimeout, func() bool {
		pending, err := b.store.pendingM3UFiles()
		return err == nil && len(pending) == 0
	})
	tc.mustAsk(protocol.LibraryCommandTopic, "", `{"cmd":"playlists"}`, &list)
	ids := []string{list.Playlists[0].ID, list.Playlists[1].ID}
	slices.Sort(ids)
	want := []string{mixID, bestID}
	slices.Sort(want)
	if list.Total != 2 || !slices.Equal(ids, want) {
		t.Fatalf("playlists on the new holder: %+v, want %v", list, want)
	}
	mixed, err := b.store.savedPlaylist(mixID)
	if err != nil || mixed.Version != 1 {
		t.Errorf("the unchanged file's playlist: %+v, %v: want version 1, not imported anew", mixed, err)
	}
}
