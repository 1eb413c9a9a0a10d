package controller

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// makeWAV returns a 16-bit PCM stereo WAV file of frames frames at rate,
// with a different pattern per seed so that files hash differently.
func makeWAV(frames int64, rate int, seed int) []byte {
	var b bytes.Buffer
	dataLen := uint32(frames * 4)
	for _, field := range []any{
		[4]byte{'R', 'I', 'F', 'F'}, 36 + dataLen, [4]byte{'W', 'A', 'V', 'E'},
		[4]byte{'f', 'm', 't', ' '}, uint32(16), uint16(1), uint16(2),
		uint32(rate), uint32(rate * 4), uint16(4), uint16(16),
		[4]byte{'d', 'a', 't', 'a'}, dataLen,
	} {
		binary.Write(&b, binary.LittleEndian, field)
	}
	for i := range frames {
		v := int16(i*int64(seed+1)) & 0x3fff
		binary.Write(&b, binary.LittleEndian, [2]int16{v, -v})
	}
	return b.Bytes()
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func openTestStore(t testing.TB, dir string) *store {
	t.Helper()
	st, err := openStore(filepath.Join(dir, "tutti.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	st := openTestStore(t, dir)
	songs := []protocol.Song{
		{SHA256: hashOf([]byte("a")), Title: "Blue in Green", Artist: "Miles Davis", Album: "Kind of Blue", Format: "flac", Size: 10, Frames: 441000, SampleRate: 44100,
			AlbumArtist: "Miles Davis Sextet", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959, Genre: "Jazz",
			ReplayGain: &protocol.ReplayGain{Track: protocol.Gain{Db: -6.5, Peak: 0.98}, Album: &protocol.Gain{Db: -7.25}}},
		{SHA256: hashOf([]byte("b")), Title: "So What", Artist: "Miles Davis", Album: "Kind of Blue", Format: "mp3", Size: 20, Frames: 96000, SampleRate: 48000},
		{SHA256: hashOf([]byte("c")), Title: "100%_done", Artist: "Nobody", Album: "", Format: "wav", Size: 30, Frames: 1, SampleRate: 8000},
	}
	for _, s := range songs {
		if err := st.addSong(s, 42); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.addSong(songs[0], 43); err != nil {
		t.Fatal("adding a known song again:", err)
	}
	for _, name := range []string{"home", "kitchen", "home"} {
		if _, err := st.createSession(name, "", protocol.Everyone); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.sessions()
	if err != nil {
		t.Fatal(err)
	}
	s := all["home"]
	s.NextEntry = 1
	for i := range songs {
		s, _, err = apply(5, lead, s, protocol.Request{Cmd: protocol.CmdEnqueue, Song: "x"}, songsOf(&songs[i]), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _, err = apply(5, lead, s, protocol.Request{Cmd: protocol.CmdPlay, Index: intp(1)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.State.Volume = 33
	s.Playlist.Repeat, s.Playlist.Shuffle, s.Playlist.CrossfadeMs, s.Playlist.ReplayGain = protocol.RepeatAll, true, 4000, protocol.GainAlbum
	if err := st.saveSession(s, true); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openTestStore(t, dir)
	defer st.Close()
	all, err = st.sessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["kitchen"].State.State != protocol.Stopped || all["kitchen"].State.Anchor.Index != -1 {
		t.Fatalf("sessions %+v", all)
	}
	got := all["home"]
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("after reopen:\n%+v\nwant\n%+v", got, s)
	}
	for _, want := range songs {
		song, err := st.song(want.SHA256)
		want.URI, want.DurationNs = protocol.SongURI(want.SHA256), protocol.FramesToNs(want.Frames, want.SampleRate)
		want.AddedNs = 42
		if err != nil || !reflect.DeepEqual(song, want) {
			t.Fatalf("song %+v, %v; want %+v", song, err, want)
		}
	}
	if _, err := st.song(hashOf([]byte("d"))); err == nil {
		t.Fatal("unknown song found")
	}

	for _, tc := range []struct {
		query []string
		want  int
	}{
		{[]string{"miles"}, 2},
		{[]string{"MILES", "what"}, 1},
		{[]string{"kind", "green"}, 1},
		{[]string{"10"}, 1},     // a prefix of "100"
		{[]string{"%_done"}, 1}, // punctuation separates words, as in the texts
		{[]string{"coltrane"}, 0},
	} {
		found, _, err := st.searchSongs(tc.query, 0, 100)
		if err != nil || len(found) != tc.want {
			t.Errorf("search %q: %d songs, %v; want %d", tc.query, len(found), err, tc.want)
		}
	}
	if found, _, err := st.searchSongs([]string{"%", "*"}, 0, 100); err == nil {
		t.Errorf("search for punctuation alone: %d songs, no error", len(found))
	}
}

func TestStoreSessionsAndAssignments(t *testing.T) {
	dir := t.TempDir()
	st := openTestStore(t, dir)
	defer st.Close()
	for _, name := range []string{"home", "kitchen"} {
		if created, err := st.createSession(name, "", protocol.Everyone); err != nil || !created {
			t.Fatalf("create %s: %v, %v", name, created, err)
		}
	}
	if created, err := st.createSession("home", "Other", protocol.Everyone); err != nil || created {
		t.Fatalf("create home again: %v, %v", created, err)
	}
	acl := protocol.ACL{See: []string{"*"}, Join: []string{}, Control: []string{"bob"}}
	if err := st.saveSessionInfo("kitchen", "Kitchen", acl); err != nil {
		t.Fatal(err)
	}
	if err := st.saveSessionInfo("nowhere", "x", acl); err == nil {
		t.Fatal("info of an unknown session saved")
	}
	all, err := st.sessions()
	if err != nil {
		t.Fatal(err)
	}
	if all["home"].Title != "home" || !sameACL(all["home"].ACL, protocol.Everyone) ||
		all["kitchen"].Title != "Kitchen" || !sameACL(all["kitchen"].ACL, acl) {
		t.Fatalf("sessions %+v", all)
	}

	list := []protocol.Assignment{
		{V: 1, Speaker: "k1", Session: "kitchen", Volume: 50, Term: 3},
		{V: 1, Speaker: "k2", Session: "kitchen", Volume: 100, Term: 3},
		{V: 1, Speaker: "h1", Session: "home", Volume: 0, Term: 2},
	}
	if err := st.saveAssignments(list...); err != nil {
		t.Fatal(err)
	}
	changed, err := st.deleteSession("kitchen", 4)
	if err != nil || len(changed) != 2 {
		t.Fatalf("delete: %+v, %v", changed, err)
	}
	for _, a := range changed {
		if a.Session != "" || a.Term != 4 || (a.Speaker == "k1") != (a.Volume == 50) {
			t.Errorf("unassigned %+v", a)
		}
	}
	got, err := st.assignments()
	if err != nil || len(got) != 3 || got["h1"] != list[2] || got["k1"].Session != "" || got["k1"].Volume != 50 {
		t.Fatalf("assignments %+v, %v", got, err)
	}
	if err := st.deleteAssignment("h1"); err != nil {
		t.Fatal(err)
	}
	if all, err = st.sessions(); err != nil || len(all) != 1 {
		t.Fatalf("after delete: %+v, %v", all, err)
	}
	if got, _ := st.assignments(); len(got) != 2 {
		t.Fatalf("after deleting h1: %+v", got)
	}
	if err := st.deleteAssignment("h1"); err != nil {
		t.Fatalf("deleting a missing assignment: %v", err)
	}
	reopened := openTestStore(t, dir)
	defer reopened.Close()
	if got, err := reopened.assignments(); err != nil || len(got) != 2 || got["k1"].Volume != 50 {
		t.Fatalf("reopened after deleting h1: %+v, %v", got, err)
	}
}

// TestStoreMigratesOldDatabase opens a database of the version before
// titles, ACLs and assignments.
func TestStoreMigratesOldDatabase(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "tutti.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE sessions (name TEXT PRIMARY KEY, state TEXT NOT NULL, at_ns INTEGER NOT NULL,
			entry_index INTEGER NOT NULL, entry_id TEXT NOT NULL, position_ns INTEGER NOT NULL, playing INTEGER NOT NULL,
			volume INTEGER NOT NULL, seq INTEGER NOT NULL, playlist_version INTEGER NOT NULL, next_entry INTEGER NOT NULL,
			term INTEGER NOT NULL DEFAULT 0, playlist_term INTEGER NOT NULL DEFAULT 0)`,
		`INSERT INTO sessions VALUES ('home', 'stopped', 0, -1, '', 0, 0, 70, 5, 0, 1, 2, 2)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st := openTestStore(t, dir)
	defer st.Close()
	all, err := st.sessions()
	if err != nil || all["home"].Title != "home" || !sameACL(all["home"].ACL, protocol.Everyone) || all["home"].State.Volume != 70 {
		t.Fatalf("migrated: %+v, %v", all, err)
	}
	if err := st.saveAssignments(protocol.Assignment{Speaker: "a", Session: "home", Volume: 1}); err != nil {
		t.Fatal(err)
	}
}
