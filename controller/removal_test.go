package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestHugeMetadataBoundedAndSongsRemoved: an upload named with 300 KB of
// text is refused; one with 30 KB and terminal escapes is stored with a
// short, clean title; searches
// matching many songs come in pages that fit a message, for everyone; the
// standby mirrors every record. An admin removes a song (a member may
// not): it leaves the playlist (the playing entry gives way to the next),
// the library, its retained record, the disk, and the standby's library.
func TestHugeMetadataBoundedAndSongsRemoved(t *testing.T) {
	broker := startBroker(t)
	roles := map[string]string{"root": roleAdmin, "alice": roleMember, "bob": roleMember}
	var rolesMu sync.Mutex
	role := func(user string) string { rolesMu.Lock(); defer rolesMu.Unlock(); return roles[user] }
	optsA := Options{BrokerURL: broker, DataDir: t.TempDir(), Name: "a", Roles: role}
	a, _ := startController(t, optsA)
	optsB := Options{BrokerURL: broker, DataDir: t.TempDir(), Name: "b", Roles: role}
	b, _ := runController(t, optsB)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	library, home := protocol.LibraryCommandTopic, protocol.SessionCommandTopic("home")

	// 300 KB of name does not get past the request's header limit.
	wav := makeWAV(800, 8000, 1000)
	resp, _ := do(t, http.MethodPut, a.SongsURL()+hashOf(wav)+"?name="+strings.Repeat("x", 300_000), wav, "Authorization", "Bearer "+a.tokens.get())
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("300 KB name: %s", resp.Status)
	}
	huge := "\x1b]0;pwned\x07\x1b[2J" + strings.Repeat("é", 100) + strings.Repeat("x", 30_000) + ".wav"
	const songs = 60
	var uploaded []protocol.Song
	for i := range songs {
		uploaded = append(uploaded, upload(t, a, makeWAV(800, 8000, i), url.QueryEscape(fmt.Sprint(i, huge))))
	}
	first := uploaded[0]
	if len(first.Title) > protocol.MaxSongText || strings.ContainsAny(first.Title, "\x1b\x07") || !strings.HasPrefix(first.Title, "0 ]0;pwned [2Jéé") {
		t.Fatalf("title stored as %d bytes: %.40q", len(first.Title), first.Title)
	}

	// Every match of "pwned", page by page, for a member.
	seen := map[string]bool{}
	for offset := 0; ; {
		var page protocol.SearchResult
		reply := tc.ask(library, "bob", fmt.Sprintf(`{"cmd":"search","query":"pwned","offset":%d}`, offset))
		if !reply.OK || json.Unmarshal(reply.Result, &page) != nil {
			t.Fatalf("search from %d: %+v", offset, reply)
		}
		if page.Total != songs || page.Offset != offset || len(page.Songs) == 0 || len(page.Songs) > protocol.MaxSearchPage {
			t.Fatalf("page from %d: %d songs of %d", offset, len(page.Songs), page.Total)
		}
		for _, s := range page.Songs {
			seen[s.SHA256] = true
		}
		if offset += len(page.Songs); offset >= page.Total {
			break
		}
	}
	if len(seen) != songs {
		t.Fatalf("pages held %d different songs, want %d", len(seen), songs)
	}
	testwait.For(t, "the standby to mirror every record", waitTimeout, func() bool {
		st := openTestStore(t, optsB.DataDir)
		defer st.Close()
		n := 0
		st.allSongs(func(protocol.Song) { n++ })
		return n == songs
	})

	// A playlist: the first song twice around another, playing the first.
	for _, s := range []protocol.Song{first, uploaded[1], first} {
		tc.mustAsk(home, "alice", `{"cmd":"enqueue","song":"`+s.SHA256+`"}`, nil)
	}
	tc.mustAsk(home, "alice", `{"cmd":"play"}`, nil)

	if reply := tc.ask(library, "alice", `{"cmd":"remove","song":"`+first.SHA256+`"}`); reply.OK || !strings.Contains(reply.Error, "only admins may") {
		t.Fatalf("a member removed a song: %+v", reply)
	}
	var removed removeResult
	tc.mustAsk(library, "root", `{"cmd":"remove","song":"`+first.URI+`"}`, &removed)
	if removed.Song.SHA256 != first.SHA256 || removed.Dropped != 2 {
		t.Fatalf("remove: %+v", removed)
	}
	var status statusResult
	tc.mustAsk(home, "alice", `{"cmd":"status"}`, &status)
	if len(status.Playlist.Entries) != 1 || status.Playlist.Entries[0].Song != uploaded[1].SHA256 ||
		status.State.State != protocol.Playing || status.State.Anchor.Index != 0 {
		t.Fatalf("after the removal: %+v, %+v", status.State, status.Playlist.Entries)
	}
	if reply := tc.ask(library, "alice", `{"cmd":"lookup","song":"`+first.SHA256+`"}`); reply.OK || !strings.Contains(reply.Error, "unknown song") {
		t.Fatalf("lookup after the removal: %+v", reply)
	}
	if reply := tc.ask(home, "alice", `{"cmd":"enqueue","song":"`+first.SHA256+`"}`); reply.OK {
		t.Fatalf("enqueue after the removal: %+v", reply)
	}
	if _, err := os.Stat(a.lib.songPath(first.SHA256)); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if resp, _ := do(t, http.MethodGet, a.SongsURL()+first.SHA256, nil, "Authorization", "Bearer "+a.tokens.get()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after the removal: %d", resp.StatusCode)
	}
	if !retainedGone(t, broker, protocol.LibrarySongTopic(first.SHA256)) {
		t.Error("the song's retained record is still there")
	}
	testwait.For(t, "the standby to forget the song", waitTimeout, func() bool {
		st := openTestStore(t, optsB.DataDir)
		defer st.Close()
		_, err := st.song(first.SHA256)
		_, statErr := os.Stat(b.lib.songPath(first.SHA256))
		return err != nil && os.IsNotExist(statErr)
	})
	if reply := tc.ask(library, "root", `{"cmd":"remove","song":"`+first.SHA256+`"}`); reply.OK || !strings.Contains(reply.Error, "unknown song") {
		t.Fatalf("second removal: %+v", reply)
	}
}
