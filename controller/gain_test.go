package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// toneWAV is a WAV of a 1 kHz sine of amplitude amp (1 = full scale) on
// both channels, seconds long at 48 kHz; spike, if not 0, replaces the
// sample of frame 1000 on the left. Such a sine's loudness is
// 20*log10(amp) LUFS (K-weighting is 0 dB at 1 kHz, and two channels make
// up for a sine's mean square of half its peak's).
func toneWAV(t *testing.T, amp, seconds, spike float64) []byte {
	t.Helper()
	const rate = 48000
	var b bytes.Buffer
	err := audiogen.WriteWAV(&b, rate, int64(seconds*rate), func(i int64) audiogen.Frame {
		v := int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*1000*float64(i)/rate)))
		f := audiogen.Frame{L: v, R: v}
		if i == 1000 && spike != 0 {
			f.L = int16(spike * 32768)
		}
		return f
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func analyzeSong(t *testing.T, data []byte) protocol.Song {
	t.Helper()
	path := filepath.Join(t.TempDir(), "song.wav")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	song, err := analyze(f)
	if err != nil {
		t.Fatal(err)
	}
	return song
}

// TestAnalyzeMeasuresSongsWithoutReplayGain: a file without ReplayGain tags
// gets its track gain measured (-18 LUFS minus its loudness) with its peak;
// a silent one gets none, and plays as it is.
func TestAnalyzeMeasuresSongsWithoutReplayGain(t *testing.T) {
	for _, tc := range []struct {
		amp, wantDb float64
	}{{0.1, 2}, {0.5, -11.98}, {0.02, 15.98}} {
		song := analyzeSong(t, toneWAV(t, tc.amp, 5, 0))
		rg := song.ReplayGain
		if rg == nil || !rg.Measured || rg.Album != nil {
			t.Fatalf("sine of %v: ReplayGain %+v, want a measured track gain", tc.amp, rg)
		}
		if math.Abs(rg.Track.Db-tc.wantDb) > 0.05 || math.Abs(rg.Track.Peak-tc.amp) > 1e-4 {
			t.Errorf("sine of %v: track gain %v dB peak %v, want %v dB peak %v", tc.amp, rg.Track.Db, rg.Track.Peak, tc.wantDb, tc.amp)
		}
	}
	if rg := analyzeSong(t, toneWAV(t, 0, 5, 0)).ReplayGain; rg != nil {
		t.Errorf("silence: ReplayGain %+v, want none", rg)
	}
}

func TestEntryGain(t *testing.T) {
	album := &protocol.Gain{Db: -3, Peak: 0.5}
	for _, tc := range []struct {
		name string
		mode string
		rg   *protocol.ReplayGain
		want float64
	}{
		{"off", protocol.GainOff, &protocol.ReplayGain{Track: protocol.Gain{Db: -6}}, 0},
		{"no gain known", protocol.GainTrack, nil, 0},
		{"track", protocol.GainTrack, &protocol.ReplayGain{Track: protocol.Gain{Db: -6.5, Peak: 1}, Album: album}, -6.5},
		{"album", protocol.GainAlbum, &protocol.ReplayGain{Track: protocol.Gain{Db: -6.5, Peak: 1}, Album: album}, -3},
		{"album without album gain", protocol.GainAlbum, &protocol.ReplayGain{Track: protocol.Gain{Db: 4}}, 4},
		{"peak keeps gain from clipping", protocol.GainTrack, &protocol.ReplayGain{Track: protocol.Gain{Db: 9, Peak: 0.5}}, 6.02},
		{"peak allows the gain", protocol.GainTrack, &protocol.ReplayGain{Track: protocol.Gain{Db: 5, Peak: 0.5}}, 5},
		{"no peak: the limiter's job", protocol.GainTrack, &protocol.ReplayGain{Track: protocol.Gain{Db: 9}}, 9},
		{"bounded", protocol.GainTrack, &protocol.ReplayGain{Track: protocol.Gain{Db: 80}}, protocol.MaxGainDb},
	} {
		if got := entryGain(tc.mode, tc.rg); got != tc.want {
			t.Errorf("%s: %v dB, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSetGainModeSchedulesTheChange: the replaygain command changes the
// mode at the scheduled instant, where the timeline goes on unchanged, so
// that every speaker changes the gain at the same frame.
func TestSetGainModeSchedulesTheChange(t *testing.T) {
	s := newSession("home", "", protocol.Everyone)
	s.Playlist.Entries = []protocol.Entry{{ID: "e1", Song: strings.Repeat("a", 64), Frames: 480000, SampleRate: 48000}}
	s.reanchor(1e9, 0, 0, protocol.Playing)
	lead := int64(150e6)
	next, ch, err := apply(2e9, 150e6, s, protocol.Request{Cmd: protocol.CmdGain, Mode: protocol.GainTrack}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := next.State.Anchor
	if !ch.PlaylistChanged || ch.AtNs != 2e9+lead || next.Playlist.ReplayGain != protocol.GainTrack ||
		next.Playlist.Version != s.Playlist.Version+1 || a.AtNs != 2e9+lead || a.PositionNs != 1e9+lead || !a.Playing {
		t.Fatalf("change %+v, playlist %+v, anchor %+v", ch, next.Playlist, a)
	}
	if _, ch, err := apply(3e9, 150e6, next, protocol.Request{Cmd: protocol.CmdGain, Mode: protocol.GainTrack}, nil, nil); err != nil || ch.PlaylistChanged {
		t.Errorf("the same mode again: change %+v, %v", ch, err)
	}
	if _, _, err := apply(3e9, 150e6, next, protocol.Request{Cmd: protocol.CmdGain, Mode: "loud"}, nil, nil); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("mode loud: %v", err)
	}
}

// playlistGains waits for the retained playlist of home of version and
// returns its entries' gains.
func playlistGains(tc *testClient, version uint64) (protocol.Playlist, []float64) {
	tc.t.Helper()
	var pl protocol.Playlist
	tc.next(protocol.PlaylistTopic("home"), func(b []byte) bool {
		pl = protocol.Playlist{} // Unmarshal would keep fields omitted from b
		return json.Unmarshal(b, &pl) == nil && pl.Version == version
	})
	gains := make([]float64, len(pl.Entries))
	for i, e := range pl.Entries {
		gains[i] = e.GainDb
	}
	return pl, gains
}

func sameGains(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 0.05 {
			return false
		}
	}
	return true
}

// TestReplayGainOverMQTT: the replaygain command sets every entry's gain
// from its song's measured gain, entries enqueued later get theirs, the
// peak keeps a gain from clipping, off clears them, each change is a new
// playlist version; a bad mode is refused while other commands are
// answered; a restarted controller publishes the same gains.
func TestReplayGainOverMQTT(t *testing.T) {
	broker := startBroker(t)
	opts := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Sessions: []string{"home"}}
	c, stop := startController(t, opts)
	tc := newTestClient(t, broker, "tutti/reply")
	playlists := newTestClient(t, broker, protocol.PlaylistTopic("home")) // apart: waiting for a reply skips other messages
	loud := upload(t, c, toneWAV(t, 0.5, 3, 0), "loud.wav")               // -6 LUFS: -12 dB
	quiet := upload(t, c, toneWAV(t, 0.05, 3, 0), "quiet.wav")            // -26 LUFS: +8 dB
	spiky := upload(t, c, toneWAV(t, 0.01, 3, -0.5), "spiky.wav")         // -40 LUFS, peak 0.5: +22 dB capped at +6.02

	res := tc.cmd("a", `{"cmd":"enqueue","song":"`+loud.SHA256+`","req_id":"a"}`)
	v := res.State.PlaylistVersion
	if _, g := playlistGains(playlists, v); !sameGains(g, []float64{0}) {
		t.Fatalf("mode off: gains %v", g)
	}
	res = tc.cmd("b", `{"cmd":"replaygain","mode":"track","req_id":"b"}`)
	if res.State.PlaylistVersion != v+1 || res.AtNs == 0 || res.State.Anchor.AtNs != res.AtNs {
		t.Fatalf("replaygain track: %+v", res)
	}
	if pl, g := playlistGains(playlists, v+1); !sameGains(g, []float64{-12}) || pl.ReplayGain != protocol.GainTrack {
		t.Fatalf("track mode: %v, gains %v", pl.ReplayGain, g)
	}
	tc.cmd("c", `{"cmd":"enqueue","song":"`+quiet.SHA256+`","req_id":"c"}`)
	tc.cmd("d", `{"cmd":"enqueue","song":"`+spiky.SHA256+`","req_id":"d"}`)
	if _, g := playlistGains(playlists, v+3); !sameGains(g, []float64{-12, 8, 6.02}) {
		t.Fatalf("entries enqueued in track mode: gains %v", g)
	}
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "e", `{"cmd":"replaygain","mode":"loud","req_id":"e"}`)
	if reply.OK || !strings.Contains(reply.Error, "loud") {
		t.Fatalf("mode loud: %+v", reply)
	}
	tc.cmd("f", `{"cmd":"volume","volume":70,"req_id":"f"}`)
	tc.cmd("g", `{"cmd":"replaygain","mode":"album","req_id":"g"}`) // measured songs have no album gain
	before, g := playlistGains(playlists, v+4)
	if !sameGains(g, []float64{-12, 8, 6.02}) {
		t.Fatalf("album mode: gains %v", g)
	}
	stop()

	c, _ = startController(t, opts)
	var pl protocol.Playlist
	if err := json.Unmarshal(retained(t, broker, protocol.PlaylistTopic("home")), &pl); err != nil ||
		pl.Version != v+4 || pl.Hash() != before.Hash() || pl.ReplayGain != protocol.GainAlbum {
		t.Fatalf("after a restart: %+v, %v", pl, err)
	}
	res = tc.cmd("h", `{"cmd":"replaygain","mode":"off","req_id":"h"}`)
	if _, g := playlistGains(playlists, res.State.PlaylistVersion); !sameGains(g, []float64{0, 0, 0}) {
		t.Fatalf("mode off: gains %v", g)
	}
}

// TestEntryGainsKeepPublishedGains: after a change that keeps the mode, an
// entry keeps the gain it was published with though its song's gain has
// changed since, a new entry gets its song's gain now, and one whose song
// the library does not know (a standby's placeholder) plays at 0 dB.
func TestEntryGainsKeepPublishedGains(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	c := &Controller{store: st}
	song := func(n int, db float64) protocol.Entry {
		sha := strings.Repeat(string(rune('a'+n)), 64)
		s := protocol.Song{SHA256: sha, Title: "t", Format: "wav", Frames: 100, SampleRate: 44100,
			ReplayGain: &protocol.ReplayGain{Track: protocol.Gain{Db: db}}}
		if err := st.putSong(s, 1); err != nil {
			t.Fatal(err)
		}
		return protocol.Entry{ID: fmt.Sprint("e", n), Song: sha, Frames: 100, SampleRate: 44100}
	}
	old := newSession("home", "", protocol.Everyone)
	old.Playlist.ReplayGain = protocol.GainTrack
	first := song(1, -3)
	first.GainDb = -3
	old.Playlist.Entries = []protocol.Entry{first}
	song(1, -9) // the file was retagged
	next := old
	unknown := protocol.Entry{ID: "e9", Song: strings.Repeat("f", 64), Frames: 100, SampleRate: 44100}
	next.Playlist.Entries = []protocol.Entry{first, song(2, 4), unknown}
	got, err := c.entryGains(old, next)
	if err != nil {
		t.Fatal(err)
	}
	var gains []float64
	for _, e := range got.Playlist.Entries {
		gains = append(gains, e.GainDb)
	}
	if !slices.Equal(gains, []float64{-3, 4, 0}) {
		t.Errorf("gains %v, want [-3 4 0]", gains)
	}
	next.Playlist.ReplayGain = protocol.GainAlbum // a new mode: every entry anew
	if got, err = c.entryGains(old, next); err != nil || got.Playlist.Entries[0].GainDb != -9 {
		t.Errorf("after a mode change: %+v, %v", got.Playlist.Entries, err)
	}
}
