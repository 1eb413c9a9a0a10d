package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// TestUnavailableMusicFolderKeepsItsSongs: the music folder renamed away
// and an empty folder put in its place (a NAS share unmounted from its
// mount point): the controller's status says the folder is unavailable,
// its songs stay in the library and in the playlist, not missing, and
// commands are answered meanwhile. Brought back, a scan finds it
// available and reads none of its files again.
func TestUnavailableMusicFolderKeepsItsSongs(t *testing.T) {
	dir := t.TempDir()
	music, away := filepath.Join(dir, "nas"), filepath.Join(dir, "away")
	first := encode(t, filepath.Join(music, "Album", "01.flac"), musicgen.FLAC, musicgen.Tags{Title: "One", Track: 1}, "")
	second := encode(t, filepath.Join(music, "Album", "02.mp3"), musicgen.MP3, musicgen.Tags{Title: "Two", Track: 2}, "")
	broker := startBroker(t)
	startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music}, Sessions: []string{"home"}})
	status := newTestClient(t, broker, protocol.ControllerStatusTopic)
	playlists := newTestClient(t, broker, protocol.PlaylistTopic("home"))
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	scanned := func(ok func(protocol.ScanProgress) bool) protocol.ScanProgress {
		t.Helper()
		var p protocol.ScanProgress
		status.next(protocol.ControllerStatusTopic, func(b []byte) bool {
			st, err := protocol.Decode[protocol.ControllerStatus](b)
			if err != nil || st.Scan == nil || !st.Scan.Done {
				return false
			}
			p = *st.Scan
			return ok(p)
		})
		return p
	}
	scanned(func(p protocol.ScanProgress) bool { return p.Seen == 2 })
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+first+`","req_id":"q1"}`)
	tc.cmd("q2", `{"cmd":"enqueue","song":"`+second+`","req_id":"q2"}`)
	tc.cmd("p1", `{"cmd":"play","req_id":"p1"}`)

	if err := os.Rename(music, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(music, 0o755); err != nil {
		t.Fatal(err)
	}
	tc.mustAsk(protocol.LibraryCommandTopic, "", `{"cmd":"scan"}`, nil)
	p := scanned(func(p protocol.ScanProgress) bool {
		return len(p.Unavailable) == 1 && strings.Contains(p.Unavailable[0].Reason, "empty, while 2 files")
	})
	if p.Unavailable[0].Root != music {
		t.Errorf("unavailable folder %+v, want %s", p.Unavailable[0], music)
	}
	for _, sha := range []string{first, second} {
		if s, ok := lookup(tc, sha); !ok || s.Missing {
			t.Errorf("song %s while its folder is unavailable: %+v %v, want present", sha[:8], s, ok)
		}
	}
	var st statusResult
	tc.mustAsk(protocol.SessionCommandTopic("home"), "", `{"cmd":"status"}`, &st)
	if len(st.Playlist.Entries) != 2 || st.Playlist.Entries[0].Missing || st.Playlist.Entries[1].Missing || !st.State.Anchor.Playing {
		t.Errorf("session while the folder is unavailable: %+v, %+v", st.State, st.Playlist.Entries)
	}

	// Back in place.
	if err := os.Remove(music); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, music); err != nil {
		t.Fatal(err)
	}
	tc.mustAsk(protocol.LibraryCommandTopic, "", `{"cmd":"scan"}`, nil)
	p = scanned(func(p protocol.ScanProgress) bool { return len(p.Unavailable) == 0 })
	if p.Seen != 2 || p.Files != 0 {
		t.Errorf("scan once the folder is back: %+v, want its 2 files seen and none read again", p)
	}
	for len(playlists.msgs) > 0 {
		pl, err := protocol.Decode[protocol.Playlist](playlists.nextAny().Payload())
		for _, e := range pl.Entries {
			if err != nil || e.Missing {
				t.Fatalf("a playlist published while the folder was unavailable marks %+v missing (%v)", e, err)
			}
		}
	}
}
