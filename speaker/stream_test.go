package speaker

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// slowSongs serves songs like a home Wi-Fi does: at about bytesPerSec, in
// 64 KiB chunks, honouring Range requests (http.ServeContent, as the
// controller's song server does). The first corrupt requests get the song
// with its last byte changed.
type slowSongs struct {
	songs       map[string][]byte
	bytesPerSec float64

	mu       sync.Mutex
	corrupt  int
	requests []servedRequest
}

type servedRequest struct {
	rangeHeader string
	corrupted   bool
	done        time.Time // when the response was sent in full
}

func (s *slowSongs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := s.songs[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	corrupt := s.corrupt > 0
	if corrupt {
		s.corrupt--
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0xff
	}
	s.mu.Unlock()
	http.ServeContent(&throttledWriter{ResponseWriter: w, rate: s.bytesPerSec, start: time.Now()}, r, "", time.Time{}, bytes.NewReader(b))
	s.mu.Lock()
	s.requests = append(s.requests, servedRequest{rangeHeader: r.Header.Get("Range"), corrupted: corrupt, done: time.Now()})
	s.mu.Unlock()
}

func (s *slowSongs) served() []servedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]servedRequest(nil), s.requests...)
}

// throttledWriter paces what a handler writes. It hides the ResponseWriter's
// ReadFrom, so that io.Copy writes through it in small pieces.
type throttledWriter struct {
	http.ResponseWriter
	rate  float64
	start time.Time
	sent  int
}

func (w *throttledWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		m, err := w.ResponseWriter.Write(p[:min(len(p), 64<<10)])
		n, w.sent, p = n+m, w.sent+m, p[m:]
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(time.Until(w.start.Add(time.Duration(float64(w.sent) / w.rate * 1e9))))
	}
	return n, nil
}

// heardSpan is what a virtual output's log says was heard: the first
// audible instant, and any audible block whose timecode is not the one due.
type heardSpan struct {
	first   int64 // real instant of the first audible block; -1: none
	wrong   []string
	silence []int64 // instants of silent blocks after the first audible one
}

// listen reads a speaker's output log against the timecode expected at
// each instant (the shared clock is real time in these tests).
func listen(t *testing.T, sp *runningSpeaker, expected func(tNs int64) int64) heardSpan {
	h := heardSpan{first: -1}
	for _, rec := range parseLog(t, sp.log.String()) {
		if rec.Underrun {
			continue
		}
		frame, audible := audiogen.ReadTimecode(audiogen.Frame{L: rec.L, R: rec.R})
		if !audible {
			if h.first >= 0 {
				h.silence = append(h.silence, rec.TNs)
			}
			continue
		}
		if h.first < 0 {
			h.first = rec.TNs
		}
		if d := float64(frame-expected(rec.TNs)) / testRate * 1000; d < -2 || d > 2 {
			h.wrong = append(h.wrong, time.Unix(0, rec.TNs).Format("15:04:05.000")+": "+
				strings.TrimSpace(time.Duration(d*1e6).String())+" off")
		}
	}
	return h
}

// startStopped starts a speaker on a session with playlist pl but nothing
// playing, and waits until its clock is synchronised (it reports stopped).
func startStopped(t *testing.T, c *testController, pl protocol.Playlist, name string) *runningSpeaker {
	c.retain(protocol.PlaylistTopic("home"), pl)
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Stopped,
		Volume: 100, PlaylistVersion: pl.Version, Anchor: protocol.Anchor{Index: 0, Entry: pl.Entries[0].ID}})
	sp := startSpeaker(t, c, name, nil)
	testwait.For(t, name+" synchronised", 10*time.Second, func() bool { return c.status(name).State == protocol.Stopped })
	return sp
}

// TestFirstSoundWhileDownloading plays an uncached 5 MB WAV served at
// 4 MB/s: the first sound must come at the scheduled instant (plus a
// little), long before the download completes, and be the right frames.
func TestFirstSoundWhileDownloading(t *testing.T) {
	frames := int64(5_000_000 / 4)
	song, sha := timecodeWAV(t, frames, 0)
	server := &slowSongs{songs: map[string][]byte{sha: song}, bytesPerSec: 4e6}
	c := newTestControllerServing(t, server)
	pl := protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: frames, SampleRate: testRate}}}
	sp := startStopped(t, c, pl, "kitchen")

	// A play command with the lead a controller gives it on loopback.
	startAt := time.Now().Add(100 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 2, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	testwait.For(t, "the download to end", 20*time.Second, func() bool { return len(server.served()) > 0 })
	time.Sleep(time.Until(server.served()[0].done.Add(300 * time.Millisecond)))
	sp.stop()

	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	done := server.served()[len(server.served())-1].done
	if h.first < 0 {
		t.Fatal("nothing heard")
	}
	firstSound := time.Duration(h.first - startAt)
	t.Logf("first sound %v after the scheduled instant; the download ended %v after it", firstSound, time.Duration(done.UnixNano()-startAt))
	if firstSound > 600*time.Millisecond || h.first > done.UnixNano() {
		t.Errorf("first sound %v after the scheduled instant: not before the download ended", firstSound)
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
	if len(h.silence) > 0 {
		t.Errorf("%d silent blocks after the first sound", len(h.silence))
	}
}

// TestCorruptDownloadStopsAndIsFetchedAgain: a download whose hash does not
// match stops the sound it started as soon as that is known; the song is
// fetched again and playback resumes on the timeline.
func TestCorruptDownloadStopsAndIsFetchedAgain(t *testing.T) {
	frames := int64(5_000_000 / 4)
	song, sha := timecodeWAV(t, frames, 0)
	server := &slowSongs{songs: map[string][]byte{sha: song}, bytesPerSec: 4e6, corrupt: 1}
	c := newTestControllerServing(t, server)
	pl := protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: frames, SampleRate: testRate}}}
	sp := startStopped(t, c, pl, "kitchen")
	startAt := time.Now().Add(100 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 2, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	testwait.For(t, "the download, the refetch and some playing", 30*time.Second, func() bool {
		s := server.served()
		return len(s) >= 2 && time.Since(s[len(s)-1].done) > 300*time.Millisecond
	})
	sp.stop()

	served := server.served()
	if !served[0].corrupted || served[1].corrupted {
		t.Fatalf("requests %+v: want a corrupted one, then good ones", served)
	}
	failedAt := served[0].done.UnixNano()
	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	if h.first < 0 || h.first > failedAt {
		t.Fatalf("first sound at %v, the corrupt download ended at %v: want sound before", time.Duration(h.first-startAt), time.Duration(failedAt-startAt))
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
	var stoppedAt int64 = -1
	for _, s := range h.silence {
		if s >= failedAt {
			stoppedAt = s
			break
		}
	}
	// Heard 80 ms (the device buffer) after the engine stopped it, plus the hash check.
	if stoppedAt < 0 || time.Duration(stoppedAt-failedAt) > 500*time.Millisecond {
		t.Fatalf("silence after the failed download: at %v after it, want within 500ms", time.Duration(stoppedAt-failedAt))
	}
	resumed := false
	for _, rec := range parseLog(t, sp.log.String()) {
		if _, audible := audiogen.ReadTimecode(audiogen.Frame{L: rec.L, R: rec.R}); audible && rec.TNs > stoppedAt {
			resumed = true
		}
	}
	t.Logf("sound stopped %v after the corrupt download ended; resumed: %v", time.Duration(stoppedAt-failedAt), resumed)
	if !resumed {
		t.Error("no sound after the song was fetched again")
	}
}

// TestMidSongJoinFetchesThePartDueFirst: a speaker joining 20 s into an
// uncached 5 MB song served at 2 MB/s fetches the part being played first
// (Range), and plays long before the song has arrived.
func TestMidSongJoinFetchesThePartDueFirst(t *testing.T) {
	frames := int64(5_000_000 / 4)
	song, sha := timecodeWAV(t, frames, 0)
	server := &slowSongs{songs: map[string][]byte{sha: song}, bytesPerSec: 2e6}
	c := newTestControllerServing(t, server)
	pl := protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: frames, SampleRate: testRate}}}
	c.retain(protocol.PlaylistTopic("home"), pl)
	startAt := time.Now().Add(-20 * time.Second).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	joinedAt := time.Now().UnixNano()
	sp := startSpeaker(t, c, "attic", nil)
	testwait.For(t, "the whole song", 30*time.Second, func() bool {
		s := server.served()
		return len(s) >= 3 || len(s) == 1 && s[0].rangeHeader == ""
	})
	sp.stop()

	served := server.served()
	var fromJoin bool
	for _, r := range served {
		var from int64
		if _, err := fmt.Sscanf(r.rangeHeader, "bytes=%d-", &from); err == nil && from > 3_000_000 && from < 3_600_000 {
			fromJoin = true
		}
	}
	if !fromJoin {
		t.Errorf("requests %+v: none starts near the join point (byte ~3.5M)", served)
	}
	h := listen(t, sp, func(tNs int64) int64 { return protocol.NsToFrames(tNs-startAt, testRate) })
	done := served[len(served)-1].done.UnixNano()
	if h.first < 0 {
		t.Fatal("nothing heard")
	}
	t.Logf("first sound %v after the speaker started; the song was complete %v after it", time.Duration(h.first-joinedAt), time.Duration(done-joinedAt))
	if h.first > done || time.Duration(h.first-joinedAt) > 1200*time.Millisecond {
		t.Errorf("first sound %v after the speaker started: want well before the song is complete", time.Duration(h.first-joinedAt))
	}
	if len(h.wrong) > 0 {
		t.Errorf("%d blocks heard off the timeline, first: %s", len(h.wrong), h.wrong[0])
	}
}
