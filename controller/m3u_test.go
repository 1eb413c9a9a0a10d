package controller

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

func TestParseM3U(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   string
		latin1 bool
		title  string
		paths  []string
		skip   int
		errStr string
	}{
		{name: "plain", data: "a.mp3\nsub/b.flac\n", paths: []string{"a.mp3", "sub/b.flac"}},
		{name: "extended, CRLF, BOM", latin1: true,
			data:  "\ufeff#EXTM3U\r\n#PLAYLIST:Road trip\r\n#EXTINF:123,Artist - Title\r\n../up/a.mp3\r\n\r\n# a comment\r\n/music/b.ogg\r\n",
			title: "Road trip", paths: []string{"../up/a.mp3", "/music/b.ogg"}},
		{name: "windows paths", data: "Artist\\Album\\01 a.mp3\r\n", paths: []string{"Artist/Album/01 a.mp3"}},
		{name: "old mac lines", data: "a.mp3\rb.mp3\r", paths: []string{"a.mp3", "b.mp3"}},
		{name: "file URLs and streams", data: "file:///music/My%20Song.mp3\nhttp://radio.example/stream\nhttps://x/y.mp3\nfile://host/share/c.mp3\n",
			paths: []string{"/music/My Song.mp3", "/share/c.mp3"}, skip: 2},
		{name: "latin-1 m3u", data: "Caf\xe9/\xc0 bient\xf4t.mp3\n", latin1: true, paths: []string{"Café/À bientôt.mp3"}},
		{name: "utf-8 m3u stays utf-8", data: "Café.mp3\n", latin1: true, paths: []string{"Café.mp3"}},
		{name: "latin-1 m3u8", data: "Caf\xe9.mp3\n", errStr: "must be UTF-8"},
		{name: "cleaned paths", data: "./a/../b.mp3\n.\n/\nc.mp3\x00evil\n", paths: []string{"b.mp3"}, skip: 3},
		{name: "overlong line", data: strings.Repeat("x", maxM3ULine+1) + "\nok.mp3\n", paths: []string{"ok.mp3"}, skip: 1},
		{name: "too large", data: strings.Repeat("a.mp3\n", maxM3USize/6+1), errStr: "over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseM3U([]byte(tc.data), tc.latin1)
			if tc.errStr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errStr) {
					t.Fatalf("err %v, want one with %q", err, tc.errStr)
				}
				return
			}
			if err != nil || got.Title != tc.title || !slices.Equal(got.Paths, tc.paths) || got.Skipped != tc.skip || got.Truncated != 0 {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
	long, err := parseM3U([]byte(strings.Repeat("a.mp3\n", protocol.MaxSavedPlaylistSongs+7)), false)
	if err != nil || len(long.Paths) != protocol.MaxSavedPlaylistSongs || long.Truncated != 7 {
		t.Fatalf("long playlist: %d paths, %d truncated, %v", len(long.Paths), long.Truncated, err)
	}
}

func FuzzParseM3U(f *testing.F) {
	for _, seed := range []string{
		"#EXTM3U\n#EXTINF:1,x\na.mp3\n", "\ufeffa\\b.flac\r\n", "file:///a%2Fb.mp3\n", "Caf\xe9.mp3", "#PLAYLIST:\x1b[2J\n",
	} {
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, latin1 bool) {
		got, err := parseM3U(data, latin1)
		if err != nil {
			if latin1 && len(data) <= maxM3USize {
				t.Fatalf("an .m3u within the size limit refused: %v", err)
			}
			return
		}
		if len(got.Paths) > protocol.MaxSavedPlaylistSongs || len(got.Title) > protocol.MaxSongText || !utf8.ValidString(got.Title) {
			t.Fatalf("%d paths, title %q", len(got.Paths), got.Title)
		}
		for _, p := range got.Paths {
			if p == "" || p == "." || p == "/" || strings.ContainsAny(p, "\x00\r\n") || !utf8.ValidString(p) {
				t.Fatalf("path %q", p)
			}
		}
	})
}

// TestImportM3U: an M3U file becomes a saved playlist of the songs the
// music folders' index has at its paths (the others reported), published
// and loadable into a session; importing the changed file again updates
// the same playlist, and the unchanged one changes nothing.
func TestImportM3U(t *testing.T) {
	url := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: url, DataDir: t.TempDir()})
	var songs []protocol.Song
	for i := range 3 {
		songs = append(songs, upload(t, c, makeWAV(800, 8000, 80+i), fmt.Sprint("s", i)))
	}
	music := t.TempDir()
	index := map[string]string{ // the music folders' index: path to hash
		filepath.Join(music, "Artist", "Album", "01.flac"): songs[0].SHA256,
		filepath.Join(music, "Artist", "Album", "02.flac"): songs[1].SHA256,
		"/elsewhere/03.mp3": songs[2].SHA256,
	}
	resolve := func(p string) (string, bool) { sha, ok := index[p]; return sha, ok }
	file := m3uFile{path: filepath.Join(music, "Lists", "Best.m3u"), root: music}
	data := "#EXTM3U\r\n#EXTINF:1,two\r\n..\\Artist\\Album\\02.flac\r\n../Artist/gone.flac\r\nfile:///elsewhere/03.mp3\r\nhttp://radio/stream\r\n"
	report, err := c.importM3U(file, []byte(data), resolve)
	if err != nil {
		t.Fatal(err)
	}
	if report.Playlist.Title != "Best" || report.Playlist.Songs != 2 || report.Missing != 1 || report.Skipped != 1 ||
		!slices.Equal(report.Unresolved, []string{"../Artist/gone.flac"}) ||
		!slices.Equal(report.waiting, []string{filepath.Join(music, "Artist", "gone.flac")}) {
		t.Fatalf("report %+v", report)
	}
	id := report.Playlist.ID
	if id != importedID(file) || !imported(id) || !protocol.ValidPlaylistID(id) {
		t.Fatalf("id %q", id)
	}
	elsewhere := m3uFile{path: filepath.Join("/mnt/nas", filepath.Base(music), "Lists", "Best.m3u"), root: filepath.Join("/mnt/nas", filepath.Base(music))}
	if importedID(elsewhere) != id {
		t.Error("the same folder mounted elsewhere gives another id")
	}
	if slugID("m3u_"+id) == id || strings.Contains(slugID("m3u_x"), "_") {
		t.Error("a created playlist can take an imported one's id")
	}
	saved, err := protocol.Decode[protocol.SavedPlaylist](retained(t, url, protocol.SavedPlaylistTopic(id)))
	if err != nil || !slices.Equal(saved.Songs, shaList(songs[1], songs[2])) {
		t.Fatalf("retained %+v, %v", saved, err)
	}
	tc := newTestClient(t, url, protocol.DefaultReplyTopic)
	res := tc.cmd("load", `{"cmd":"enqueue","song":"`+protocol.PlaylistURI(id)+`","req_id":"load"}`)
	if res.State.PlaylistVersion != 1 {
		t.Fatalf("enqueue of the imported playlist: %+v", res)
	}

	again, err := c.importM3U(file, []byte(data), resolve)
	if err != nil || again.Playlist != report.Playlist {
		t.Fatalf("unchanged import: %+v, %v", again.Playlist, err)
	}
	changed, err := c.importM3U(file, []byte("#PLAYLIST:Better\n../Artist/Album/01.flac\n"+data), resolve)
	if err != nil || changed.Playlist.ID != id || changed.Playlist.Version != 2 || changed.Playlist.Songs != 3 || changed.Playlist.Title != "Better" {
		t.Fatalf("changed import: %+v, %v", changed.Playlist, err)
	}
	if _, err := c.importM3U(m3uFile{path: filepath.Join(music, "x.m3u8"), root: music}, []byte("Caf\xe9.mp3\n"), resolve); err == nil {
		t.Fatal("a Latin-1 .m3u8 imported")
	}
}
