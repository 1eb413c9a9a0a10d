package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestRemoveOfAFolderSongSaysWhereItsFileIs: remove of a song with a file
// in a music folder is refused with the folder and the file to delete
// there, and changes nothing: the song stays in the library and its entry
// in the playlist, through a rescan too. Meanwhile an upload is removed as
// ever, and a member's commands are answered. Once the file is deleted in
// the folder the song is missing, and remove takes its record and entry.
func TestRemoveOfAFolderSongSaysWhereItsFileIs(t *testing.T) {
	music := t.TempDir()
	path := filepath.Join(music, "Album", "kept.flac")
	sha := encode(t, path, musicgen.FLAC, musicgen.Tags{Title: "Kept", Artist: "Folder"}, "")
	broker := startBroker(t)
	roles := map[string]string{"root": roleAdmin, "alice": roleMember}
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music},
		Roles: func(user string) string { return roles[user] }})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	library, home := protocol.LibraryCommandTopic, protocol.SessionCommandTopic("home")
	testwait.For(t, "the folder song indexed", waitTimeout, func() bool {
		_, err := c.store.song(sha)
		return err == nil
	})
	uploaded := upload(t, c, makeWAV(8000, 8000, 1), "up.wav")
	tc.mustAsk(home, "alice", `{"cmd":"enqueue","song":"`+sha+`"}`, nil)

	reply := tc.ask(library, "root", `{"cmd":"remove","song":"`+sha+`"}`)
	if reply.OK || !strings.Contains(reply.Error, "in the music folder "+music+": delete the file there ("+path+")") {
		t.Fatalf("remove of a folder song: %+v", reply)
	}
	tc.mustAsk(library, "root", `{"cmd":"remove","song":"`+uploaded.SHA256+`"}`, nil)
	var status statusResult
	tc.mustAsk(home, "alice", `{"cmd":"status"}`, &status)
	if len(status.Playlist.Entries) != 1 || status.Playlist.Entries[0].Song != sha {
		t.Fatalf("playlist after the refused remove: %+v", status.Playlist.Entries)
	}
	scanned := func(number int) func() bool {
		return func() bool { p := c.scanProgress.Load(); return p != nil && p.Number >= number && p.Done }
	}
	tc.mustAsk(library, "root", `{"cmd":"scan"}`, nil)
	testwait.For(t, "the rescan", waitTimeout, scanned(2))
	if s, err := c.store.song(sha); err != nil || s.Missing {
		t.Fatalf("the folder song after the refused remove and a rescan: %+v %v", s, err)
	}
	if _, err := c.store.song(uploaded.SHA256); err == nil || c.lib.holdsUpload(uploaded.SHA256) {
		t.Error("the upload outlived its removal")
	}

	// Deleted in the folder: missing, and then remove clears it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the song missing", waitTimeout, func() bool { s, err := c.store.song(sha); return err == nil && s.Missing })
	var removed removeResult
	tc.mustAsk(library, "root", `{"cmd":"remove","song":"`+sha+`"}`, &removed)
	if removed.Dropped != 1 {
		t.Errorf("remove of the missing song dropped %d entries, want 1", removed.Dropped)
	}
	if _, err := c.store.song(sha); err == nil {
		t.Error("the missing song's record outlived its removal")
	}
}
