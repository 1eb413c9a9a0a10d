package speaker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testbroker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// testController plays the controller's part: a real broker with the
// retained session topics, a song server, and a clock-sync responder on
// real time (the shared clock).
type testController struct {
	t        *testing.T
	broker   *mochi.Server
	url      string
	songs    *httptest.Server
	mu       sync.Mutex
	statuses map[string]protocol.SpeakerStatus
	acks     map[string][]protocol.Ack // by speaker, in arrival order
	// silent, when set, makes the time master stop answering clock probes.
	silent atomic.Bool
	// The time master's clock is clockShift ns ahead of real time, and its
	// answers are delayed by answerDelay ns (on the way back).
	clockShift, answerDelay atomic.Int64
}

func newTestController(t *testing.T, songs map[string][]byte) *testController {
	return newTestControllerServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := songs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
}

// newTestControllerServing is newTestController with songs served by
// handler under /songs/ (the prefix stripped).
func newTestControllerServing(t *testing.T, handler http.Handler) *testController {
	broker, url := testbroker.Start(t, nil)
	srv := httptest.NewServer(http.StripPrefix("/songs/", handler))
	t.Cleanup(srv.Close)
	c := &testController{t: t, broker: broker, url: url, songs: srv, statuses: map[string]protocol.SpeakerStatus{}, acks: map[string][]protocol.Ack{}}
	err := broker.Subscribe(protocol.ClockRequestFilter, 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		t2 := time.Now().UnixNano()
		if c.silent.Load() {
			return
		}
		req, err := protocol.Decode[protocol.ClockRequest](pk.Payload)
		id, ok := protocol.SpeakerFromTopic(pk.TopicName)
		if err != nil || !ok {
			return
		}
		shift := c.clockShift.Load()
		resp := protocol.ClockResponse{V: 1, ID: req.ID, T1: req.T1, T2: t2 + shift, T3: time.Now().UnixNano() + shift}
		answer := func() { broker.Publish(protocol.ClockResponseTopic(id), protocol.Encode(resp), false, 0) }
		if d := time.Duration(c.answerDelay.Load()); d > 0 {
			time.AfterFunc(d, answer) // handlers must not block
			return
		}
		answer()
	})
	if err != nil {
		t.Fatal(err)
	}
	err = broker.Subscribe(protocol.SpeakerStatusFilter, 2, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		st, err := protocol.Decode[protocol.SpeakerStatus](pk.Payload)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.statuses[st.ID] = st
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	err = broker.Subscribe(protocol.AckFilter, 3, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		ack, err := protocol.Decode[protocol.Ack](pk.Payload)
		id, ok := protocol.SpeakerFromTopic(pk.TopicName)
		if err != nil || !ok {
			t.Errorf("bad ack on %s: %q", pk.TopicName, pk.Payload)
			return
		}
		c.mu.Lock()
		c.acks[id] = append(c.acks[id], ack)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	c.retain(protocol.ControllerStatusTopic, protocol.ControllerStatus{V: 1, Online: true, Instance: "c1", SongsURL: srv.URL + "/songs/"})
	return c
}

func (c *testController) retain(topic string, msg any) {
	if err := c.broker.Publish(topic, protocol.Encode(msg), true, 1); err != nil {
		c.t.Fatal(err)
	}
}

// acksOf returns the acks speaker id sent so far.
func (c *testController) acksOf(id string) []protocol.Ack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.Ack(nil), c.acks[id]...)
}

func (c *testController) status(id string) protocol.SpeakerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[id]
}

func timecodeWAV(t *testing.T, frames, first int64) ([]byte, string) {
	var b bytes.Buffer
	if err := audiogen.WriteWAV(&b, testRate, frames, func(i int64) audiogen.Frame { return audiogen.Timecode(first + i) }); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b.Bytes())
	return b.Bytes(), hex.EncodeToString(sum[:])
}

type runningSpeaker struct {
	name string
	sp   *Speaker
	log  *lockedBuffer
	stop func()
}

func startSpeaker(t *testing.T, c *testController, name string, clock clock.Clock) *runningSpeaker {
	return startSpeakerWith(t, c, name, clock, nil)
}

// startSpeakerWith is startSpeaker with options changed by configure.
func startSpeakerWith(t *testing.T, c *testController, name string, clock clock.Clock, configure func(*Options)) *runningSpeaker {
	log := &lockedBuffer{}
	opts := Options{
		Name: name, BrokerURL: c.url, CacheDir: t.TempDir(), Clock: clock,
		// A device buffer that rides out the stalls of a busy 2-core machine.
		Output: NewVirtualOutput(VirtualOptions{Log: log, Latency: 80 * time.Millisecond}),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", name),
	}
	if configure != nil {
		configure(&opts)
	}
	sp, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("speaker %s: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("speaker %s: Run did not return", name)
			}
		})
	}
	t.Cleanup(stop)
	return &runningSpeaker{name: name, sp: sp, log: log, stop: stop}
}

func TestSpeakersPlayInSync(t *testing.T) {
	songA, shaA := timecodeWAV(t, 2*testRate, 0)         // 2 s
	songB, shaB := timecodeWAV(t, 3*testRate, 1_000_000) // 3 s
	c := newTestController(t, map[string][]byte{shaA: songA, shaB: songB})
	pl := protocol.Playlist{V: 1, Session: "home", Version: 1, Entries: []protocol.Entry{
		{ID: "a", Song: shaA, Frames: 2 * testRate, SampleRate: testRate},
		{ID: "b", Song: shaB, Frames: 3 * testRate, SampleRate: testRate},
	}}
	c.retain(protocol.PlaylistTopic("home"), pl)
	startAt := time.Now().Add(1500 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})

	speakers := []*runningSpeaker{
		startSpeaker(t, c, "kitchen", offsetClock(3*time.Minute)),
		startSpeaker(t, c, "hall", offsetClock(-90*time.Second)),
	}
	// The third joins a second into the first song.
	time.Sleep(time.Until(time.Unix(0, startAt+int64(time.Second))))
	speakers = append(speakers, startSpeaker(t, c, "attic", nil))
	joinedAt := time.Now().UnixNano()

	testwait.For(t, "all speakers playing", 10*time.Second, func() bool {
		for _, sp := range speakers {
			if st := c.status(sp.name); !st.Online || st.State != protocol.Playing {
				return false
			}
		}
		return true
	})
	// Garbage on the session topics is logged and ignored.
	for _, topic := range []string{protocol.SessionStateTopic("home"), protocol.PlaylistTopic("home"), protocol.ClockResponseTopic("hall")} {
		for _, junk := range []string{"{not json", `{"v":1,"anchor":"x"}`, `{"v":2}`, `{"v":1,"entries":[{"id":"x","song":"../../etc/passwd","frames":1,"sample_rate":1}]}`} {
			if err := c.broker.Publish(topic, []byte(junk), false, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := c.status("kitchen")
	if d := time.Duration(st.ClockOffsetNs) + 3*time.Minute; d < -5*time.Millisecond || d > 5*time.Millisecond || st.Instance == "" ||
		st.Output != "virtual" || st.Volume != 100 || st.Session != "home" || st.LatencyNs != int64(80*time.Millisecond) {
		t.Errorf("kitchen status %+v: want clock offset -3m, an instance, output virtual, volume 100, latency 80ms", st)
	}

	// Pause 2.6 s in (inside song b), announced 300 ms ahead.
	pauseAt := max(startAt+2600*int64(time.Millisecond), time.Now().Add(300*time.Millisecond).UnixNano())
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 2, State: protocol.Paused,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: pauseAt, Index: 0, Entry: "a", PositionNs: pauseAt - startAt}})
	time.Sleep(time.Until(time.Unix(0, pauseAt+500*int64(time.Millisecond))))
	for _, sp := range speakers {
		sp.stop()
	}
	if st := c.status("attic"); st.Online {
		t.Errorf("attic still online after it stopped: %+v", st)
	}

	// The timecode due at real instant tNs (the shared clock is real time here).
	expected := func(tNs int64) int64 {
		f := protocol.NsToFrames(tNs-startAt, testRate)
		if f < 2*testRate {
			return f
		}
		return 1_000_000 + f - 2*testRate
	}
	blockNs := framesToNsRound(441, testRate)
	medianErr := map[string]float64{}
	for _, sp := range speakers {
		var errsMs []float64
		var firstHeard int64 = -1
		silentFrom, underruns := int64(-1), 0
		for _, rec := range parseLog(t, sp.log.String()) {
			if rec.Underrun {
				underruns++
				continue
			}
			frame, audible := audiogen.ReadTimecode(audiogen.Frame{L: rec.L, R: rec.R})
			inSpan := rec.TNs >= startAt && rec.TNs+blockNs <= pauseAt
			switch {
			case inSpan && !audible && silentFrom < 0:
				silentFrom = rec.TNs
			case silentFrom >= 0 && (audible || !inSpan):
				t.Logf("%s: silent from %v to %v after start", sp.name, time.Duration(silentFrom-startAt), time.Duration(rec.TNs-startAt))
				silentFrom = -1
			}
			switch {
			case rec.TNs < startAt-blockNs || rec.TNs >= pauseAt:
				// Playback stops at the pause position to the frame; a block
				// starting less than a frame after the pause instant may still
				// open with the sample interpolated just before that position
				// (speed steering reads between frames).
				lastOfRun := rec.TNs < pauseAt+framesToNsRound(1, testRate) && frame == expected(pauseAt)
				if audible && !lastOfRun {
					t.Errorf("%s: heard frame %d at %v from start, outside the playing span", sp.name, frame, time.Duration(rec.TNs-startAt))
				}
			case rec.TNs >= startAt && rec.TNs+blockNs <= pauseAt && audible:
				if firstHeard < 0 {
					firstHeard = rec.TNs
				}
				want := expected(rec.TNs)
				d := float64(frame-want) / testRate * 1000
				if d < -2 || d > 2 {
					t.Errorf("%s: at %v heard frame %d, want %d (%.3f ms off)", sp.name, time.Duration(rec.TNs-startAt), frame, want, d)
				}
				errsMs = append(errsMs, d)
			}
		}
		if len(errsMs) < 20 {
			t.Fatalf("%s: only %d audible blocks", sp.name, len(errsMs))
		}
		medianErr[sp.name] = median(errsMs)
		t.Logf("%s: %d audible blocks, median error %.3f ms, first heard %v after start, %d underruns",
			sp.name, len(errsMs), medianErr[sp.name], time.Duration(firstHeard-startAt), underruns)
		if sp.name == "attic" {
			if firstHeard < joinedAt {
				t.Errorf("attic heard before it started")
			}
			if wait := time.Duration(firstHeard - joinedAt); wait > 2*time.Second {
				t.Errorf("attic took %v to join", wait)
			}
		} else if firstHeard > startAt+5*blockNs { // a block, or a few after an underrun
			t.Errorf("%s started %v late", sp.name, time.Duration(firstHeard-startAt))
		}
	}
	for a, ea := range medianErr {
		for b, eb := range medianErr {
			if d := ea - eb; d > 1 || d < -1 {
				t.Errorf("skew %s-%s %.3f ms", a, b, d)
			}
		}
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s { // small: insertion sort
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// playingController is a test controller whose home session plays a 30 s
// timecode song (entry "a") from startAt, half a second from now.
func playingController(t *testing.T) (c *testController, startAt int64) {
	t.Helper()
	song, sha := timecodeWAV(t, 30*testRate, 0)
	c = newTestController(t, map[string][]byte{sha: song})
	c.retain(protocol.PlaylistTopic("home"), protocol.Playlist{V: 1, Session: "home", Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: 30 * testRate, SampleRate: testRate}}})
	startAt = time.Now().Add(500 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Index: 0, Entry: "a", Playing: true}})
	return c, startAt
}

// TestSpeakerGoesSilentOutOfTouch: when the time master stops answering (the
// broker or the network is away) the speaker plays on for the grace period,
// then goes silent and says why; when answers come back it plays on where
// the timeline is.
func TestSpeakerGoesSilentOutOfTouch(t *testing.T) {
	c, startAt := playingController(t)
	const grace = time.Second
	sp := startSpeakerWith(t, c, "den", nil, func(o *Options) { o.Grace = grace })
	testwait.For(t, "the speaker to play", 10*time.Second, func() bool { return c.status("den").State == protocol.Playing })

	mutedAt := time.Now()
	c.silent.Store(true)
	testwait.For(t, "the speaker to go silent", 5*time.Second, func() bool { return c.status("den").State == silent })
	if st := c.status("den"); !strings.Contains(st.Error, "time master") {
		t.Errorf("silent status without the reason: %+v", st)
	}
	// The grace period runs from the last answer (up to a probe interval
	// before the muting) to the instant a block would be heard (a device
	// buffer ahead).
	if went := time.Since(mutedAt); went < grace-probeInterval-100*time.Millisecond {
		t.Errorf("silent %v after the time master went quiet, before the grace period of %v", went, grace)
	}
	time.Sleep(500 * time.Millisecond)
	c.silent.Store(false)
	backAt := time.Now()
	testwait.For(t, "the speaker to play again", 5*time.Second, func() bool { return c.status("den").State == protocol.Playing })
	time.Sleep(500 * time.Millisecond)
	sp.stop()

	blocks, err := playlog.Read(strings.NewReader(sp.log.String()))
	if err != nil {
		t.Fatal(err)
	}
	var quiet, after []playlog.Block
	for _, b := range blocks {
		switch {
		case b.TNs > mutedAt.Add(grace+300*time.Millisecond).UnixNano() && b.TNs < backAt.UnixNano():
			quiet = append(quiet, b)
		case b.TNs > backAt.Add(300*time.Millisecond).UnixNano():
			after = append(after, b)
		}
	}
	if len(quiet) > 0 {
		t.Errorf("%d blocks of sound while out of touch, first at frame %d", len(quiet), quiet[0].Frame)
	}
	if len(after) == 0 {
		t.Fatal("no sound after the time master came back")
	}
	for _, b := range after {
		want := float64(b.TNs-startAt) * testRate / 1e9
		if d := float64(b.Frame) - want; d < -testRate/200 || d > testRate/200 { // 5 ms
			t.Fatalf("back on the timeline? frame %d heard where frame %.0f is due", b.Frame, want)
		}
	}
}
