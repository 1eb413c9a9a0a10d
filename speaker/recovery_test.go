package speaker

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

func TestEngineMutesOnPlaylistHashMismatch(t *testing.T) {
	f := newFixture(t)
	st := f.state(f.t0, 0, 0, true, 100)
	other := f.pl
	other.Entries = []protocol.Entry{f.pl.Entries[0]} // same version, other content
	st.PlaylistHash = other.Hash()
	f.eng.addState(st)
	checkHeard(t, f.play(f.t0, 441), func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != recovering || !strings.Contains(s.Error, "do not match") {
		t.Errorf("status %+v, want recovering", s)
	}
	if !f.eng.mismatched() || f.eng.holdsPlaylist(st.PlaylistVersion, st.PlaylistHash) {
		t.Error("mismatch not reported")
	}
	f.eng.setPlaylist(other)
	if f.eng.mismatched() {
		t.Error("still mismatched with the matching playlist")
	}
	at := f.t0 + framesToNsRound(441, testRate)
	checkHeard(t, f.play(at, 441), func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return 441 + int64(i)
	})
}

// TestSpeakerRepairsMismatchedPlaylist: the speaker holds a playlist whose
// hash is not the one the session state names; it mutes, re-reads the
// retained topics until the pair matches, and plays in sync.
func TestSpeakerRepairsMismatchedPlaylist(t *testing.T) {
	song, sha := timecodeWAV(t, 20*testRate, 0)
	c := newTestController(t, map[string][]byte{sha: song})
	good := protocol.Playlist{V: 1, Session: "home", Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: 20 * testRate, SampleRate: testRate}}}
	bad := good
	bad.Entries = []protocol.Entry{{ID: "a", Song: sha, Frames: 19 * testRate, SampleRate: testRate}}
	c.retain(protocol.PlaylistTopic("home"), bad)
	startAt := time.Now().Add(time.Second).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing, Volume: 100,
		PlaylistVersion: 1, PlaylistHash: good.Hash(), Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	sp := startSpeaker(t, c, "den", nil)
	testwait.For(t, "the speaker to recover", 10*time.Second, func() bool { return c.status("den").State == recovering })
	if st := c.status("den"); !strings.Contains(st.Error, "do not match") {
		t.Errorf("status %+v: no reason", st)
	}
	// The broker's retained playlist is put right without a message to
	// subscribers: only a re-read finds it.
	c.broker.Topics.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: protocol.PlaylistTopic("home"), Payload: protocol.Encode(good), Created: time.Now().Unix()})
	repairedAt := time.Now()
	testwait.For(t, "the speaker to play", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })
	testwait.For(t, "the ack of the state", 5*time.Second, func() bool { return ackedState(c.acksOf("den"), 0, 1) })
	time.Sleep(300 * time.Millisecond)
	sp.stop()
	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	if h.first < repairedAt.UnixNano() {
		t.Errorf("sound %v before the repair", time.Duration(repairedAt.UnixNano()-h.first))
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
}

// TestEngineRecoversFromDamagedSong: a cached file that fails to decode
// mutes the song at once (recovering) and asks the fetch loop to check it;
// the engine does not touch the file again until the check. Fetched anew,
// the song plays on where the timeline is.
func TestEngineRecoversFromDamagedSong(t *testing.T) {
	f := newFixture(t)
	wake := make(chan struct{}, 1)
	f.eng.fetchWake = wake
	dir := t.TempDir()
	good := writeTimecode(t, dir, testRate, 5000, 0)
	full, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	if err := os.WriteFile(truncated, full[:44+4*1000], 0o644); err != nil {
		t.Fatal(err)
	}
	f.files.put("c", truncated)
	f.pl = protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "c1", Song: "c", Frames: 5000, SampleRate: testRate}}}
	f.eng.setPlaylist(f.pl)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))

	// Frames 0-881 are in the file; the block that needs frame 1000 on fails whole.
	got := f.play(f.t0, 441*3)
	checkHeard(t, got, func(i int) int64 {
		if i >= 882 {
			return -1
		}
		return int64(i)
	})
	if s := f.eng.status(); s.State != recovering || !strings.Contains(s.Error, "cached song c cannot be played") {
		t.Errorf("status %+v, want recovering, naming the song", s)
	}
	select {
	case <-wake:
	default:
		t.Error("the fetch loop was not woken")
	}
	if d := f.eng.damagedSongs(); len(d) != 1 || d[0] != "c" {
		t.Errorf("damaged songs %v, want [c]", d)
	}
	// Not checked yet: still muted, even with a good file in place.
	f.files.put("c", good)
	checkHeard(t, f.play(f.t0+framesToNsRound(441*3, testRate), 441), func(int) int64 { return -1 })

	f.eng.checked("c", false) // dropped and fetched again
	if d := f.eng.damagedSongs(); len(d) != 0 {
		t.Errorf("damaged songs %v after the check, want none", d)
	}
	got = f.play(f.t0+framesToNsRound(441*4, testRate), 441*2)
	checkHeard(t, got, func(i int) int64 {
		if inFade(i, 0) {
			return fading
		}
		return int64(441*4 + i)
	})
	if s := f.eng.status(); s.State != protocol.Playing || s.Error != "" {
		t.Errorf("status %+v, want playing", s)
	}
	f.eng.mu.Lock()
	defer f.eng.mu.Unlock()
	if len(f.eng.damaged) != 0 {
		t.Errorf("still marked damaged: %v", f.eng.damaged)
	}
}

// TestEngineUndecodableSong: a song whose cached file is intact but cannot
// be decoded stays silent for good, and is not checked again and again.
func TestEngineUndecodableSong(t *testing.T) {
	f := newFixture(t)
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("RIFF\x10\x00\x00\x00WAVEnot really a wav file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.files.put("a", junk)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	checkHeard(t, f.play(f.t0, 441), func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != recovering || !strings.Contains(s.Error, "song a") {
		t.Errorf("status %+v, want recovering, naming the song", s)
	}
	f.eng.checked("a", true)
	checkHeard(t, f.play(f.t0+framesToNsRound(441, testRate), 441), func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != buffering || !strings.Contains(s.Error, "cannot be decoded") {
		t.Errorf("status %+v, want buffering: cannot be decoded", s)
	}
	if d := f.eng.damagedSongs(); len(d) != 0 {
		t.Errorf("damaged songs %v, want none: the song is bad", d)
	}
	// The next song plays on the timeline.
	got := f.play(f.t0+framesToNsRound(1000, testRate), 441)
	checkHeard(t, got, func(i int) int64 { return 100000 + int64(i) })
}

// TestEngineMutesWhenClockUncertain: the engine mutes as soon as the
// follower stops trusting the clock estimate (its bound grew beyond
// clockUncertain: clocksync's TestFollowerTrust), says why, and plays on
// where the timeline is once it is trusted again.
func TestEngineMutesWhenClockUncertain(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	f.files.put("long", writeTimecode(t, dir, testRate, 10*testRate, 0))
	f.pl = protocol.Playlist{V: 1, Session: "home", Version: 4, Entries: []protocol.Entry{{ID: "l1", Song: "long", Frames: 10 * testRate, SampleRate: testRate}}}
	f.eng.setPlaylist(f.pl)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	model := clocksync.Model{Offset: int64(fixtureOffset)}
	at := func(sec float64) int64 { return f.t0 + int64(sec*1e9) }
	estimate := func(sec float64, bound time.Duration, trust clocksync.Trust) bool {
		return f.eng.setClock(clocksync.Estimate{Model: model, Bound: bound, Samples: 20, At: clocksync.LocalNs(at(sec) - int64(fixtureOffset)), Trust: trust})
	}
	uncertain := clocksync.Trust{Opened: true, ClosedBound: 8 * time.Millisecond, Limit: clockUncertain, ErrorBound: syncErrorBound}

	if got := f.play(at(0.5), 441); got[440] != int64(0.5*testRate)+440 {
		t.Fatalf("playing: heard frame %d, want %d", got[440], int64(0.5*testRate)+440)
	}
	if estimate(0.6, 8*time.Millisecond, uncertain) {
		t.Error("still playing with an error bound of 8ms")
	}
	checkHeard(t, f.play(at(0.6), 441), func(int) int64 { return -1 })
	if s := f.eng.status(); s.State != recovering || !strings.Contains(s.Error, "clock estimate uncertain") || !strings.Contains(s.Error, "8ms") {
		t.Errorf("status %+v, want recovering: clock estimate uncertain, by 8ms", s)
	}
	estimate(0.7, 3*time.Millisecond, uncertain)
	checkHeard(t, f.play(at(0.7), 441), func(int) int64 { return -1 })
	if !estimate(0.8, 1500*time.Microsecond, clocksync.Trust{Open: true, Opened: true}) {
		t.Error("not playing with the bound back within the start bound")
	}
	got := f.play(at(0.8), 882)
	if want := int64(0.8*testRate) + 881; got[881] != want { // past the fade-in
		t.Errorf("back: last frame %d, want %d", got[881], want)
	}
	if s := f.eng.status(); s.State != protocol.Playing {
		t.Errorf("status %+v, want playing", s)
	}
}

// TestSpeakerRefetchesDamagedSong: the cached file of the next song is
// damaged on disk after it was verified. When it is due the speaker mutes
// (recovering, naming the song), fetches it again from the song server,
// and plays on where the timeline is.
func TestSpeakerRefetchesDamagedSong(t *testing.T) {
	songA, shaA := timecodeWAV(t, 2*testRate, 0)
	songB, shaB := timecodeWAV(t, 6*testRate, 1_000_000)
	songs := &countingSongs{songs: map[string][]byte{shaA: songA, shaB: songB}}
	// Once b is damaged, its requests wait for release: the test sees the
	// speaker recovering before the song is back.
	var holdB, refetchAsked atomic.Bool
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseB := func() { releaseOnce.Do(func() { close(release) }) }
	c := newTestControllerServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == shaB && holdB.Load() {
			refetchAsked.Store(true)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		songs.ServeHTTP(w, r)
	}))
	c.retain(protocol.PlaylistTopic("home"), protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{
		{ID: "a", Song: shaA, Frames: 2 * testRate, SampleRate: testRate},
		{ID: "b", Song: shaB, Frames: 6 * testRate, SampleRate: testRate},
	}})
	startAt := time.Now().Add(time.Second).UnixNano()
	bAt := startAt + 2e9
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	sp := startSpeaker(t, c, "den", nil)
	t.Cleanup(releaseB) // before the speaker stops

	var path string
	testwait.For(t, "song b cached", 10*time.Second, func() bool {
		p, ok := sp.sp.cache.Lookup(shaB)
		path = p
		return ok
	})
	// The header no longer says WAVE: the decoder refuses the file.
	holdB.Store(true)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), 8); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if time.Now().UnixNano() > bAt-300*int64(time.Millisecond) {
		t.Fatal("song b damaged too late to be sure it had not been opened")
	}
	testwait.For(t, "the speaker to recover", 10*time.Second, func() bool {
		st := c.status("den")
		return st.State == recovering && strings.Contains(st.Error, shaB)
	})
	testwait.For(t, "song b to be asked for again", 5*time.Second, refetchAsked.Load)
	if st := c.status("den"); st.State != recovering {
		t.Errorf("status %+v before song b is back, want recovering", st)
	}
	releasedAt := time.Now().UnixNano()
	releaseB()
	testwait.For(t, "the speaker to play again", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })
	time.Sleep(500 * time.Millisecond)
	sp.stop()

	if n := songs.count(shaB); n < 2 {
		t.Errorf("song b served %d times, want it fetched again", n)
	}
	h := listen(t, sp, func(tNs int64) int64 {
		if f := protocol.NsToFrames(tNs-startAt, testRate); f < 2*testRate {
			return f
		}
		return 1_000_000 + protocol.NsToFrames(tNs-bAt, testRate)
	})
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
	blocks, err := playlog.Read(strings.NewReader(sp.log.String()))
	if err != nil {
		t.Fatal(err)
	}
	var firstB int64 = -1
	for _, b := range blocks {
		if b.Frame >= 1_000_000 && firstB < 0 {
			firstB = b.TNs
		}
	}
	switch {
	case firstB < 0:
		t.Error("song b not heard after it was fetched again")
	case firstB < releasedAt:
		t.Errorf("song b heard %v before it was fetched again", time.Duration(releasedAt-firstB))
	default:
		t.Logf("song b heard %v after it was released", time.Duration(firstB-releasedAt))
	}
}

// TestSpeakerMutesWhileClockUncertain: the time master's clock steps while
// its answers come late. The speaker's estimate, rebuilt from the late
// answers only, is too uncertain to play by: it mutes (recovering) until
// prompt answers narrow it, then plays on the new shared clock.
func TestSpeakerMutesWhileClockUncertain(t *testing.T) {
	c, startAt := playingController(t)
	sp := startSpeaker(t, c, "den", nil)
	testwait.For(t, "the speaker to play", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })

	const shift = 100 * time.Millisecond
	c.answerDelay.Store(int64(40 * time.Millisecond)) // first: the step must come with late answers
	c.clockShift.Store(int64(shift))
	testwait.For(t, "the speaker to mute", 10*time.Second, func() bool {
		st := c.status("den")
		return st.State == recovering && strings.Contains(st.Error, "clock estimate uncertain")
	})
	mutedSeen := time.Now().UnixNano()
	time.Sleep(500 * time.Millisecond)
	promptAt := time.Now().UnixNano()
	c.answerDelay.Store(0)
	testwait.For(t, "the speaker to play again", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })
	time.Sleep(700 * time.Millisecond)
	sp.stop()

	blocks, err := playlog.Read(strings.NewReader(sp.log.String()))
	if err != nil {
		t.Fatal(err)
	}
	const tolerance = 3 * testRate / 1000 // frames
	var before, after int
	for _, b := range blocks {
		onOld := float64(b.TNs-startAt) * testRate / 1e9
		onNew := float64(b.TNs+int64(shift)-startAt) * testRate / 1e9
		switch {
		case b.TNs < promptAt:
			// Heard a device buffer (80 ms) after it was filled.
			if b.TNs > mutedSeen+int64(150*time.Millisecond) {
				t.Errorf("frame %d heard %v after the speaker reported muted", b.Frame, time.Duration(b.TNs-mutedSeen))
			} else if d := float64(b.Frame) - onOld; d < -tolerance || d > tolerance {
				t.Errorf("before the step: frame %d heard where %.0f is due", b.Frame, onOld)
			}
			before++
		default:
			if d := float64(b.Frame) - onNew; d < -tolerance || d > tolerance {
				t.Errorf("after the step: frame %d heard where %.0f is due (%.0f on the old clock)", b.Frame, onNew, onOld)
			}
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("%d blocks heard before the step, %d after: want both", before, after)
	}
}

// TestCheckDamagedBacksOff: the fetch loop drops a damaged file at once the
// first time; a song damaged again waits out the backoff before its file is
// dropped and fetched once more. An intact file is a song that cannot be
// decoded. (The speaker is not run: the test plays its fetch loop.)
func TestCheckDamagedBacksOff(t *testing.T) {
	sp, err := New(Options{Name: "den", BrokerURL: "tcp://127.0.0.1:1", CacheDir: t.TempDir(), Logger: testLogger(t),
		Output: NewVirtualOutput(VirtualOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	song, sha := timecodeWAV(t, testRate, 0)
	cacheSong := func() {
		if err := os.WriteFile(sp.cache.path(sha), song, 0o644); err != nil {
			t.Fatal(err)
		}
		sp.cache.markVerified(sha)
	}
	damageOnDisk := func() {
		if err := os.WriteFile(sp.cache.path(sha), song[:100], 0o644); err != nil {
			t.Fatal(err)
		}
		sp.eng.mu.Lock()
		sp.eng.markDamaged(sha, errors.New("file ends early"))
		sp.eng.mu.Unlock()
	}
	damage := backoff{}

	cacheSong()
	damageOnDisk()
	sp.checkDamaged(damage)
	if _, ok := sp.cache.Lookup(sha); ok {
		t.Fatal("damaged file still in the cache")
	}
	if _, err := os.Stat(sp.cache.path(sha)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("damaged file not deleted: %v", err)
	}
	if d := sp.eng.damagedSongs(); len(d) != 0 {
		t.Errorf("damaged songs %v after the check, want none", d)
	}

	cacheSong() // fetched again, and damaged again at once
	damageOnDisk()
	sp.checkDamaged(damage)
	if _, ok := sp.cache.Lookup(sha); !ok || len(sp.eng.damagedSongs()) != 1 {
		t.Fatal("damaged again at once: dropped without waiting for the backoff")
	}
	damage[sha] = failure{count: damage[sha].count, retry: time.Now()} // the backoff is over
	sp.checkDamaged(damage)
	if _, ok := sp.cache.Lookup(sha); ok || len(sp.eng.damagedSongs()) != 0 {
		t.Error("not dropped after the backoff")
	}
	if n := damage[sha].count; n != 2 {
		t.Errorf("%d damages counted, want 2", n)
	}

	// Intact, yet it failed: the song cannot be decoded, and stays cached.
	cacheSong()
	sp.eng.mu.Lock()
	sp.eng.markDamaged(sha, errors.New("decoder panic"))
	sp.eng.mu.Unlock()
	damage[sha] = failure{count: damage[sha].count, retry: time.Now()}
	sp.checkDamaged(damage)
	if _, ok := sp.cache.Lookup(sha); !ok {
		t.Error("intact file dropped")
	}
	sp.eng.mu.Lock()
	why, bad := sp.eng.bad[sha]
	sp.eng.mu.Unlock()
	if !bad || !strings.Contains(why, "decoder panic") {
		t.Errorf("intact file that failed: bad %v (%q), want bad", bad, why)
	}
}

// TestSessionReReadsAtMostEveryRepairInterval: a mismatched pair is re-read
// as soon as it arrives (the handlers signal it; the speaker's clock never
// moves, so no tick does), and re-reading it again, which brings the same
// mismatched pair and so the same signals, waits for repairInterval to
// pass on the speaker's clock: the speaker does not hammer the broker.
func TestSessionReReadsAtMostEveryRepairInterval(t *testing.T) {
	c := newTestController(t, nil)
	good := protocol.Playlist{V: 1, Session: "home", Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: strings.Repeat("a", 64), Frames: 20 * testRate, SampleRate: testRate}}}
	bad := good
	bad.Entries = []protocol.Entry{{ID: "a", Song: strings.Repeat("a", 64), Frames: 19 * testRate, SampleRate: testRate}}
	c.retain(protocol.PlaylistTopic("home"), bad)
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing, Volume: 100,
		PlaylistVersion: 1, PlaylistHash: good.Hash(), Anchor: protocol.Anchor{AtNs: time.Now().UnixNano(), Index: 0, Entry: "a", Playing: true}})
	logs := &lockedBuffer{}
	manual := clock.NewManual(time.Now())
	startSpeakerWith(t, c, "den", manual, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	reReads := func() int { return strings.Count(logs.String(), "re-reading them from the broker") }
	testwait.For(t, "the first re-read", 10*time.Second, func() bool { return reReads() == 1 })
	time.Sleep(500 * time.Millisecond) // many round trips through the broker
	if n := reReads(); n != 1 {
		t.Fatalf("%d re-reads with the speaker's clock standing still, want 1", n)
	}
	manual.Advance(repairInterval)
	testwait.For(t, "the second re-read", 5*time.Second, func() bool { return reReads() == 2 })
}
