package controller

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// folderBar is how soon a change in a music folder must show in the
// library.
const folderBar = 5 * time.Second

// encode makes a song in format at path.
func encode(t *testing.T, path, format string, tags musicgen.Tags, cover string) string {
	t.Helper()
	if err := musicgen.Encode(path, format, tags, 1, cover, nil); err != nil {
		t.Fatal(err)
	}
	return fileSHA(t, path)
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lookup asks the library for a song; ok is false when it is unknown.
func lookup(tc *testClient, sha string) (protocol.Song, bool) {
	id := "lookup-" + sha[:8] + "-" + time.Now().Format("150405.000000")
	reply := tc.request(protocol.LibraryCommandTopic, protocol.DefaultReplyTopic, id,
		`{"cmd":"lookup","song":"`+sha+`","req_id":"`+id+`"}`)
	var song protocol.Song
	if !reply.OK || json.Unmarshal(reply.Result, &song) != nil {
		return song, false
	}
	return song, true
}

func TestMusicFolderIndexedServedWatchedAndMissing(t *testing.T) {
	music := t.TempDir()
	album := filepath.Join(music, "Miles Davis", "Kind of Blue")
	gain := -6.5
	tags := musicgen.Tags{Title: "So What", Artist: "Miles Davis", Album: "Kind of Blue", AlbumArtist: "Miles Davis",
		Genre: "Jazz", Track: 1, TrackTotal: 5, Disc: 1, DiscTotal: 1, Year: 1959, TrackGainDb: &gain}
	flacPath := filepath.Join(album, "01 So What.flac")
	flacSHA := encode(t, flacPath, musicgen.FLAC, tags, "")
	tags.Title, tags.Track = "Freddie Freeloader", 2
	mp3Path := filepath.Join(album, "02 Freddie Freeloader.mp3")
	mp3SHA := encode(t, mp3Path, musicgen.MP3, tags, "")
	cover := filepath.Join(album, "Cover.JPG")
	if err := musicgen.WriteCover(cover, 7); err != nil {
		t.Fatal(err)
	}
	coverBytes, _ := os.ReadFile(cover)

	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music},
		Sessions: []string{"home"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic, protocol.ControllerStatusTopic)
	// Apart: waiting for a reply drops the other messages.
	playlists := newTestClient(t, broker, protocol.PlaylistTopic("home"))
	announced := newTestClient(t, broker, protocol.LibrarySongFilter)

	// The first scan, seen in the status.
	tc.next(protocol.ControllerStatusTopic, func(b []byte) bool {
		st, err := protocol.Decode[protocol.ControllerStatus](b)
		return err == nil && st.Online && st.Scan != nil && st.Scan.Done && st.Scan.Seen == 2
	})
	song, ok := lookup(tc, flacSHA)
	want := protocol.Song{SHA256: flacSHA, URI: protocol.SongURI(flacSHA), Title: "So What", Artist: "Miles Davis",
		Album: "Kind of Blue", AlbumArtist: "Miles Davis", Track: 1, TrackTotal: 5, Disc: 1, DiscTotal: 1, Year: 1959,
		Genre: "Jazz", Format: "flac", Frames: 44100, SampleRate: 44100, DurationNs: 1e9}
	if !ok || song.ReplayGain == nil || song.ReplayGain.Track.Db != gain {
		t.Fatalf("flac song %+v (%v), want track gain %v", song, ok, gain)
	}
	song.ReplayGain, song.Size, song.AddedNs = nil, 0, 0
	if song != want {
		t.Fatalf("flac song\n got %+v\nwant %+v", song, want)
	}

	// Served from the folder's file, with the folder's cover.
	flacBytes, _ := os.ReadFile(flacPath)
	resp, body := do(t, http.MethodGet, c.SongsURL()+flacSHA, nil, "Authorization", "Bearer "+c.tokens.get())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, flacBytes) {
		t.Fatalf("GET song: %d, %d bytes, want the file's %d", resp.StatusCode, len(body), len(flacBytes))
	}
	artURL := strings.TrimSuffix(c.SongsURL(), "/songs/") + protocol.ArtPath + flacSHA
	if resp, body := do(t, http.MethodGet, artURL, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, coverBytes) {
		t.Fatalf("GET cover: %d, %d bytes, want the folder's %d", resp.StatusCode, len(body), len(coverBytes))
	}

	// Enqueued, then its file removed: the entry turns missing; back: present.
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+mp3SHA+`","req_id":"q1"}`)
	tc.cmd("q2", `{"cmd":"enqueue","song":"`+flacSHA+`","req_id":"q2"}`)
	entryMissing := func(missing bool) func([]byte) bool {
		return func(b []byte) bool {
			pl, err := protocol.Decode[protocol.Playlist](b)
			return err == nil && len(pl.Entries) == 2 && pl.Entries[1].Song == flacSHA && pl.Entries[1].Missing == missing &&
				!pl.Entries[0].Missing
		}
	}
	playlists.next(protocol.PlaylistTopic("home"), entryMissing(false))
	aside := filepath.Join(t.TempDir(), "aside.flac")
	if err := os.Rename(flacPath, aside); err != nil { // out of the music folder
		t.Fatal(err)
	}
	start := time.Now()
	playlists.next(protocol.PlaylistTopic("home"), entryMissing(true))
	if took := time.Since(start); took > folderBar {
		t.Errorf("the entry turned missing after %v, over %v", took, folderBar)
	}
	if s, ok := lookup(tc, flacSHA); !ok || !s.Missing {
		t.Errorf("lookup of the removed song: %+v %v, want missing", s, ok)
	}
	if resp, _ := do(t, http.MethodGet, c.SongsURL()+flacSHA, nil, "Authorization", "Bearer "+c.tokens.get()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a missing song: %d", resp.StatusCode)
	}
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "q3",
		`{"cmd":"enqueue","song":"`+flacSHA+`","req_id":"q3"}`)
	if reply.OK || !strings.Contains(reply.Error, "file") {
		t.Errorf("enqueue of a missing song: %+v", reply)
	}
	// Moved back in under another name: the same content is the same song.
	moved := filepath.Join(music, "Miles Davis", "moved.flac")
	if err := os.Rename(aside, moved); err != nil {
		t.Fatal(err)
	}
	playlists.next(protocol.PlaylistTopic("home"), entryMissing(false))
	if resp, body := do(t, http.MethodGet, c.SongsURL()+flacSHA, nil, "Authorization", "Bearer "+c.tokens.get()); resp.StatusCode != http.StatusOK || !bytes.Equal(body, flacBytes) {
		t.Errorf("GET of the moved song: %d, %d bytes", resp.StatusCode, len(body))
	}

	// A file added shows up within the bar.
	tags.Title, tags.Track = "Blue in Green", 3
	staged := filepath.Join(t.TempDir(), "03.ogg")
	oggSHA := encode(t, staged, musicgen.Ogg, tags, "")
	if err := os.Rename(staged, filepath.Join(album, "03 Blue in Green.ogg")); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the added song in the library", folderBar, func() bool {
		s, ok := lookup(tc, oggSHA)
		return ok && s.Title == "Blue in Green" && s.Frames > 0
	})

	// A folder renamed while its song is in a playlist: the files move in
	// the index, and the entry never turns missing.
	renamed := filepath.Join(music, "Miles Davis", "Kind of Blue (1959)")
	if err := os.Rename(album, renamed); err != nil {
		t.Fatal(err)
	}
	album, mp3Path = renamed, filepath.Join(renamed, filepath.Base(mp3Path))
	testwait.For(t, "the moved file in the index", folderBar, func() bool {
		files, err := c.store.songFiles(mp3SHA)
		return err == nil && len(files) == 1 && files[0].path == mp3Path
	})
	for len(playlists.msgs) > 0 {
		if m := <-playlists.msgs; strings.Contains(string(m.Payload()), `"missing":true`) {
			t.Errorf("a moved song's entry turned missing: %s", m.Payload())
		}
	}

	// A file changed in place is not served under its old hash, even
	// before the scan reads it again.
	if err := os.WriteFile(mp3Path, []byte("ID3 not the same song any more"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, http.MethodGet, c.SongsURL()+mp3SHA, nil, "Authorization", "Bearer "+c.tokens.get()); resp.StatusCode == http.StatusOK {
		t.Errorf("a changed file was served under its old hash: %d bytes", len(body))
	}
	playlists.next(protocol.PlaylistTopic("home"), func(b []byte) bool {
		pl, err := protocol.Decode[protocol.Playlist](b)
		return err == nil && len(pl.Entries) == 2 && pl.Entries[0].Missing
	})

	// Folder songs are not announced: speakers would replicate them all.
	select {
	case m := <-announced.msgs:
		t.Errorf("a folder song was announced on %s", m.Topic())
	default:
	}
}

func TestScanCommandRescansAndShowsProgress(t *testing.T) {
	music := t.TempDir()
	for i := range 3 {
		encode(t, filepath.Join(music, "a", "song"+string(rune('0'+i))+".flac"), musicgen.FLAC, musicgen.Tags{Title: "S", Track: i + 1}, "")
	}
	broker := startBroker(t)
	startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music}, Sessions: []string{"home"},
		Roles: func(user string) string { return map[string]string{"ann": roleAdmin, "bob": roleMember}[user] }})
	ann := newUserClient(t, broker, "ann", "", protocol.UserTopic(protocol.DefaultReplyTopic, "ann"), protocol.ControllerStatusTopic)
	bob := newUserClient(t, broker, "bob", "", protocol.UserTopic(protocol.DefaultReplyTopic, "bob"))
	var first int
	ann.next(protocol.ControllerStatusTopic, func(b []byte) bool {
		st, err := protocol.Decode[protocol.ControllerStatus](b)
		if err == nil && st.Scan != nil && st.Scan.Done && st.Scan.Seen == 3 && st.Scan.Files == 3 {
			first = st.Scan.Number
			return true
		}
		return false
	})
	reply := bob.request(protocol.UserTopic(protocol.LibraryCommandTopic, "bob"), protocol.UserTopic(protocol.DefaultReplyTopic, "bob"), "s1",
		`{"cmd":"scan","req_id":"s1"}`)
	if reply.OK || !strings.Contains(reply.Error, "only admins") {
		t.Fatalf("a member's scan: %+v", reply)
	}
	reply = ann.request(protocol.UserTopic(protocol.LibraryCommandTopic, "ann"), protocol.UserTopic(protocol.DefaultReplyTopic, "ann"), "s2",
		`{"cmd":"scan","req_id":"s2"}`)
	if !reply.OK {
		t.Fatalf("an admin's scan: %+v", reply)
	}
	// A later scan ends having read nothing again. (The status is
	// published latest-wins: a rescan this quick may show only its end.)
	ann.next(protocol.ControllerStatusTopic, func(b []byte) bool {
		st, err := protocol.Decode[protocol.ControllerStatus](b)
		return err == nil && st.Scan != nil && st.Scan.Number > first && st.Scan.Done && st.Scan.Seen == 3 && st.Scan.Files == 0
	})
}

func TestFolderSongLimits(t *testing.T) {
	f := musicfolder.File{Path: "/m/x.flac", SHA256: strings.Repeat("ab", 32), Format: "flac", Size: 10,
		Length: musicfolder.Length{Frames: 44100, SampleRate: 44100, Channels: 6}}
	if _, err := folderSong(f); err == nil {
		t.Error("a 6-channel file was accepted")
	}
	f.Length.Channels, f.Length.SampleRate = 2, 4000
	if _, err := folderSong(f); err == nil {
		t.Error("a 4 kHz file was accepted")
	}
	f.Length.SampleRate, f.Length.Frames = 44100, 44100*int64(maxSongDuration.Seconds()+1)
	if _, err := folderSong(f); err == nil {
		t.Error("a file over the longest song was accepted")
	}
	f.Length.Frames = 44100
	s, err := folderSong(f)
	if err != nil || s.Title != "x" || s.DurationNs != 1e9 {
		t.Errorf("%+v %v", s, err)
	}
}

// A FLAC whose STREAMINFO does not give its length (as streamed encoders
// leave it) is decoded in the background; it may be enqueued once it is.
func TestFolderSongWithoutLengthIsMeasured(t *testing.T) {
	music := t.TempDir()
	path := filepath.Join(music, "streamed.flac")
	if err := musicgen.Encode(path, musicgen.FLAC, musicgen.Tags{Title: "Streamed"}, 1, "", nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// STREAMINFO's total samples: the low 36 bits of the 8 bytes at 18
	// ("fLaC", the block header, then 10 bytes of block sizes and rates).
	b[21] &= 0xF0
	for i := 22; i < 26; i++ {
		b[i] = 0
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := musicfolder.HeaderLength(bytes.NewReader(b), int64(len(b)), "flac"); err != nil || l.Frames != 0 {
		t.Fatalf("the patched FLAC's headers give %+v, %v: want no length", l, err)
	}
	sha := fileSHA(t, path)
	broker := startBroker(t)
	startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music}, Sessions: []string{"home"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	testwait.For(t, "the song measured", waitTimeout, func() bool {
		s, ok := lookup(tc, sha)
		return ok && s.Frames == 44100 && s.SampleRate == 44100
	})
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+sha+`","req_id":"q1"}`)

	// An M4A's length comes from its own reader, and its conversion reads
	// the folder's file.
	m4a := filepath.Join(music, "aac.m4a")
	m4aSHA := encode(t, m4a, musicgen.AAC, musicgen.Tags{Title: "AAC"}, "")
	testwait.For(t, "the M4A measured", waitTimeout, func() bool {
		s, ok := lookup(tc, m4aSHA)
		return ok && s.Frames > 44100 && s.Format == "m4a"
	})
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "q2",
		`{"cmd":"enqueue","song":"`+m4aSHA+`","req_id":"q2"}`)
	if !reply.OK {
		t.Fatalf("enqueue of the folder's M4A: %+v", reply)
	}
}

// A standby that reaches the music folder indexes it itself and serves its
// songs from there, copying nothing; one that does not reach it fetches the
// songs its mirrored playlists name from the holder, which serves them from
// its folder. Either may take over.
func TestStandbysWithAndWithoutTheMusicFolder(t *testing.T) {
	music := t.TempDir()
	path := filepath.Join(music, "Album", "song.flac")
	sha := encode(t, path, musicgen.FLAC, musicgen.Tags{Title: "Shared", Track: 1}, "")
	broker := startBroker(t)
	ttl := 600 * time.Millisecond
	a, stopA := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}})
	b, _ := runController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}})
	c, _ := runController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "c", LeaseTTL: ttl,
		Sessions: []string{"home"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	// Until then a standby answers commands that nobody holds the lease.
	testwait.For(t, "the standbys to know the holder", waitTimeout, func() bool { return b.otherHolder.Load() && c.otherHolder.Load() })
	testwait.For(t, "the holder to index the folder", waitTimeout, func() bool { _, ok := lookup(tc, sha); return ok })
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+sha+`","req_id":"q1"}`)

	served := func(ctl *Controller) bool {
		resp, _ := do(t, http.MethodGet, ctl.SongsURL()+sha, nil, "Authorization", "Bearer "+a.tokens.get())
		return resp.StatusCode == http.StatusOK
	}
	testwait.For(t, "the standby with the folder to serve the song", waitTimeout, func() bool { return served(b) })
	testwait.For(t, "the standby without it to fetch the song", waitTimeout, func() bool { return served(c) })
	if b.lib.holdsUpload(sha) {
		t.Error("the standby that reaches the folder copied the song")
	}
	if !c.lib.holdsUpload(sha) {
		t.Error("the standby without the folder serves the song but holds no copy")
	}

	stopA()
	testwait.For(t, "a standby to take over, known to the other", waitTimeout, func() bool {
		return b.holding() && c.otherHolder.Load() || c.holding() && b.otherHolder.Load()
	})
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "q2",
		`{"cmd":"enqueue","song":"`+sha+`","req_id":"q2"}`)
	if !reply.OK {
		t.Fatalf("enqueue on the new holder (b %v, c %v): %+v", b.holding(), c.holding(), reply)
	}
}

// A song whose file left the music folder plays again once uploaded.
func TestMissingSongUploadedIsPresentAgain(t *testing.T) {
	music := t.TempDir()
	path := filepath.Join(music, "song.flac")
	sha := encode(t, path, musicgen.FLAC, musicgen.Tags{Title: "Lost"}, "")
	data, _ := os.ReadFile(path)
	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music}, Sessions: []string{"home"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	playlists := newTestClient(t, broker, protocol.PlaylistTopic("home"))
	testwait.For(t, "the song indexed", waitTimeout, func() bool { _, ok := lookup(tc, sha); return ok })
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+sha+`","req_id":"q1"}`)
	missing := func(want bool) func([]byte) bool {
		return func(b []byte) bool {
			pl, err := protocol.Decode[protocol.Playlist](b)
			return err == nil && len(pl.Entries) == 1 && pl.Entries[0].Missing == want
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	playlists.next(protocol.PlaylistTopic("home"), missing(true))
	resp, body := do(t, http.MethodPut, c.SongsURL()+sha+"?name=lost.flac", data, "Authorization", "Bearer "+c.tokens.get())
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	playlists.next(protocol.PlaylistTopic("home"), missing(false))
	if s, ok := lookup(tc, sha); !ok || s.Missing {
		t.Errorf("uploaded song %+v %v, want present", s, ok)
	}
}

// The length the scan reads from a file's headers is the one the upload
// analysis decodes (for every format speakers decode; an M4A's is left to
// its own headers' reader, as its FLAC conversion plays).
func TestFolderLengthsAreWhatAnalyzeCounts(t *testing.T) {
	dir := t.TempDir()
	for _, format := range musicgen.AllFormats {
		path := filepath.Join(dir, "song-"+format+musicgen.Ext(format))
		if err := musicgen.Encode(path, format, musicgen.Tags{Title: format}, 1.3, "", nil); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Stat()
		var head [musicfolder.HeadSize]byte
		n, _ := f.ReadAt(head[:], 0)
		l, err := musicfolder.HeaderLength(f, info.Size(), musicfolder.DetectFormat(head[:n]))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		f.Seek(0, 0)
		song, err := analyze(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: analyze: %v", format, err)
		}
		if song.Format == "m4a" {
			if l.Frames != 0 || song.Frames == 0 {
				t.Errorf("%s: headers %+v, analyze %d frames: want the M4A reader's count alone", format, l, song.Frames)
			}
			continue
		}
		if l.Frames != song.Frames || l.SampleRate != song.SampleRate || l.Frames == 0 {
			t.Errorf("%s: headers give %d frames at %d Hz, analyze %d at %d", format, l.Frames, l.SampleRate, song.Frames, song.SampleRate)
		}
	}
}
