package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// songsOf lists the songs of the retained playlist of session home, in order.
func songsOf(t *testing.T, r *remote) []string {
	t.Helper()
	var out []string
	for _, e := range r.playlist().Entries {
		out = append(out, e.Song)
	}
	return out
}

// TestQueueAndSavedPlaylists drives the queue and the saved playlists over
// real processes, the way README shows: mosquitto_pub one-liners and the
// tutti CLI, each command once, checking the retained playlist and the
// replies.
func TestQueueAndSavedPlaylists(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	r := newRemote(t, s.brokerPort)
	var paths, shas []string
	for i, name := range []string{"a.wav", "b.wav", "c.wav"} {
		p, sha := timecodeSong(t, name, 20, int64(i)*songBFirst)
		paths, shas = append(paths, p), append(shas, sha)
	}
	s.load(paths...)
	lib := protocol.LibraryCommandTopic
	ok := func(rep protocol.Reply) protocol.Reply {
		t.Helper()
		if !rep.OK {
			t.Fatalf("%s: %s", rep.Cmd, rep.Error)
		}
		return rep
	}

	// A saved playlist, by one-liners and by the CLI.
	rep := ok(r.request(lib, `"cmd":"playlist_create","title":"Mix"`))
	var info protocol.SavedPlaylistInfo
	if json.Unmarshal(rep.Result, &info) != nil || info.ID != "mix" {
		t.Fatalf("create: %s", rep.Result)
	}
	ok(r.request(lib, `"cmd":"playlist_add","playlist":"mix","song":"`+shas[0]+`"`))
	s.cli("playlist", "add", "mix", "tutti:song:"+shas[2], paths[1]) // a link and a file
	s.cli("playlist", "--index", "0", "add", "mix", shas[2])
	s.cli("playlist", "remove", "mix", "0")
	if out := s.cli("playlists"); !strings.Contains(out, "tutti:playlist:mix  Mix (3 songs)") {
		t.Fatalf("playlists: %s", out)
	}
	out := s.cli("playlist", "mix")
	if !strings.Contains(out, "songs 1-3 of 3") || strings.Index(out, shas[2]) > strings.Index(out, shas[1]) {
		t.Fatalf("playlist mix: %s", out)
	}

	// Loaded into the session, then songs next and now.
	ok(r.cmd(`"cmd":"enqueue","song":"tutti:playlist:mix"`))
	if got := songsOf(t, r); !slices.Equal(got, []string{shas[0], shas[2], shas[1]}) {
		t.Fatalf("after loading mix: %v", got)
	}
	ok(r.cmd(`"cmd":"enqueue","song":"` + shas[1] + `","at":"next"`))
	s.cli("enqueue", "--now", shas[2])
	if got := songsOf(t, r); !slices.Equal(got, []string{shas[2], shas[0], shas[1], shas[2], shas[1]}) {
		t.Fatalf("after next and now: %v", got)
	}
	var st protocol.SessionState
	if json.Unmarshal(r.retained(protocol.SessionStateTopic(protocol.DefaultSession)), &st) != nil || st.State != protocol.Playing || st.Anchor.Index != 0 {
		t.Fatalf("state after play now: %+v", st)
	}

	// Reordered: move, shuffle on and off.
	ok(r.cmd(`"cmd":"move","index":4,"to":1`))
	s.cli("move", "1", "4")
	ok(r.cmd(`"cmd":"shuffle","on":true`))
	s.cli("shuffle", "off")
	if got := songsOf(t, r); len(got) != 5 || got[0] != shas[2] {
		t.Fatalf("after reordering: %v", got)
	}

	// Renamed and deleted.
	s.cli("playlist", "rename", "mix", "Summer", "mix")
	if out := s.cli("playlist", "--json", "show", "mix"); !strings.Contains(out, `"title":"Summer mix"`) {
		t.Fatalf("renamed: %s", out)
	}
	ok(r.request(lib, `"cmd":"playlist_delete","playlist":"mix"`))
	if rep := r.cmd(`"cmd":"enqueue","song":"tutti:playlist:mix"`); rep.OK || !strings.Contains(rep.Error, "unknown saved playlist") {
		t.Fatalf("enqueue of the deleted playlist: %+v", rep)
	}
}
