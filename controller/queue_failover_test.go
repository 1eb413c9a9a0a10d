package controller

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// speakerView follows session home as a speaker does, over its own
// connection: the retained playlist and state, kept once they match.
type speakerView struct {
	tc *testClient
}

func newSpeakerView(t *testing.T, url string) speakerView {
	return speakerView{newTestClient(t, url, protocol.PlaylistTopic("home"), protocol.SessionStateTopic("home"))}
}

// await reads until a state satisfies ok and names the playlist it holds,
// and returns both.
func (v speakerView) await(ok func(protocol.SessionState) bool) (protocol.SessionState, protocol.Playlist) {
	v.tc.t.Helper()
	var st protocol.SessionState
	var pl protocol.Playlist
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-v.tc.msgs:
			var err error
			if m.Topic() == protocol.PlaylistTopic("home") {
				pl, err = protocol.Decode[protocol.Playlist](m.Payload())
			} else {
				st, err = protocol.Decode[protocol.SessionState](m.Payload())
			}
			if err != nil {
				v.tc.t.Fatalf("%s: %v", m.Topic(), err)
			}
			if ok(st) && st.PlaylistVersion == pl.Version && st.PlaylistHash == pl.Hash() {
				return st, pl
			}
		case <-deadline:
			v.tc.t.Fatalf("no state as awaited with its playlist; last state %+v, playlist v%d", st, pl.Version)
		}
	}
}

// seqFrom is a condition of await: seq at least seq.
func seqFrom(seq uint64) func(protocol.SessionState) bool {
	return func(st protocol.SessionState) bool { return st.Seq >= seq }
}

func songOrder(entries []protocol.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID + "/" + e.Song[:8]
	}
	return out
}

// TestShuffleAgreesEverywhereAndFailoverKeepsPlaylists: a saved playlist
// is loaded into a playing session and shuffled on the holder. Two speakers
// (each on its own connection) and the standby end with the same order,
// the entry that played goes on at the same place, and the standby mirrors
// the saved playlist. When the holder goes, the standby takes over with
// that order and the saved playlist, lists and changes it under its own
// term, and loads it again.
func TestShuffleAgreesEverywhereAndFailoverKeepsPlaylists(t *testing.T) {
	url := startBroker(t)
	ttl := 600 * time.Millisecond
	optsA := Options{Open: true, BrokerURL: url, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl}
	a, stopA := startController(t, optsA)
	optsB := Options{Open: true, BrokerURL: url, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl}
	b, _ := runController(t, optsB)
	newFakeSpeakers(t, url, "f1", "f2")
	views := []speakerView{newSpeakerView(t, url), newSpeakerView(t, url)}
	tc := newTestClient(t, url, protocol.DefaultReplyTopic)
	lib := protocol.LibraryCommandTopic

	var songs []protocol.Song
	for i := range 8 {
		songs = append(songs, upload(t, a, makeWAV(8000*int64(20+i), 8000, 60+i), fmt.Sprint("m", i)))
	}
	var info protocol.SavedPlaylistInfo
	tc.mustAsk(lib, "", `{"cmd":"playlist_create","title":"Mix"}`, &info)
	for _, s := range songs {
		tc.mustAsk(lib, "", `{"cmd":"playlist_add","playlist":"mix","song":"`+s.SHA256+`"}`, &info)
	}
	home := protocol.SessionCommandTopic("home")
	loaded := tc.cmd("load", `{"cmd":"enqueue","song":"tutti:playlist:mix","req_id":"load"}`)
	if loaded.Acked != 2 {
		t.Fatalf("enqueue of the playlist: %+v", loaded)
	}
	played := tc.cmd("play", `{"cmd":"play","index":2,"req_id":"play"}`)
	before, beforeList := views[0].await(seqFrom(played.State.Seq))
	shuffled := tc.cmd("shuffle", `{"cmd":"shuffle","on":true,"req_id":"shuffle"}`)
	if shuffled.Acked != 2 || shuffled.State.PlaylistVersion != beforeList.Version+1 {
		t.Fatalf("shuffle: %+v", shuffled)
	}

	// Every speaker has the same order, the shuffled one, with the first
	// three entries where they were.
	var order []string
	for i, v := range views {
		st, pl := v.await(seqFrom(shuffled.State.Seq))
		got := songOrder(pl.Entries)
		if i == 0 {
			order = got
		} else if !slices.Equal(got, order) {
			t.Fatalf("speaker %d has order %v, speaker 0 %v", i, got, order)
		}
		if !pl.Shuffle || st != shuffled.State {
			t.Fatalf("speaker %d: shuffle %v, state %+v, want %+v", i, pl.Shuffle, st, shuffled.State)
		}
		// The entry that plays goes on at the same place.
		for _, at := range []int64{st.Anchor.AtNs, st.Anchor.AtNs + int64(5*time.Second)} {
			was := session{State: before, Playlist: beforeList}
			now := session{State: st, Playlist: pl}
			wi, wp, ws := was.cursor(at)
			ni, np, ns := now.cursor(at)
			if beforeList.Entries[wi].ID != pl.Entries[ni].ID || wp != np || ws != ns {
				t.Fatalf("at %d: entry %d at %d %s before the shuffle, %d at %d %s after", at, wi, wp, ws, ni, np, ns)
			}
		}
	}
	if want := songOrder(beforeList.Entries); slices.Equal(order, want) || !slices.Equal(order[:3], want[:3]) {
		t.Fatalf("shuffled %v from %v", order, want)
	}

	// So has the standby, and it mirrors the saved playlist.
	testwait.For(t, "the standby to mirror the shuffled playlist and the saved one", waitTimeout, func() bool {
		st := openTestStore(t, optsB.DataDir)
		defer st.Close()
		all, err := st.sessions()
		saved, serr := st.savedPlaylist("mix")
		return err == nil && serr == nil && slices.Equal(songOrder(all["home"].Playlist.Entries), order) &&
			all["home"].Playlist.Shuffle && saved.Version == info.Version && slices.Equal(saved.Songs, shaList(songs...))
	})

	// A standby imports no playlist files: its saved playlists are the holder's.
	if _, err := b.importM3U(m3uFile{path: "/music/x.m3u", root: "/music"}, []byte("a.mp3\n"), func(string) (string, bool) { return songs[0].SHA256, true }); err == nil {
		t.Fatal("the standby imported a playlist file")
	}

	stopA()
	testwait.For(t, "the standby to take over", waitTimeout, b.holding)
	st, pl := views[1].await(func(st protocol.SessionState) bool { return st.Term > shuffled.State.Term })
	if !slices.Equal(songOrder(pl.Entries), order) || st.Term <= shuffled.State.Term {
		t.Fatalf("after the takeover: order %v, term %d", songOrder(pl.Entries), st.Term)
	}
	var list protocol.SavedPlaylistsPage
	tc.mustAsk(lib, "", `{"cmd":"playlists"}`, &list)
	if list.Total != 1 || list.Playlists[0].ID != "mix" || list.Playlists[0].Songs != len(songs) {
		t.Fatalf("playlists on the new holder: %+v", list)
	}
	tc.mustAsk(lib, "", `{"cmd":"playlist_remove","playlist":"mix","index":0}`, &info)
	saved, err := protocol.Decode[protocol.SavedPlaylist](retained(t, url, protocol.SavedPlaylistTopic("mix")))
	if err != nil || saved.Version != uint64(len(songs))+2 || saved.Term != st.Term || !slices.Equal(saved.Songs, shaList(songs[1:]...)) {
		t.Fatalf("changed on the new holder: %+v, %v", saved, err)
	}
	// A saved playlist a deposed holder publishes is put right.
	stale := saved
	stale.Term, stale.Version, stale.Songs = shuffled.State.Term, 99, nil
	if tok := tc.mqtt.Publish(protocol.SavedPlaylistTopic("mix"), 1, true, protocol.Encode(stale)); !tok.WaitTimeout(waitTimeout) {
		t.Fatal("stale saved playlist not published")
	}
	testwait.For(t, "the holder to put its saved playlist back", waitTimeout, func() bool {
		got, err := protocol.Decode[protocol.SavedPlaylist](retained(t, url, protocol.SavedPlaylistTopic("mix")))
		return err == nil && got.Term == st.Term && got.Version == saved.Version && slices.Equal(got.Songs, saved.Songs)
	})

	var next commandResult
	tc.mustAsk(home, "", `{"cmd":"enqueue","song":"tutti:playlist:mix","at":"next"}`, &next)
	if next.State.PlaylistVersion != pl.Version+1 {
		t.Fatalf("enqueue on the new holder: %+v", next)
	}
	_, after := views[0].await(seqFrom(next.State.Seq))
	// The saved playlist's songs come right after the entry that plays.
	var added []string
	for _, e := range after.Entries[next.State.Anchor.Index+1:] {
		if !slices.Contains(order, e.ID+"/"+e.Song[:8]) {
			added = append(added, e.Song)
		}
	}
	if len(after.Entries) != len(order)+len(songs)-1 || !slices.Equal(added, shaList(songs[1:]...)) ||
		after.Entries[next.State.Anchor.Index+1].Song != songs[1].SHA256 {
		t.Fatalf("after loading the playlist again at %d: %v", next.State.Anchor.Index, songOrder(after.Entries))
	}
}
