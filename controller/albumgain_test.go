package controller

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// sine1k is a 1 kHz sine of amplitude amp (1 = full scale) in both
// channels at 44.1 kHz: EBU Tech 3341's reference, which reads
// 20*log10(amp) LUFS.
func sine1k(amp float64) func(int64) audiogen.Frame {
	return func(i int64) audiogen.Frame {
		v := int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*1000*float64(i)/44100)))
		return audiogen.Frame{L: v, R: v}
	}
}

// gatingBlocks is how many 400 ms gating blocks, every 100 ms, seconds of
// audio hold.
func gatingBlocks(seconds float64) float64 { return seconds*10 - 3 }

// TestFolderSongsWithoutReplayGainAreMeasured: songs of a music folder
// whose tags give no ReplayGain are measured in the background: the track
// gain brings a tone of known level to -18 LUFS (within 0.1 dB), the album
// gain is the album's loudness with all its songs' blocks gated together,
// computed anew when a song joins the album; an entry already in a session
// in album mode gets the new gain. A song with ReplayGain tags is not
// measured.
func TestFolderSongsWithoutReplayGainAreMeasured(t *testing.T) {
	music := t.TempDir()
	album := filepath.Join(music, "Gen", "Tones")
	tags := musicgen.Tags{Title: "Loud", Artist: "Gen", Album: "Tones", Track: 1}
	loudPath := filepath.Join(album, "01 Loud.flac")
	if err := musicgen.Encode(loudPath, musicgen.FLAC, tags, 4, "", sine1k(0.2)); err != nil {
		t.Fatal(err)
	}
	loud := fileSHA(t, loudPath)
	tagGain := -3.5
	taggedPath := filepath.Join(music, "tagged.flac")
	if err := musicgen.Encode(taggedPath, musicgen.FLAC, musicgen.Tags{Title: "Tagged", Album: "Other", TrackGainDb: &tagGain}, 2, "", sine1k(0.5)); err != nil {
		t.Fatal(err)
	}
	tagged := fileSHA(t, taggedPath)

	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music}, Sessions: []string{"home"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	playlists := newTestClient(t, broker, protocol.PlaylistTopic("home"))
	near := func(got, want float64) bool { return math.Abs(got-want) <= 0.1 }

	loudGain := -18 - 20*math.Log10(0.2)
	var song protocol.Song
	testwait.For(t, "the loud song measured", waitTimeout, func() bool {
		var ok bool
		song, ok = lookup(tc, loud)
		return ok && song.ReplayGain != nil
	})
	rg := song.ReplayGain
	if !rg.Measured || !near(rg.Track.Db, loudGain) || !near(rg.Track.Peak, 0.2) || rg.Album == nil || !near(rg.Album.Db, loudGain) {
		t.Fatalf("measured %+v (album %+v), want track and album gain %.2f dB (its album has one song so far)", rg, rg.Album, loudGain)
	}
	if s, ok := lookup(tc, tagged); !ok || s.ReplayGain == nil || s.ReplayGain.Measured || s.ReplayGain.Track.Db != tagGain {
		t.Fatalf("tagged song %+v", s.ReplayGain)
	}

	tc.cmd("rg", `{"cmd":"replaygain","mode":"album","req_id":"rg"}`)
	tc.cmd("q1", `{"cmd":"enqueue","song":"`+loud+`","req_id":"q1"}`)
	entryGain := func(want float64) func([]byte) bool {
		return func(b []byte) bool {
			pl, err := protocol.Decode[protocol.Playlist](b)
			return err == nil && len(pl.Entries) == 1 && near(pl.Entries[0].GainDb, want)
		}
	}
	playlists.next(protocol.PlaylistTopic("home"), entryGain(loudGain))

	// A quieter song joins the album: the album's loudness falls, and the
	// entry already in the session follows.
	tags.Title, tags.Track = "Quiet", 2
	quietPath := filepath.Join(album, "02 Quiet.flac")
	if err := musicgen.Encode(quietPath, musicgen.FLAC, tags, 6, "", sine1k(0.05)); err != nil {
		t.Fatal(err)
	}
	quiet := fileSHA(t, quietPath)
	albumLUFS := 10 * math.Log10((gatingBlocks(4)*0.2*0.2+gatingBlocks(6)*0.05*0.05)/(gatingBlocks(4)+gatingBlocks(6)))
	albumGain := -18 - albumLUFS
	playlists.next(protocol.PlaylistTopic("home"), entryGain(albumGain))
	for sha, trackGain := range map[string]float64{loud: loudGain, quiet: -18 - 20*math.Log10(0.05)} {
		s, ok := lookup(tc, sha)
		if ok && s.ReplayGain != nil && s.ReplayGain.Album != nil {
			t.Logf("%s: track %.2f dB (expected %.3f), album %.2f dB (expected %.3f)", s.Title, s.ReplayGain.Track.Db, trackGain, s.ReplayGain.Album.Db, albumGain)
		}
		if !ok || s.ReplayGain == nil || !s.ReplayGain.Measured || !near(s.ReplayGain.Track.Db, trackGain) ||
			s.ReplayGain.Album == nil || !near(s.ReplayGain.Album.Db, albumGain) || !near(s.ReplayGain.Album.Peak, 0.2) {
			t.Errorf("song %s: %+v, want track %.2f dB, album %.2f dB peak 0.2", s.Title, s.ReplayGain, trackGain, albumGain)
		}
	}
	if todo, err := c.store.unleveledSongs(10); err != nil || len(todo) != 0 {
		t.Errorf("left to measure: %v, %v", todo, err)
	}
	var rows int
	if err := c.store.db.QueryRow(`SELECT count(*) FROM song_loudness WHERE sha256 = ?`, tagged).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("the tagged song was measured (%d rows, %v)", rows, err)
	}
}

// TestRegainAtASharedInstant: a song's new gain reaches its entries from
// the scheduled instant on, the playing one going on where it is (every
// speaker changes its gain at the same frame); the same gain again, a song
// the session does not hold, or a session that does not level songs
// change nothing.
func TestRegainAtASharedInstant(t *testing.T) {
	const sec = int64(time.Second)
	s := newSession("home", "", protocol.Everyone)
	for i, sha := range []string{"a", "b", "a"} {
		s.Playlist.Entries = append(s.Playlist.Entries, protocol.Entry{ID: "e" + string(rune('1'+i)), Song: sha, Frames: 10 * 44100, SampleRate: 44100})
	}
	s.reanchor(100*sec, 0, 0, protocol.Playing)
	now, lead := 103*sec, 150*time.Millisecond // 3 s into the first a
	gains := map[string]*protocol.ReplayGain{"a": {Track: protocol.Gain{Db: -4}, Album: &protocol.Gain{Db: -2}, Measured: true}, "z": {Track: protocol.Gain{Db: 5}}}
	if _, changed := regain(now, lead, s, gains); changed {
		t.Fatal("a session with ReplayGain off changed")
	}
	s.Playlist.ReplayGain = protocol.GainAlbum
	next, changed := regain(now, lead, s, gains)
	if !changed || next.Playlist.Entries[0].GainDb != -2 || next.Playlist.Entries[1].GainDb != 0 || next.Playlist.Entries[2].GainDb != -2 {
		t.Fatalf("changed %v, entries %+v", changed, next.Playlist.Entries)
	}
	if next.Playlist.Version != s.Playlist.Version+1 || next.State.Seq != s.State.Seq+1 {
		t.Errorf("versions: playlist %d, seq %d", next.Playlist.Version, next.State.Seq)
	}
	at := now + int64(lead)
	if next.State.Anchor.AtNs != at {
		t.Errorf("anchored at %d, want the scheduled instant %d", next.State.Anchor.AtNs, at)
	}
	if idx, pos, st := next.cursor(at); idx != 0 || pos != 3*sec+int64(lead) || st != protocol.Playing {
		t.Errorf("at the scheduled instant: entry %d at %d %s, want the first going on", idx, pos, st)
	}
	if _, again := regain(now, lead, next, gains); again {
		t.Error("the same gain again changed the session")
	}
}
